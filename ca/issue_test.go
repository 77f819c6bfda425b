package ca_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

func TestIssueUser(t *testing.T) {
	t.Parallel()
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			userCA := newAuthority(t, "root.example.com", ca.UserCA, alg)
			_, pub := newKey(t, ca.Ed25519)
			req := aliceRequest(pub)
			cert := reparse(t, issue(t, userCA, req))
			signer, err := ca.VerifyUser(cert, userCA.TrustedKeys())
			if err != nil {
				t.Fatalf("VerifyUser: %v", err)
			}
			got, err := policy.CertFromSSH(cert, signer)
			if err != nil {
				t.Fatalf("CertFromSSH: %v", err)
			}

			t.Run("principals_are_the_logins", func(t *testing.T) {
				if !slices.Equal(cert.ValidPrincipals, req.Logins) || !slices.Equal(got.Principals, req.Logins) {
					t.Errorf("principals %v / input %v, want %v", cert.ValidPrincipals, got.Principals, req.Logins)
				}
				if cert.CertType != ssh.UserCert {
					t.Errorf("cert type %d, want user", cert.CertType)
				}
			})
			t.Run("key_id_is_the_requested_one", func(t *testing.T) {
				if cert.KeyId != req.KeyID || got.KeyID != req.KeyID {
					t.Errorf("key id %q / input %q, want %q", cert.KeyId, got.KeyID, req.KeyID)
				}
			})
			t.Run("every_extension_round_trips_through_CertFromSSH", func(t *testing.T) {
				want := policy.Cert{
					Type:           "user",
					SigningCA:      policy.SigningCA{Cluster: "root.example.com", Fingerprint: ca.Fingerprint(userCA.SigningKey())},
					Username:       req.Username,
					KeyID:          req.KeyID,
					Principals:     req.Logins,
					Roles:          req.Roles,
					Traits:         req.Traits,
					ValidAfter:     testNow.Add(-time.Minute),
					ValidBefore:    testNow.Add(req.TTL),
					RouteToCluster: req.RouteToCluster,
					IssuedVia:      req.IssuedVia,
					MFAVerified:    true,
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("CertFromSSH =\n%+v\nwant\n%+v", got, want)
				}
				for _, ext := range []string{ca.ExtUser, ca.ExtRoles, ca.ExtTraits, ca.ExtRouteToCluster, ca.ExtIssuedVia, ca.ExtMFAVerified} {
					if _, ok := cert.Extensions[ext]; !ok {
						t.Errorf("extension %s missing", ext)
					}
				}
				if len(cert.CriticalOptions) != 0 {
					t.Errorf("critical options %v, want none (OpenSSH refuses unknown ones)", cert.CriticalOptions)
				}
			})
			t.Run("valid_after_is_backdated_one_minute", func(t *testing.T) {
				if want := uint64(testNow.Add(-time.Minute).Unix()); cert.ValidAfter != want {
					t.Errorf("valid_after %d, want %d (now - 1m)", cert.ValidAfter, want)
				}
			})
			t.Run("openssh_default_permissions", func(t *testing.T) {
				for _, p := range []string{"permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"} {
					if v, ok := cert.Extensions[p]; !ok || v != "" {
						t.Errorf("extension %s = %q, %v; want present and empty", p, v, ok)
					}
				}
			})
			t.Run("signed_with_the_authority_algorithm", func(t *testing.T) {
				want := map[ca.Algorithm]string{ca.Ed25519: ssh.KeyAlgoED25519, ca.ECDSAP256: ssh.KeyAlgoECDSA256}[alg]
				if cert.SignatureKey.Type() != want || cert.Signature.Format != want {
					t.Errorf("signature key %s, format %s; want %s", cert.SignatureKey.Type(), cert.Signature.Format, want)
				}
			})
		})
	}
}

