package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport/frame"
)

// TestFallbackOnEveryQUICFailureClass: whatever stops QUIC at connect — nothing listening,
// a black hole, a handshake refused by whatever answers — the leaf is on SSH within
// seconds and dials work.
func TestFallbackOnEveryQUICFailureClass(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	// An endpoint that completes QUIC's first flight but refuses the handshake: a QUIC
	// server speaking another application protocol, as a middlebox or stray service would.
	otherQUIC := func(t *testing.T) string {
		ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*p.rootCert(t)}, NextProtos: []string{"h3"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				if _, err := ln.Accept(context.Background()); err != nil {
					return
				}
			}
		}()
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name      string
		quicAddr  func(t *testing.T) string
		wantClass []string
	}{
		{"nothing_listens_on_udp", func(t *testing.T) string { return closedUDPPort(t) }, []string{failUDPRefused, failHandshakeTimeout}},
		{"udp_black_holed", func(t *testing.T) string { return blackHole(t) }, []string{failHandshakeTimeout}},
		{"handshake_rejected", otherQUIC, []string{failHandshakeRejects}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, p, nil)
			ep := Endpoint{QUIC: tc.quicAddr(t), TCP: srv.Endpoint().TCP}
			start := time.Now()
			a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) { c.HandshakeTimeout = time.Second }), ep)
			st := waitConnected(t, a, SSH, 5*time.Second)
			t.Logf("on SSH after %v; QUIC failure: %s", time.Since(start), st.QUICFailure)
			ok := false
			for _, c := range tc.wantClass {
				ok = ok || st.QUICFailure == c
			}
			if !ok {
				t.Errorf("QUIC failure class %q, want one of %q", st.QUICFailure, tc.wantClass)
			}
			c, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, c, 1<<20)
			c.Close()
		})
	}
}

// TestFallbackAndBack: UDP blocked at connect → SSH; unblocked → the background probe
// moves the leaf back to QUIC and the SSH tunnel drains; blocked mid-session → heartbeats
// stop → SSH again; unblocked → QUIC again. cloudflared does neither move.
func TestFallbackAndBack(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	srv := startServer(t, p, nil)
	relay := newUDPRelay(t, srv.Endpoint().QUIC)
	relay.blocked.Store(true)
	a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) { c.HandshakeTimeout = time.Second }),
		Endpoint{QUIC: relay.addr(), TCP: srv.Endpoint().TCP})
	dialOver := func(want Transport) {
		t.Helper()
		c, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, 64<<10)
		if got := CarrierOf(c); got != want {
			t.Errorf("dial went over %s, want %s", got, want)
		}
	}
	waitConnected(t, a, SSH, 5*time.Second)
	dialOver(SSH)

	relay.blocked.Store(false)
	start := time.Now()
	waitConnected(t, a, QUIC, 5*time.Second)
	waitTunnels(t, srv, "leaf.example.com", 0, SSH, 5*time.Second)
	t.Logf("back on QUIC %v after UDP was unblocked; SSH drained", time.Since(start))
	dialOver(QUIC)

	relay.blocked.Store(true)
	start = time.Now()
	waitConnected(t, a, SSH, 5*time.Second)
	t.Logf("on SSH %v after UDP was blocked mid-session (%s)", time.Since(start), a.Status()[0].QUICFailure)
	dialOver(SSH)

	relay.blocked.Store(false)
	waitConnected(t, a, QUIC, 5*time.Second)
	dialOver(QUIC)
}

