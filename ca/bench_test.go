package ca_test

import (
	"testing"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

// BenchmarkIssueUser measures user certificate issuance (build, sign) and reports
// certificates per second.
func BenchmarkIssueUser(b *testing.B) {
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		b.Run(string(alg), func(b *testing.B) {
			a, err := ca.NewAuthority("root.example.com", ca.UserCA, alg)
			if err != nil {
				b.Fatal(err)
			}
			_, pub := newKey(b, "")
			req := aliceRequest(pub)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.IssueUser(req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

// BenchmarkVerifyUser measures what a gateway does per connection before the policy
// runs: VerifyUser and CertFromSSH.
func BenchmarkVerifyUser(b *testing.B) {
	a, err := ca.NewAuthority("root.example.com", ca.UserCA, "")
	if err != nil {
		b.Fatal(err)
	}
	_, pub := newKey(b, "")
	cert := reparse(b, issue(b, a, aliceRequest(pub)))
	trusted := a.TrustedKeys()
	b.ReportAllocs()
	for b.Loop() {
		signer, err := ca.VerifyUser(cert, trusted)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := policy.CertFromSSH(cert, signer); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