func TestIssueUserTTL(t *testing.T) {
	t.Parallel()
	userCA := newAuthority(t, "root.example.com", ca.UserCA, "")
	_, pub := newKey(t, "")
	for _, tc := range []struct {
		name        string
		ttl, maxTTL time.Duration
		want        time.Duration
	}{
		{"ttl_below_the_cap_is_kept", time.Hour, 8 * time.Hour, time.Hour},
		{"ttl_above_the_cap_is_capped", 30 * time.Hour, 8 * time.Hour, 8 * time.Hour},
		{"ttl_equal_to_the_cap_is_kept", 8 * time.Hour, 8 * time.Hour, 8 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := aliceRequest(pub)
			req.TTL, req.MaxTTL = tc.ttl, tc.maxTTL
			cert := issue(t, userCA, req)
			if want := uint64(testNow.Add(tc.want).Unix()); cert.ValidBefore != want {
				t.Errorf("valid_before = now + %v, want now + %v", time.Duration(cert.ValidBefore-uint64(testNow.Unix()))*time.Second, tc.want)
			}
		})
	}
}

func TestIssueUserRefuses(t *testing.T) {
	t.Parallel()
	userCA := newAuthority(t, "root.example.com", ca.UserCA, "")
	hostCA := newAuthority(t, "root.example.com", ca.HostCA, "")
	_, pub := newKey(t, "")
	for _, tc := range []struct {
		name   string
		a      *ca.Authority
		change func(*ca.UserCertRequest)
		want   string
	}{
		{"no_logins_because_no_principals_means_any_login", userCA, func(r *ca.UserCertRequest) { r.Logins = nil }, "at least one login"},
		{"empty_login", userCA, func(r *ca.UserCertRequest) { r.Logins = []string{"visitor", ""} }, "login is empty"},
		{"no_username", userCA, func(r *ca.UserCertRequest) { r.Username = "" }, "username is required"},
		{"no_key", userCA, func(r *ca.UserCertRequest) { r.PublicKey = nil }, "no public key"},
		{"no_ttl", userCA, func(r *ca.UserCertRequest) { r.TTL = 0 }, "TTL"},
		{"no_max_ttl_so_no_uncapped_certificate", userCA, func(r *ca.UserCertRequest) { r.MaxTTL = 0 }, "MaxTTL"},
		{"empty_role", userCA, func(r *ca.UserCertRequest) { r.Roles = []string{""} }, "role is empty"},
		{"empty_trait_name", userCA, func(r *ca.UserCertRequest) { r.Traits = map[string][]string{"": {"x"}} }, "trait name is empty"},
		{"non_utf8_trait", userCA, func(r *ca.UserCertRequest) { r.Traits = map[string][]string{"k": {"\xff"}} }, "not valid UTF-8"},
		{"oversize_role", userCA, func(r *ca.UserCertRequest) { r.Roles = []string{strings.Repeat("r", ca.MaxCertStringBytes+1)} }, "more than"},
		{"too_many_roles", userCA, func(r *ca.UserCertRequest) { r.Roles = slices.Repeat([]string{"r"}, ca.MaxCertStrings+1) }, "more than"},
		{"host_ca_does_not_sign_user_certificates", hostCA, func(*ca.UserCertRequest) {}, "use the user CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := aliceRequest(pub)
			tc.change(&req)
			_, err := tc.a.IssueUser(req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("IssueUser error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestIssueHost(t *testing.T) {
	t.Parallel()
	hostCA := newAuthority(t, "leaf.example.com", ca.HostCA, "")
	_, pub := newKey(t, "")
	t.Run("host_cert_with_principals_that_never_expires_by_default", func(t *testing.T) {
		cert, err := hostCA.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: []string{"node1", "10.0.0.5"}})
		if err != nil {
			t.Fatal(err)
		}
		cert = reparse(t, cert)
		if cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"node1", "10.0.0.5"}) || cert.KeyId != "node1" {
			t.Errorf("type %d principals %v key id %q", cert.CertType, cert.ValidPrincipals, cert.KeyId)
		}
		if cert.ValidBefore != ssh.CertTimeInfinity {
			t.Errorf("valid_before %d, want forever", cert.ValidBefore)
		}
		signer, err := ca.VerifyHost(cert, hostCA.TrustedKeys())
		if err != nil || signer.Type != ca.HostCA {
			t.Errorf("VerifyHost = %v, %v", signer, err)
		}
	})
	t.Run("host_cert_with_ttl", func(t *testing.T) {
		cert, err := hostCA.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: []string{"gw"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if cert.ValidBefore != uint64(testNow.Add(time.Hour).Unix()) || cert.ValidAfter != uint64(testNow.Add(-time.Minute).Unix()) {
			t.Errorf("validity %d..%d", cert.ValidAfter, cert.ValidBefore)
		}
	})
	t.Run("no_principals_because_none_means_any_host", func(t *testing.T) {
		if _, err := hostCA.IssueHost(ca.HostCertRequest{PublicKey: pub}); err == nil || !strings.Contains(err.Error(), "at least one principal") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("user_ca_does_not_sign_host_certificates", func(t *testing.T) {
		userCA := newAuthority(t, "leaf.example.com", ca.UserCA, "")
		if _, err := userCA.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: []string{"gw"}}); err == nil || !strings.Contains(err.Error(), "use the host CA") {
			t.Errorf("error = %v", err)
		}
	})
}

// TestIssueUserLimitsMatchCertFromSSH: the largest certificate IssueUser signs still reads
// back, so the two sides count against the limits the same way.
func TestIssueUserLimitsMatchCertFromSSH(t *testing.T) {
	t.Parallel()
	userCA := newAuthority(t, "root.example.com", ca.UserCA, "")
	_, pub := newKey(t, "")
	req := aliceRequest(pub)
	req.Traits = nil
	// user, key id, route, issued-via and two logins count too.
	req.Roles = slices.Repeat([]string{strings.Repeat("r", 16)}, ca.MaxCertStrings-6)
	cert := reparse(t, issue(t, userCA, req))
	signer, err := ca.VerifyUser(cert, userCA.TrustedKeys())
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.CertFromSSH(cert, signer)
	if err != nil {
		t.Fatalf("CertFromSSH refuses the largest certificate IssueUser signs: %v", err)
	}
	in := policy.Input{Action: policy.ActionSSHSession, Cluster: "leaf.example.com", Now: testNow, Cert: c, Login: "visitor"}
	if err := in.Validate(); err != nil {
		t.Errorf("the policy refuses it: %v", err)
	}
	req.Roles = append(req.Roles, "one-more")
	if _, err := userCA.IssueUser(req); err == nil {
		t.Error("IssueUser signs a certificate past the limit")
	}
}

// TestOpenSSHCASignsOnlyNodeCertificates: the openssh CA and the user CA never sign each
// other's certificates, and a node's check (VerifyNodeAccess) accepts only the openssh
// CA's, even when it is handed the user CA's keys too.
func TestOpenSSHCASignsOnlyNodeCertificates(t *testing.T) {
	t.Parallel()
	c, err := ca.NewCluster("leaf.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	_, pub := newKey(t, ca.Ed25519)
	login, node := aliceRequest(pub), aliceRequest(pub)
	node.NodeAccess = true
	for _, tc := range []struct {
		name    string
		a       *ca.Authority
		req     ca.UserCertRequest
		wantErr string
	}{
		{"user_CA_signs_login_certificates", c.User, login, ""},
		{"openssh_CA_signs_node_certificates", c.OpenSSH, node, ""},
		{"openssh_CA_refuses_a_login_certificate", c.OpenSSH, login, "signs only the enforcement point's node certificates"},
		{"user_CA_refuses_a_node_certificate", c.User, node, "node certificates (NodeAccess) are the openssh CA's"},
		{"host_CA_refuses_both", c.Host, node, "does not sign user certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.a.IssueUser(tc.req)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("IssueUser = %v, want %q", err, tc.wantErr)
			}
		})
	}
	both := append(c.User.TrustedKeys(), c.OpenSSH.TrustedKeys()...)
	t.Run("a_node_accepts_the_openssh_CAs_certificate", func(t *testing.T) {
		signer, err := ca.VerifyNodeAccess(issue(t, c.OpenSSH, node), both)
		if err != nil || signer.Type != ca.OpenSSHCA {
			t.Fatalf("VerifyNodeAccess = %v, %v", signer, err)
		}
	})
	t.Run("a_node_refuses_a_login_certificate", func(t *testing.T) {
		_, err := ca.VerifyNodeAccess(issue(t, c.User, login), both)
		if err == nil || !strings.Contains(err.Error(), "signed by the user CA of leaf.example.com") {
			t.Fatalf("VerifyNodeAccess = %v, want refused", err)
		}
	})
	t.Run("the_proxy_refuses_a_node_certificate_as_a_login", func(t *testing.T) {
		_, err := ca.VerifyUser(issue(t, c.OpenSSH, node), both)
		if err == nil || !strings.Contains(err.Error(), "not by a trusted user CA key") {
			t.Fatalf("VerifyUser = %v, want refused", err)
		}
	})
}
