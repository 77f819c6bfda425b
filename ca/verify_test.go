package ca_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

// lyingSigner signs with one key while claiming to be another: the certificate it makes
// names the trusted CA key but carries the attacker's signature.
type lyingSigner struct {
	ssh.Signer
	claim ssh.PublicKey
}

func (s lyingSigner) PublicKey() ssh.PublicKey { return s.claim }

// TestVerifyUser is DESIGN §5 invariant 4 on the Go side: what cryptography decides is
// refused here with a clear error; what rules decide (times, principals) is left to the
// policy.
func TestVerifyUser(t *testing.T) {
	t.Parallel()
	root := newAuthority(t, "root.example.com", ca.UserCA, "")
	rootHost := newAuthority(t, "root.example.com", ca.HostCA, "")
	stranger := newAuthority(t, "evil.example.com", ca.UserCA, "")
	trusted := append(root.TrustedKeys(), rootHost.TrustedKeys()...)
	_, pub := newKey(t, "")
	attackerPriv, _ := newKey(t, "")
	attacker, err := ssh.NewSignerFromSigner(attackerPriv)
	if err != nil {
		t.Fatal(err)
	}

	resign := func(cert *ssh.Certificate, s ssh.Signer) *ssh.Certificate {
		c := *cert
		if err := signCert(&c, s); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	good := func() *ssh.Certificate { return issue(t, root, aliceRequest(pub)) }

	for _, tc := range []struct {
		name string
		cert func() *ssh.Certificate
		want error // nil: accepted
		msg  string
	}{
		{"valid_certificate_is_accepted", good, nil, ""},
		{"expired_is_not_refused_here_it_is_the_policy_s_job", func() *ssh.Certificate {
			c := *good()
			c.ValidAfter, c.ValidBefore = uint64(testNow.Add(-48*time.Hour).Unix()), uint64(testNow.Add(-24*time.Hour).Unix())
			return resign(&c, signerOf(t, root))
		}, nil, ""},
		{"not_yet_valid_is_not_refused_here_it_is_the_policy_s_job", func() *ssh.Certificate {
			c := *good()
			c.ValidAfter, c.ValidBefore = uint64(testNow.Add(24*time.Hour).Unix()), uint64(testNow.Add(48*time.Hour).Unix())
			return resign(&c, signerOf(t, root))
		}, nil, ""},
		{"login_outside_principals_is_not_checked_here", func() *ssh.Certificate {
			req := aliceRequest(pub)
			req.Logins = []string{"nobody"}
			return issue(t, root, req)
		}, nil, ""},
		{"resigned_by_an_unknown_key_is_refused", func() *ssh.Certificate { return resign(good(), attacker) },
			ca.ErrUnknownAuthority, "not a trusted user CA key"},
		{"forged_signature_claiming_the_trusted_key_is_refused", func() *ssh.Certificate {
			return resign(good(), lyingSigner{Signer: attacker, claim: root.SigningKey()})
		}, ca.ErrBadSignature, "forged or altered"},
		{"altered_field_under_a_good_signature_is_refused", func() *ssh.Certificate {
			c := good()
			c.ValidPrincipals = append(c.ValidPrincipals, "root")
			return c
		}, ca.ErrBadSignature, "forged or altered"},
		{"altered_extension_under_a_good_signature_is_refused", func() *ssh.Certificate {
			c := good()
			c.Extensions[ca.ExtRoles] = `["admin"]`
			return c
		}, ca.ErrBadSignature, "forged or altered"},
		{"host_cert_presented_as_user_cert_is_refused", func() *ssh.Certificate {
			c, err := rootHost.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: []string{"alice"}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, ca.ErrWrongCertType, "is a host certificate, not a user certificate"},
		{"user_cert_signed_by_a_trusted_host_ca_is_refused", func() *ssh.Certificate { return resign(good(), signerOf(t, rootHost)) },
			ca.ErrUnknownAuthority, "host CA of root.example.com"},
		{"unknown_ca_is_refused", func() *ssh.Certificate { return issue(t, stranger, aliceRequest(pub)) },
			ca.ErrUnknownAuthority, "not a trusted user CA key"},
		{"critical_option_is_refused", func() *ssh.Certificate {
			c := *good()
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"}
			return resign(&c, signerOf(t, root))
		}, ca.ErrCriticalOption, "source-address"},
		{"unsigned_is_refused", func() *ssh.Certificate {
			c := *good()
			c.Signature = nil
			return &c
		}, ca.ErrBadSignature, "not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := tc.cert()
			if tc.want != ca.ErrBadSignature || cert.Signature != nil {
				cert = reparse(t, cert)
			}
			signer, err := ca.VerifyUser(cert, trusted)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyUser: %v", err)
				}
				if signer.Cluster != "root.example.com" || signer.Type != ca.UserCA || signer.Fingerprint() != ca.Fingerprint(root.SigningKey()) {
					t.Errorf("signer = %v, want the user CA of root.example.com", signer)
				}
				if _, err := policy.CertFromSSH(cert, signer); err != nil {
					t.Errorf("CertFromSSH: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("VerifyUser error = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// signerOf is the authority's signing key as an ssh.Signer, taken from its exported
// private key the way an operator with the key file could.
func signerOf(t testing.TB, a *ca.Authority) ssh.Signer {
	t.Helper()
	r, err := a.Resource(true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey([]byte(r.Spec.ActiveKeys.SSH[0].PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifyUserTamperedBytes flips every bit of a certificate's wire form in turn: each
// result must fail to parse or fail to verify.
func TestVerifyUserTamperedBytes(t *testing.T) {
	t.Parallel()
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			root := newAuthority(t, "root.example.com", ca.UserCA, alg)
			_, pub := newKey(t, "")
			blob := issue(t, root, aliceRequest(pub)).Marshal()
			var parseFails, verifyFails int
			for i := range len(blob) * 8 {
				b := append([]byte(nil), blob...)
				b[i/8] ^= 1 << (i % 8)
				key, err := ssh.ParsePublicKey(b)
				if err != nil {
					parseFails++
					continue
				}
				cert, ok := key.(*ssh.Certificate)
				if !ok {
					parseFails++
					continue
				}
				if _, err := ca.VerifyUser(cert, root.TrustedKeys()); err == nil {
					t.Fatalf("flipping bit %d of %d (byte %d) still verifies", i, len(blob)*8, i/8)
				}
				verifyFails++
			}
			t.Logf("%d bit flips: %d fail to parse, %d fail to verify, 0 accepted", len(blob)*8, parseFails, verifyFails)
		})
	}
}

func TestTrustedKeysOf(t *testing.T) {
	t.Parallel()
	root, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("public_keys_of_the_resource_become_trusted_keys", func(t *testing.T) {
		r, err := root.User.Resource(false)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := ca.TrustedKeysOf(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].Cluster != "root.example.com" || keys[0].Type != ca.UserCA || keys[0].Fingerprint() != ca.Fingerprint(root.User.SigningKey()) {
			t.Errorf("keys = %v", keys)
		}
	})
	t.Run("tls_ca_has_no_ssh_keys", func(t *testing.T) {
		r, err := root.TLS.Resource(false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.TrustedKeysOf(r); err == nil {
			t.Error("TrustedKeysOf(tls CA) succeeded")
		}
	})
	t.Run("garbage_key_is_refused", func(t *testing.T) {
		r, _ := root.Host.Resource(false)
		r.Spec.ActiveKeys.SSH[0].PublicKey = "ssh-ed25519 AAAA"
		if _, err := ca.TrustedKeysOf(r); err == nil || !strings.Contains(err.Error(), "active_keys.ssh[0]") {
			t.Errorf("error = %v", err)
		}
	})
}
