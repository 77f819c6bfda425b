package adminclient

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tetherproject/tether/gateway/identity"
)

// An admin who points tetherctl at the wrong place is told what is wrong and what to
// check, not Go's error chain (acceptance pass: "calling the auth server: Get
// "https://…/v1/admin/status": tls: failed to verify certificate: x509: certificate
// signed by unknown authority" for a leaf's identity file used against the root).
func TestCallErrorsSayWhatToCheck(t *testing.T) {
	// An auth server whose certificate is from another CA than the identity's.
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(other.Close)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	id := &identity.Identity{RootCAs: x509.NewCertPool()}
	for _, tc := range []struct {
		name, addr string
		want       []string
	}{
		{"another_clusters_server", strings.TrimPrefix(other.URL, "https://"), []string{"is not the cluster of the identity file", "-i", "--auth-server"}},
		{"nothing_listening", closed, []string{"cannot reach the auth server at " + closed, "is tetherd running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(id, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = c.do(context.Background(), http.MethodGet, "/v1/admin/status", nil, "", nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, leak := range []string{"x509:", "Get \"", "dial tcp"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows Go's error chain (%q)", err, leak)
				}
			}
		})
	}
}

// An answer over MaxAnswer was cut there and used as if whole (a YAML list of resources
// cut between two documents reads as a shorter list): it is an error now.
func TestAnAnswerTooLargeIsAnErrorNotAPart(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		doc := []byte("---\nkind: role\nversion: v5\nmetadata: {name: r}\n")
		for n := 0; n <= MaxAnswer; n += len(doc) {
			if _, err := w.Write(doc); err != nil {
				return
			}
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := New(&identity.Identity{RootCAs: pool}, strings.TrimPrefix(srv.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.raw(context.Background(), http.MethodGet, "/v1/admin/resources/role", nil)
	if err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Fatalf("an answer over %d bytes: %d bytes, error %v", MaxAnswer, len(data), err)
	}
}