// TestRepeatedStreamFailuresFallBack: streams that open but never deliver a dial request
// (a path that passes the handshake and then fails) make the leaf leave QUIC; the root
// likewise closes a QUIC tunnel whose dials keep failing.
func TestRepeatedStreamFailuresFallBack(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	t.Run("leaf_leaves_quic", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) {
			c.HandshakeTimeout = 300 * time.Millisecond
			c.ProbeInterval = 2 * time.Second
		}), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		tun := srv.pick("leaf.example.com", false)
		for range StreamFailureLimit {
			st, err := tun.link.openStream(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte{5}) // a frame header's first byte, and then nothing
			defer st.Close()
		}
		st := waitConnected(t, a, SSH, 5*time.Second)
		if !strings.Contains(st.QUICFailure, "stream failures") {
			t.Errorf("QUIC failure %q", st.QUICFailure)
		}
		waitConnected(t, a, QUIC, 10*time.Second)
	})
	t.Run("root_closes_quic_after_failed_dials", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, func(s *ServerConfig) { s.KeepAliveInterval, s.KeepAliveCount = time.Second, 10 })
		relay := newUDPRelay(t, srv.Endpoint().QUIC)
		a := startAgent(t, agentConfig(t, p, nil), Endpoint{QUIC: relay.addr(), TCP: srv.Endpoint().TCP})
		waitConnected(t, a, QUIC, 5*time.Second)
		relay.blocked.Store(true)
		for i := range StreamFailureLimit {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err := srv.Dial(ctx, "leaf.example.com", "web", nil, "")
			cancel()
			if err == nil {
				t.Fatalf("dial %d through a black hole succeeded", i)
			}
		}
		waitTunnels(t, srv, "leaf.example.com", 0, QUIC, time.Second)
		waitConnected(t, a, SSH, 15*time.Second)
	})
	t.Run("slow_handler_is_not_a_stream_failure", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) {
			c.Handler = func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
				if req.Node == "slow" {
					time.Sleep(300 * time.Millisecond) // a node that takes its time to answer
				}
				return echoHandler(ctx, &frame.DialRequest{Node: "web"})
			}
		}), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		for range 2 * StreamFailureLimit {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_, err := srv.Dial(ctx, "leaf.example.com", "slow", nil, "")
			cancel()
			if err == nil {
				t.Fatal("a dial outlived its context")
			}
		}
		c, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, 1000)
		c.Close()
		if st := a.Status()[0]; st.Transport != QUIC || !st.Connected {
			t.Fatalf("slow dials moved the leaf off QUIC: %+v", st)
		}
	})
}

