package main

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The expired-profile message says "run tether login --proxy=P --user=U again", without
// --ca-file: login then verifies the proxy with the TLS CA the last sign-in at the same
// proxy saved (cas/<cluster>.pem, itself received over a connection verified with the
// --ca-file given then), and says so. Another proxy gets no such help.
func TestLoginAgainUsesTheSavedTLSCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/webapi/ping":
			_, _ = w.Write([]byte(`{"cluster_name":"root"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"sign-in failed: wrong user name, password or one-time code"}`))
		}
	}))
	defer srv.Close()
	proxyAddr := strings.TrimPrefix(srv.URL, "https://")
	login := func(t *testing.T, home, proxy string) (string, error) {
		t.Helper()
		t.Setenv("TETHER_HOME", home)
		cmd := rootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetIn(strings.NewReader("password\n123456\n"))
		cmd.SetArgs([]string{"login", "--proxy=" + proxy, "--user=alice"})
		err := cmd.Execute()
		return out.String(), err
	}
	// An expired profile for this proxy, signed in with --ca-file before.
	home := t.TempDir()
	p := &Profile{Proxy: proxyAddr, User: "alice", Cluster: "root", SelectedCluster: "root", ValidBefore: time.Now().Add(-time.Hour)}
	p.dir = home
	p.CAFile = p.CAPath("root")
	if err := writeFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	out, err := login(t, home, proxyAddr)
	if err == nil || !strings.Contains(err.Error(), "sign-in failed") {
		t.Fatalf("login again without --ca-file: %v (%s), want the proxy reached and the sign-in refused", err, out)
	}
	if !strings.Contains(out, p.CAFile) {
		t.Errorf("login does not say which CA file verified the proxy: %q", out)
	}
	// The same profile does not vouch for another proxy.
	other := strings.Replace(proxyAddr, "127.0.0.1", "localhost", 1)
	if out, err := login(t, home, other); err == nil || strings.Contains(out, "saved") || strings.Contains(err.Error(), "sign-in failed") {
		t.Fatalf("login at another proxy: %v (%s), want a TLS refusal without the saved CA", err, out)
	}
	// No profile: no CA, as before.
	if _, err := login(t, t.TempDir(), proxyAddr); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("login without a profile: %v, want a TLS refusal asking for --ca-file", err)
	}
}
