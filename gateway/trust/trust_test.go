package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
)

func hostCA(t testing.TB, name string) CA {
	t.Helper()
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Host.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return FromResource(r)
}

func TestDecodeValidateRequest(t *testing.T) {
	good := hostCA(t, "leaf.example.com")
	user := good
	user.Type = "user"
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	valid := enc(ValidateRequest{Token: "abc123", CAs: []CA{good}})
	for _, tc := range []struct {
		name, body, want string
	}{
		{"valid", valid, ""},
		{"empty_body", "", "empty or truncated"},
		{"truncated_body", valid[:len(valid)/2], "truncated"},
		{"trailing_data", valid + "{}", "data after"},
		{"unknown_field", `{"token":"abc","certificate_authorities":[],"labels":{"env":"prod"}}`, "unknown field"},
		{"private_key_field", strings.Replace(valid, `"ssh_public_keys"`, `"private_key":"x","ssh_public_keys"`, 1), "unknown field"},
		{"missing_token", enc(ValidateRequest{CAs: []CA{good}}), "token is required"},
		{"oversize_token", enc(ValidateRequest{Token: strings.Repeat("a", MaxTokenSize+1), CAs: []CA{good}}), "longer than"},
		{"token_with_newline", enc(ValidateRequest{Token: "ab\nc", CAs: []CA{good}}), "printable ASCII"},
		{"no_ca", enc(ValidateRequest{Token: "abc"}), "exactly one"},
		{"two_cas", enc(ValidateRequest{Token: "abc", CAs: []CA{good, good}}), "exactly one"},
		{"user_ca_instead_of_host", enc(ValidateRequest{Token: "abc", CAs: []CA{user}}), `type "user"`},
		{"garbage_key", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "leaf", SSHPublicKeys: []string{"ssh-ed25519 AAAAnotbase64"}}}}), "ssh"},
		{"no_keys", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "leaf"}}}), "no SSH public keys"},
		{"bad_cluster_name", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "a b", SSHPublicKeys: good.SSHPublicKeys}}}), "whitespace"},
		{"oversize_body", `{"token":"` + strings.Repeat("a", MaxBodySize) + `"}`, "larger than"},
		{"name_with_empty_label", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "leaf..example.com", SSHPublicKeys: good.SSHPublicKeys}}}), "empty label"},
		{"name_with_slash", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "leaf/x", SSHPublicKeys: good.SSHPublicKeys}}}), "'/' is not allowed"},
		{"name_dot_dot", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "..", SSHPublicKeys: good.SSHPublicKeys}}}), `".."`},
		{"name_zero_width", enc(ValidateRequest{Token: "abc", CAs: []CA{{Type: "host", ClusterName: "le\u200baf", SSHPublicKeys: good.SSHPublicKeys}}}), "invisible"},
		{"not_json", "token=abc", "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, err := DecodeValidateRequest(strings.NewReader(tc.body))
			if tc.want == "" {
				if err != nil || r.Spec.ClusterName != "leaf.example.com" || r.Spec.Type != "host" {
					t.Fatalf("got %v, %+v", err, r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeValidateRequestNormalisesTheLeafName(t *testing.T) {
	c := hostCA(t, "leaf.example.com")
	c.ClusterName = "LEAF.Example.com."
	b, _ := json.Marshal(ValidateRequest{Token: "abc", CAs: []CA{c}})
	_, r, err := DecodeValidateRequest(bytes.NewReader(b))
	if err != nil || r.Spec.ClusterName != "leaf.example.com" || r.Metadata.Name != "leaf.example.com" {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestDecodeValidateResponse(t *testing.T) {
	host := hostCA(t, "root.example.com")
	c, _ := ca.NewCluster("root.example.com", "")
	ur, _ := c.User.Resource(false)
	user := FromResource(ur)
	other := hostCA(t, "evil.example.com")
	enc := func(cas ...CA) string { b, _ := json.Marshal(ValidateResponse{CAs: cas}); return string(b) }
	for _, tc := range []struct{ name, body, want string }{
		{"valid", enc(host, user), ""},
		{"wrong_cluster_name", enc(other, user), `cluster "evil.example.com"`},
		{"missing_user_ca", enc(host), "lacks"},
		{"duplicate", enc(host, host, user), "two host"},
		{"garbage", "<html>hello</html>", "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cas, err := DecodeValidateResponse(strings.NewReader(tc.body), "root.example.com")
			if tc.want == "" {
				if err != nil || len(cas) != 2 {
					t.Fatalf("got %v %d", err, len(cas))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClientAgainstBadRoots(t *testing.T) {
	req := ValidateRequest{Token: "abc", CAs: []CA{hostCA(t, "leaf")}}
	serve := func(h http.HandlerFunc) *httptest.Server {
		s := httptest.NewTLSServer(h)
		t.Cleanup(s.Close)
		return s
	}
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }
	t.Run("self_signed_root_is_refused_without_insecure", func(t *testing.T) {
		s := serve(func(w http.ResponseWriter, r *http.Request) {})
		_, err := Client{Timeout: 5 * time.Second}.Validate(context.Background(), addr(s), "root", req)
		if err == nil || !strings.Contains(err.Error(), "misconfigured HTTP/TLS certificate") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("garbage_answer", func(t *testing.T) {
		s := serve(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("\x00\x01garbage")) })
		_, err := Client{Insecure: true, Timeout: 5 * time.Second}.Validate(context.Background(), addr(s), "root", req)
		if err == nil || !strings.Contains(err.Error(), "decoding body") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("oversize_answer", func(t *testing.T) {
		s := serve(func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte(" "), MaxBodySize+10)) })
		_, err := Client{Insecure: true, Timeout: 5 * time.Second}.Validate(context.Background(), addr(s), "root", req)
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("hanging_root_times_out", func(t *testing.T) {
		release := make(chan struct{})
		s := serve(func(w http.ResponseWriter, r *http.Request) { <-release })
		defer close(release)
		start := time.Now()
		_, err := Client{Insecure: true, Timeout: 300 * time.Millisecond}.Validate(context.Background(), addr(s), "root", req)
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
	t.Run("rejected_token", func(t *testing.T) {
		s := serve(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(ErrorResponse{Error: RejectedTokenMessage})
		})
		_, err := Client{Insecure: true, Timeout: 5 * time.Second}.Validate(context.Background(), addr(s), "root", req)
		if !errors.Is(err, ErrTokenRejected) {
			t.Fatalf("got %v", err)
		}
	})
}

func FuzzDecodeValidateRequest(f *testing.F) {
	good, _ := json.Marshal(ValidateRequest{Token: "abc123", CAs: []CA{hostCA(f, "leaf.example.com")}})
	f.Add(good)
	f.Add([]byte(`{"token":"x","certificate_authorities":[{"type":"host","cluster_name":"l","ssh_public_keys":["ssh-ed25519 AAAA"]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, r, err := DecodeValidateRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever is accepted is a well-formed host CA with a usable token.
		if checkToken(req.Token) != nil || r.Spec.Type != "host" || len(r.Spec.ActiveKeys.SSH) == 0 {
			t.Fatalf("accepted a bad request: %+v", req)
		}
		if _, err := ca.TrustedKeysOf(r); err != nil {
			t.Fatalf("accepted keys that do not parse: %v", err)
		}
		for _, k := range append(r.Spec.ActiveKeys.SSH, r.Spec.AdditionalTrustedKeys.SSH...) {
			if k.PrivateKey != "" {
				t.Fatal("accepted a private key")
			}
		}
	})
}

func tlsCA(t testing.TB, name string) CA {
	t.Helper()
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.TLS.Resource(false)
	if err != nil {
		t.Fatal(err)
	}
	return FromResource(r)
}

// The TLS CAs the tunnel pins: exactly the cluster's own X.509 CA certificates, no SSH
// keys smuggled in, never a leaf certificate, never another cluster's CA.
func TestDecodeTLSCAs(t *testing.T) {
	host, own, other := hostCA(t, "leaf.example.com"), tlsCA(t, "leaf.example.com"), tlsCA(t, "evil.example.com")
	withSSH := own
	withSSH.SSHPublicKeys = host.SSHPublicKeys
	empty := own
	empty.TLSCerts = nil
	renamed := other
	renamed.ClusterName = "leaf.example.com"
	enc := func(cas ...CA) string {
		b, _ := json.Marshal(ValidateRequest{Token: "abc", CAs: cas})
		return string(b)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"host_and_tls", enc(host, own), ""},
		{"host_only_from_an_older_leaf", enc(host), ""},
		{"tls_first", enc(own, host), "host CA first"},
		{"two_tls", enc(host, own, own), "at most one tls"},
		{"tls_of_another_cluster", enc(host, other), `of cluster "evil.example.com"`},
		{"another_clusters_certificate_renamed", enc(host, renamed), "is for \"evil.example.com\""},
		{"tls_with_ssh_keys", enc(host, withSSH), "carries SSH public keys"},
		{"tls_without_certificates", enc(host, empty), "no certificates"},
		{"a_host_ca_as_second", enc(host, host), `of type "host"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, r, err := DecodeValidateRequest(strings.NewReader(tc.body))
			if tc.want == "" {
				if err != nil || r.Spec.Type != "host" {
					t.Fatalf("got %v", err)
				}
				if tc.name == "host_and_tls" && (req.TLSCA() == nil || req.TLSCA().Spec.ClusterName != "leaf.example.com" || len(req.TLSCA().Spec.ActiveKeys.TLS) != 1) {
					t.Fatalf("tls CA: %+v", req.TLSCA())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("the_roots_answer_carries_its_tls_CA", func(t *testing.T) {
		c, _ := ca.NewCluster("root.example.com", "")
		h, _ := c.Host.Resource(false)
		u, _ := c.User.Resource(false)
		tl, _ := c.TLS.Resource(false)
		b, _ := json.Marshal(ValidateResponse{CAs: []CA{FromResource(h), FromResource(u), FromResource(tl)}})
		cas, err := DecodeValidateResponse(bytes.NewReader(b), "root.example.com")
		if err != nil || len(cas) != 3 || cas[2].Spec.Type != "tls" {
			t.Fatalf("%v %d", err, len(cas))
		}
		b, _ = json.Marshal(ValidateResponse{CAs: []CA{FromResource(h), FromResource(u), tlsCA(t, "evil.example.com")}})
		if _, err := DecodeValidateResponse(bytes.NewReader(b), "root.example.com"); err == nil {
			t.Fatal("a root answered another cluster's TLS CA")
		}
	})
}
