package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/web"
)

// TestAClusterNameFromTheProxyNeverBecomesAPath: tether login wrote the TLS CA the proxy
// sent to keys/<proxy>/cas/<cluster>.pem, the cluster being the name the proxy sent: a
// malicious proxy (or a man in the middle of an --insecure login) naming its cluster
// "../../../../x" wrote a file of its choosing, ending in .pem, wherever the user may
// write (another tool's CA bundle, ~/.docker/ca.pem), and the name stayed in the profile
// for later paths. Only a cluster name is taken from the proxy.
func TestAClusterNameFromTheProxyNeverBecomesAPath(t *testing.T) {
	userCA, _ := newTestSigner(t)
	hostCA, _ := newTestSigner(t)
	for _, tc := range []struct{ name, ping, cluster string }{
		{"login_answer", "root", "../../../../escaped"},
		{"ping_answer", "../../../../escaped", "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/webapi/ping":
					_ = json.NewEncoder(w).Encode(web.PingResponse{ClusterName: tc.ping})
				case web.LoginPath:
					var req web.LoginRequest
					_ = json.NewDecoder(r.Body).Decode(&req)
					pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
					if err != nil {
						w.WriteHeader(http.StatusBadRequest)
						return
					}
					cert := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, KeyId: "alice", ValidPrincipals: []string{"alice"},
						ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
					if err := cert.SignCert(bytes.NewReader(make([]byte, 64)), userCA); err != nil {
						w.WriteHeader(http.StatusInternalServerError)
						return
					}
					caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
					_ = json.NewEncoder(w).Encode(web.LoginResponse{
						Cluster: tc.cluster, SSHCert: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
						TLSCert: caPEM, TLSCA: "attacker's choice\n", ValidBefore: time.Now().Add(time.Hour),
						HostCAs: []web.HostCA{{Cluster: "root", Keys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))}}},
						Roles:   []string{"access"}, Logins: []string{"alice"},
					})
				}
			}))
			defer srv.Close()
			top := t.TempDir()
			home := filepath.Join(top, "home")
			caFile := filepath.Join(top, "proxy-ca.pem")
			if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("TETHER_HOME", home)
			cmd := rootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetIn(strings.NewReader("password\n123456\n"))
			cmd.SetArgs([]string{"login", "--proxy=" + strings.TrimPrefix(srv.URL, "https://"), "--user=alice", "--ca-file=" + caFile})
			err := cmd.Execute()
			var escaped []string
			_ = filepath.Walk(top, func(p string, info os.FileInfo, err error) error {
				if err == nil && strings.Contains(info.Name(), "escaped") {
					escaped = append(escaped, p)
				}
				return nil
			})
			if len(escaped) > 0 {
				t.Fatalf("the proxy's cluster name became a path: %v written (login: %v)", escaped, err)
			}
			if err == nil || !strings.Contains(err.Error(), "not a cluster name") {
				t.Fatalf("login: %v (%s), want a refusal of the proxy's cluster name", err, out.String())
			}
		})
	}
}