// TestReconnect: a root that goes away and comes back on the same address gets its leaves
// back; a "reconnect after" hint from its heartbeat replies is honoured; a shutdown's
// go-away spreads the leaves' returns.
func TestReconnect(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	restart := func(t *testing.T, old *Server, mod func(*ServerConfig)) *Server {
		ep := old.Endpoint()
		old.Close()
		var srv *Server
		testenv.Eventually(t, 5*time.Second, func() error {
			s, err := NewServer(ServerConfig{Certificate: p.rootCert(t), VerifyLeaf: p.verifier(nil), KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, Logger: testLogger(t)})
			if err != nil {
				return err
			}
			if err := s.ListenQUIC(ep.QUIC); err != nil {
				s.Close()
				return err
			}
			if err := s.ListenTCP(ep.TCP); err != nil {
				s.Close()
				return err
			}
			srv = s
			return nil
		})
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	t.Run("root_restart_with_a_hint", func(t *testing.T) {
		t.Parallel()
		const hint = 1500 * time.Millisecond
		srv := startServer(t, p, func(s *ServerConfig) { s.ReconnectHint = func(string) time.Duration { return hint } })
		a := startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		testenv.Eventually(t, 5*time.Second, func() error {
			if a.Status()[0].LastHeartbeat.IsZero() {
				return errors.New("no heartbeat reply yet")
			}
			return nil
		})
		start := time.Now()
		srv2 := restart(t, srv, nil)
		waitTunnels(t, srv2, "leaf.example.com", 1, QUIC, 10*time.Second)
		took := time.Since(start)
		t.Logf("back after %v (hint %v)", took, hint)
		if took < hint {
			t.Fatalf("the leaf came back after %v, before the root's hint of %v", took, hint)
		}
	})
	t.Run("restarted_root_resets_dead_connections_at_once", func(t *testing.T) {
		t.Parallel()
		key := []byte("0123456789abcdef0123456789abcdef")
		// Heartbeats would take 10 s to notice; the reset takes one keep-alive.
		srv := startServer(t, p, func(s *ServerConfig) { s.ResetKey, s.KeepAliveInterval, s.KeepAliveCount = key, time.Second, 10 })
		a := startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		ep := srv.Endpoint()
		// A crash: the UDP socket goes first, so no CONNECTION_CLOSE reaches the leaf.
		srv.mu.Lock()
		closeUDP := srv.closers[2] // ServeQUIC's udp.Close
		srv.mu.Unlock()
		closeUDP()
		srv.Close()
		start := time.Now()
		var srv2 *Server
		testenv.Eventually(t, 5*time.Second, func() error {
			s, err := NewServer(ServerConfig{Certificate: p.rootCert(t), VerifyLeaf: p.verifier(nil), ResetKey: key, Logger: testLogger(t)})
			if err != nil {
				return err
			}
			if err := s.ListenQUIC(ep.QUIC); err != nil {
				s.Close()
				return err
			}
			srv2 = s
			return nil
		})
		t.Cleanup(func() { srv2.Close() })
		// The leaf's QUIC idle timeout is 5 s and its heartbeat deadline 10 s: only the
		// reset brings it back sooner.
		waitTunnels(t, srv2, "leaf.example.com", 1, QUIC, 3*time.Second)
		t.Logf("back %v after the restart", time.Since(start))
	})
	t.Run("shutdown_spreads_reconnects", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		const n = 20
		agents := make([]*Agent, n)
		for i := range agents {
			agents[i] = startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		}
		waitTunnels(t, srv, "leaf.example.com", n, QUIC, 10*time.Second)
		ep := srv.Endpoint()
		start := time.Now()
		srv.Shutdown(2 * time.Second)
		back := make(chan time.Duration, n)
		srv2, err := NewServer(ServerConfig{Certificate: p.rootCert(t), VerifyLeaf: p.verifier(nil), KeepAliveInterval: 200 * time.Millisecond, KeepAliveCount: 5, Logger: testLogger(t),
			OnConnect: func(TunnelInfo) { back <- time.Since(start) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv2.Close() })
		if err := srv2.ListenQUIC(ep.QUIC); err != nil {
			t.Fatal(err)
		}
		var first, last time.Duration
		for i := range n {
			select {
			case d := <-back:
				if i == 0 {
					first = d
				}
				last = d
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d of %d leaves came back", i, n)
			}
		}
		t.Logf("returns spread from %v to %v", first, last)
		if last-first < 500*time.Millisecond {
			t.Errorf("%d leaves came back within %v of each other: not spread", n, last-first)
		}
	})
	t.Run("busy_root_sends_leaves_away_and_all_return", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, func(s *ServerConfig) { s.MaxConcurrentHellos, s.RetrySpread = 1, 300*time.Millisecond })
		for range 30 {
			startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		}
		waitTunnels(t, srv, "leaf.example.com", 30, "", 20*time.Second)
	})
}

func TestBackoffFullJitterWithCap(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond, Cap: time.Second, StableAfter: time.Minute}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if c := b.Ceiling(); c != w*time.Millisecond {
			t.Fatalf("attempt %d: ceiling %v, want %v", i, c, w*time.Millisecond)
		}
		if d := b.Next(); d < 0 || d > w*time.Millisecond {
			t.Fatalf("attempt %d: wait %v outside [0, %v]", i, d, w*time.Millisecond)
		}
	}
	b.Connected(time.Second)
	if c := b.Ceiling(); c != time.Second {
		t.Fatalf("a short-lived tunnel reset the backoff: ceiling %v", c)
	}
	b.Connected(time.Minute)
	if c := b.Ceiling(); c != 100*time.Millisecond {
		t.Fatalf("a stable tunnel did not reset the backoff: ceiling %v", c)
	}
	// Full jitter: draws spread over the whole range, not bunched at the ceiling.
	var lo, hi int
	for range 1000 {
		b := Backoff{Base: time.Second, Cap: time.Second}
		if d := b.Next(); d < 250*time.Millisecond {
			lo++
		} else if d > 750*time.Millisecond {
			hi++
		}
	}
	if lo < 150 || hi < 150 {
		t.Fatalf("draws not spread: %d below a quarter, %d above three quarters", lo, hi)
	}
}

var _ = fmt.Sprint
var _ net.Conn
