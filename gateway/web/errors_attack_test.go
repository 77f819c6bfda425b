package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
)

// TestAnonymousCallersNeverReadInternalErrors: with the cluster's Redis down, a sign-in
// (sign-up, trust handshake, node join) attempt by anyone answered 500 with the whole error chain: the storage
// backend, its address and the store's key layout ("state: redis get at
// 127.0.0.1:6379: ... dial tcp ..."). The sign-in routes are public; what went wrong
// inside belongs in the proxy's log, the caller is told to try again later.
func TestAnonymousCallersNeverReadInternalErrors(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	srv := redistest.Start(t, redistest.Config{})
	logs := &testenv.Buffer{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.NewRedis(state.RedisConfig{Addr: srv.Addr(), Namespace: "root.example.com", Logger: quiet,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(context.Background(), auth.Config{ClusterName: "root.example.com", CA: c, Store: st, Engine: eng, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Auth: a, PublicAddr: l.Addr().String(), Logger: logTo(logs)})
	s.HandleLogin(auth.NewUsers(a, auth.UsersConfig{}))
	s.HandleNodes()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	f := &loginFixture{auth: a, addr: l.Addr().String()}
	anon := f.clientFrom("127.0.0.2", nil)
	_, key := sshKey(t)

	srv.Kill()
	for _, tc := range []struct {
		path string
		body any
	}{
		{LoginPath, LoginRequest{User: "alice", Password: "a guess", OTP: "000000", PublicKey: key}},
		{SignupInfoPath, SignupTokenBody{Token: strings.Repeat("ab", 32)}},
		{SignupPath, SignupRequest{Token: strings.Repeat("ab", 32), Password: "a password", OTP: "000000"}},
		{NodeJoinPath, auth.NodeJoinRequest{Token: strings.Repeat("ab", 16), Name: "node1", Addr: "127.0.0.1:3022", PublicKey: key}},
		{trust.ValidatePath, json.RawMessage(validateBody(t, strings.Repeat("ab", 16), "leaf.example.com"))},
	} {
		resp, data := call(t, anon, "https://"+f.addr+tc.path, tc.body, nil)
		if resp.StatusCode < 500 {
			t.Fatalf("%s with the store down: HTTP %d %s, want a server error", tc.path, resp.StatusCode, data)
		}
		for _, leak := range []string{srv.Addr(), "redis", "state:", "dial", "users/", "resources/"} {
			if strings.Contains(string(data), leak) {
				t.Errorf("%s: an anonymous caller reads %q in %s", tc.path, leak, data)
			}
		}
		if !strings.Contains(string(data), "try again") {
			t.Errorf("%s: %s does not tell the caller what to do", tc.path, data)
		}
	}
	if !strings.Contains(logs.String(), srv.Addr()) {
		t.Errorf("the proxy's log does not keep the cause:\n%s", logs.String())
	}
}
