package ca_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

// resigned returns a copy of cert changed by change and signed again by a's key, as a
// buggy or hostile issuer holding that key could produce.
func resigned(t testing.TB, a *ca.Authority, cert *ssh.Certificate, change func(*ssh.Certificate)) *ssh.Certificate {
	t.Helper()
	c := *cert
	c.Permissions.Extensions = make(map[string]string)
	for k, v := range cert.Extensions {
		c.Permissions.Extensions[k] = v
	}
	change(&c)
	if err := signCert(&c, signerOf(t, a)); err != nil {
		t.Fatal(err)
	}
	return reparse(t, &c)
}

// policyMax is the latest time policy.Input.Validate accepts.
var policyMax = time.Unix(0, math.MaxInt64).UTC()

func TestCertFromSSH(t *testing.T) {
	t.Parallel()
	root := newAuthority(t, "root.example.com", ca.UserCA, "")
	_, pub := newKey(t, "")
	base := issue(t, root, aliceRequest(pub))
	ext := func(name, value string) func(*ssh.Certificate) {
		return func(c *ssh.Certificate) { c.Extensions[name] = value }
	}
	for _, tc := range []struct {
		name   string
		change func(*ssh.Certificate)
		check  func(t *testing.T, c policy.Cert) // accepted when set
		err    string                            // refused with this text otherwise
	}{
		{"forever_valid_before_becomes_the_latest_policy_time", func(c *ssh.Certificate) { c.ValidBefore = ssh.CertTimeInfinity },
			func(t *testing.T, c policy.Cert) {
				if !c.ValidBefore.Equal(policyMax) {
					t.Errorf("valid_before %v, want %v", c.ValidBefore, policyMax)
				}
			}, ""},
		{"valid_after_past_2262_is_clamped", func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 1<<63, ssh.CertTimeInfinity },
			func(t *testing.T, c policy.Cert) {
				if !c.ValidAfter.Equal(policyMax) {
					t.Errorf("valid_after %v, want %v", c.ValidAfter, policyMax)
				}
			}, ""},
		{"valid_after_zero_is_1970", func(c *ssh.Certificate) { c.ValidAfter = 0 },
			func(t *testing.T, c policy.Cert) {
				if !c.ValidAfter.Equal(time.Unix(0, 0)) {
					t.Errorf("valid_after %v", c.ValidAfter)
				}
			}, ""},
		{"no_user_extension_means_the_key_id_is_the_user", func(c *ssh.Certificate) { delete(c.Extensions, ca.ExtUser) },
			func(t *testing.T, c policy.Cert) {
				if c.Username != "alice@root.example.com" {
					t.Errorf("username %q", c.Username)
				}
			}, ""},
		{"no_roles_extension_means_no_roles", func(c *ssh.Certificate) { delete(c.Extensions, ca.ExtRoles) },
			func(t *testing.T, c policy.Cert) {
				if len(c.Roles) != 0 {
					t.Errorf("roles %v", c.Roles)
				}
			}, ""},
		{"unknown_extension_is_ignored", ext("something@example.com", "\xff\x00"),
			func(t *testing.T, c policy.Cert) {}, ""},
		{"json_escapes_are_decoded", ext(ca.ExtRoles, `["a\u00e9\"b", "\ud800"]`),
			func(t *testing.T, c policy.Cert) {
				if len(c.Roles) != 2 || c.Roles[0] != `aé"b` || c.Roles[1] != "\uFFFD" {
					t.Errorf("roles %q", c.Roles)
				}
			}, ""},

		{"roles_not_json", ext(ca.ExtRoles, `[access`), nil, "malformed JSON"},
		{"roles_null", ext(ca.ExtRoles, `null`), nil, "want an array of roles, got null"},
		{"roles_object", ext(ca.ExtRoles, `{"a":"b"}`), nil, "want an array of roles"},
		{"roles_a_string", ext(ca.ExtRoles, `"access"`), nil, "want an array of roles"},
		{"role_a_number", ext(ca.ExtRoles, `["a", 1]`), nil, "want a role (string), got a number"},
		{"roles_nested", ext(ca.ExtRoles, `[["a"]]`), nil, "want a role (string)"},
		{"roles_trailing_data", ext(ca.ExtRoles, `["a"] ["b"]`), nil, "after the JSON value"},
		{"roles_trailing_garbage", ext(ca.ExtRoles, `["a"]x`), nil, "malformed JSON"},
		{"roles_empty_name", ext(ca.ExtRoles, `[""]`), nil, "role is empty"},
		{"roles_not_utf8", ext(ca.ExtRoles, "[\"\xff\"]"), nil, "not valid UTF-8"},
		{"roles_oversize", ext(ca.ExtRoles, `["`+strings.Repeat("a", ca.MaxExtensionBytes)+`"]`), nil, "more than"},
		{"role_too_long", ext(ca.ExtRoles, `["`+strings.Repeat("a", ca.MaxCertStringBytes+1)+`"]`), nil, "more than"},
		{"too_many_roles", ext(ca.ExtRoles, `[`+strings.Repeat(`"a",`, ca.MaxCertStrings)+`"a"]`), nil, "more than"},
		{"traits_not_json", ext(ca.ExtTraits, `{"a":`), nil, "malformed JSON"},
		{"traits_null", ext(ca.ExtTraits, `null`), nil, "want an object of traits"},
		{"traits_array", ext(ca.ExtTraits, `[]`), nil, "want an object of traits"},
		{"trait_value_a_string", ext(ca.ExtTraits, `{"logins":"root"}`), nil, `trait "logins": want an array`},
		{"trait_value_null", ext(ca.ExtTraits, `{"logins":null}`), nil, `trait "logins": want an array`},
		{"trait_twice", ext(ca.ExtTraits, `{"logins":["a"],"logins":["root"]}`), nil, `trait "logins" appears twice`},
		{"trait_empty_name", ext(ca.ExtTraits, `{"":["a"]}`), nil, "trait name is empty"},
		{"traits_trailing_data", ext(ca.ExtTraits, `{}{}`), nil, "after the JSON value"},
		{"mfa_flag_with_a_value", ext(ca.ExtMFAVerified, "false"), nil, "is a flag and must have no value"},
		{"route_not_utf8", ext(ca.ExtRouteToCluster, "\xfe"), nil, "not valid UTF-8"},
		{"issued_via_too_long", ext(ca.ExtIssuedVia, strings.Repeat("x", ca.MaxCertStringBytes+1)), nil, "more than"},
		{"empty_user", ext(ca.ExtUser, ""), nil, "user name is empty"},
		{"empty_principal", func(c *ssh.Certificate) { c.ValidPrincipals = []string{""} }, nil, "principal is empty"},
		// ssh-keygen signs such a certificate and OpenSSH takes it as valid for every login.
		{"no_principals", func(c *ssh.Certificate) { c.ValidPrincipals = nil }, nil, "has no principals"},
		{"key_id_not_utf8", func(c *ssh.Certificate) { c.KeyId = "\xc0" }, nil, "key id is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := resigned(t, root, base, tc.change)
			signer, err := ca.VerifyUser(cert, root.TrustedKeys())
			if err != nil {
				t.Fatalf("VerifyUser: %v", err)
			}
			c, err := policy.CertFromSSH(cert, signer)
			if tc.check == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("CertFromSSH error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CertFromSSH: %v", err)
			}
			tc.check(t, c)
			in := policy.Input{Action: policy.ActionSSHSession, Cluster: "leaf.example.com", Now: testNow, Cert: c, Login: "visitor"}
			if err := in.Validate(); err != nil {
				t.Errorf("the policy refuses the input: %v", err)
			}
		})
	}

	t.Run("signer_that_did_not_sign_is_refused", func(t *testing.T) {
		other := newAuthority(t, "root.example.com", ca.UserCA, "")
		_, err := policy.CertFromSSH(base, other.TrustedKeys()[0])
		if err == nil || !strings.Contains(err.Error(), "not signed by the key given") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("host_certificate_is_refused", func(t *testing.T) {
		host := resigned(t, root, base, func(c *ssh.Certificate) { c.CertType = ssh.HostCert })
		_, err := policy.CertFromSSH(host, root.TrustedKeys()[0])
		if !errors.Is(err, ca.ErrWrongCertType) {
			t.Errorf("error = %v", err)
		}
	})
}
