package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/transport/frame"
)

const bulkLeaf = "leaf.example.com"

func bulkAgent(mod func(*AgentConfig)) func(*AgentConfig) {
	return func(c *AgentConfig) {
		c.BulkSSH = true
		if mod != nil {
			mod(c)
		}
	}
}

// waitBulk waits until the agent's only replica is connected over QUIC with the SSH
// tunnel for sessions up beside it (want) or not.
func waitBulk(t *testing.T, a *Agent, want bool, within time.Duration) ReplicaStatus {
	t.Helper()
	var st ReplicaStatus
	testenv.Eventually(t, within, func() error {
		ss := a.Status()
		if len(ss) == 0 {
			return errors.New("no replica")
		}
		st = ss[0]
		if !st.Connected || st.Transport != QUIC || st.Bulk != want {
			return fmt.Errorf("replica %+v, want connected over QUIC with bulk=%v", st, want)
		}
		return nil
	})
	return st
}

// tunnelsOf returns the root's tunnels of the test leaf by carrier.
func tunnelsOf(s *Server) map[Transport][]TunnelInfo {
	out := map[Transport][]TunnelInfo{}
	for _, ti := range s.Tunnels() {
		if ti.Cluster == bulkLeaf {
			out[ti.Transport] = append(out[ti.Transport], ti)
		}
	}
	return out
}

// sessionOver dials a user session and checks the carrier that took it.
func sessionOver(t *testing.T, s *Server, want Transport) net.Conn {
	t.Helper()
	c, err := s.Dial(context.Background(), bulkLeaf, "web", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := CarrierOf(c); got != want {
		c.Close()
		t.Fatalf("the session went over %s, want %s", got, want)
	}
	return c
}

// bulkUp has an idle leaf carry a user session — it rides QUIC and brings the SSH tunnel
// for sessions up — and waits until that tunnel is up on both sides.
func bulkUp(t *testing.T, s *Server, a *Agent) {
	t.Helper()
	c := sessionOver(t, s, QUIC)
	roundTrip(t, c, 16<<10)
	c.Close()
	waitBulk(t, a, true, 5*time.Second)
	waitTunnels(t, s, bulkLeaf, 1, SSH, 5*time.Second)
}

// ping writes n bytes to an echo connection and reads them back, leaving it open.
func ping(c net.Conn, n int) error {
	data := bytes.Repeat([]byte{'p'}, n)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(data); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(got, data) {
		return errors.New("the echo differs")
	}
	return nil
}

// serviceDials counts the dial streams the root opened per carrier; a service request
// (node list) is sent and its carrier read from the counter, since the test handler
// refuses services.
func serviceOver(t *testing.T, s *Server, want Transport) {
	t.Helper()
	before := map[Transport]uint64{}
	for tr, ts := range tunnelsOf(s) {
		for _, ti := range ts {
			before[tr] += ti.Dials
		}
	}
	_, err := s.DialTraced(context.Background(), bulkLeaf, &frame.DialRequest{Service: frame.ServiceNodeList})
	var denied *DialDeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("service request: %v", err)
	}
	after := map[Transport]uint64{}
	for tr, ts := range tunnelsOf(s) {
		for _, ti := range ts {
			after[tr] += ti.Dials
		}
	}
	if after[want] != before[want]+1 {
		t.Fatalf("the service request did not go over %s: dials before %v, after %v", want, before, after)
	}
}

// TestBulkSSHCarriesSessions: with BulkSSH an idle leaf holds one QUIC tunnel; the first
// user session rides QUIC and brings an SSH tunnel up beside it, and the next sessions go
// over that; service requests and heartbeats stay on QUIC and never open it; the SSH
// tunnel killed → sessions over QUIC, the QUIC tunnel untouched, the next session opens it
// again; QUIC killed → the SSH tunnel carries everything with its live sessions intact, and
// when QUIC returns the same SSH tunnel stays for sessions instead of draining.
func TestBulkSSHCarriesSessions(t *testing.T) {
	t.Parallel()
	p := testPKI(t)

	t.Run("idle_leaf_one_tunnel_first_session_opens_ssh", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, bulkAgent(nil)), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		for range 3 {
			serviceOver(t, srv, QUIC)
		}
		time.Sleep(500 * time.Millisecond) // give a wrongly opened SSH tunnel the time to show
		if got := tunnelsOf(srv); len(got[SSH]) != 0 || len(got[QUIC]) != 1 {
			t.Fatalf("idle leaf after service requests: tunnels %+v, want one QUIC tunnel", got)
		}
		if st := a.Status()[0]; st.Bulk || st.BulkError != "" {
			t.Fatalf("idle leaf status %+v", st)
		}
		first := sessionOver(t, srv, QUIC) // nothing waits for the SSH tunnel
		defer first.Close()
		waitBulk(t, a, true, 5*time.Second)
		waitTunnels(t, srv, bulkLeaf, 1, SSH, 5*time.Second)
		if ssh := tunnelsOf(srv)[SSH][0]; !ssh.Bulk {
			t.Errorf("the SSH tunnel is not marked bulk: %+v", ssh)
		}
		if q := tunnelsOf(srv)[QUIC][0]; q.Bulk {
			t.Errorf("the QUIC tunnel is marked bulk: %+v", q)
		}
		roundTrip(t, first, 64<<10)
		c := sessionOver(t, srv, SSH)
		roundTrip(t, c, 1<<20)
		c.Close()
		serviceOver(t, srv, QUIC)
	})

	t.Run("idle_close_keeps_live_session_and_leaf_online", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, bulkAgent(func(c *AgentConfig) { c.BulkIdleTimeout = 400 * time.Millisecond })), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		quicSince := a.Status()[0].Since
		bulkUp(t, srv, a)
		sshAt := tunnelsOf(srv)[SSH][0].ConnectedAt
		live := sessionOver(t, srv, SSH)
		for range 3 { // three idle timeouts with a session open but quiet
			time.Sleep(400 * time.Millisecond)
			if err := ping(live, 1024); err != nil {
				t.Fatalf("a live session on the SSH tunnel was cut: %v", err)
			}
		}
		if got := tunnelsOf(srv)[SSH]; len(got) != 1 || !got[0].ConnectedAt.Equal(sshAt) {
			t.Fatalf("the SSH tunnel with a live session did not stay: %+v", got)
		}
		roundTrip(t, live, 1024)
		live.Close()
		waitTunnels(t, srv, bulkLeaf, 0, SSH, 5*time.Second)
		st := waitBulk(t, a, false, 2*time.Second)
		if st.BulkError != "" || !st.Since.Equal(quicSince) {
			t.Errorf("after the idle close: status %+v, QUIC since %v", st, quicSince)
		}
		if got := tunnelsOf(srv)[QUIC]; len(got) != 1 {
			t.Fatalf("the QUIC tunnel did not stay: %+v", got)
		}
		bulkUp(t, srv, a) // the next session opens it again
		c := sessionOver(t, srv, SSH)
		roundTrip(t, c, 64<<10)
		c.Close()
	})

	t.Run("bulk_killed_sessions_fall_back_to_quic_and_it_returns", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, bulkAgent(func(c *AgentConfig) {
			c.Backoff = Backoff{Base: 300 * time.Millisecond, Cap: 300 * time.Millisecond}
		})), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		quicSince := a.Status()[0].Since
		bulkUp(t, srv, a)
		live := sessionOver(t, srv, SSH)
		defer live.Close()

		srv.mu.Lock()
		var bulk *rootTunnel
		for _, rt := range srv.tunnels[bulkLeaf] {
			if rt.bulk {
				bulk = rt
			}
		}
		srv.mu.Unlock()
		bulk.end(codeNormal, errors.New("test: the SSH path broke"))
		waitTunnels(t, srv, bulkLeaf, 0, SSH, 5*time.Second)
		if err := echoCheck(live, 1024); err == nil {
			t.Error("a session on the killed SSH tunnel still carries bytes")
		}
		// Sessions ride QUIC; one after the failure's backoff opens the SSH tunnel again.
		c := sessionOver(t, srv, QUIC)
		roundTrip(t, c, 16<<10)
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for !a.Status()[0].Bulk {
			if time.Now().After(deadline) {
				t.Fatalf("the SSH tunnel for sessions did not come back: %+v", a.Status()[0])
			}
			time.Sleep(100 * time.Millisecond)
			c, err := srv.Dial(context.Background(), bulkLeaf, "web", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, c, 16<<10)
			c.Close()
		}
		waitTunnels(t, srv, bulkLeaf, 1, SSH, 5*time.Second)
		if st := a.Status()[0]; !st.Since.Equal(quicSince) {
			t.Errorf("the QUIC tunnel was disturbed: since %v, was %v", st.Since, quicSince)
		}
		c = sessionOver(t, srv, SSH)
		roundTrip(t, c, 64<<10)
		c.Close()
	})

	t.Run("bulk_unreachable_leaves_quic_alone", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedTCP := ln.Addr().String()
		ln.Close()
		a := startAgent(t, agentConfig(t, p, bulkAgent(nil)), Endpoint{QUIC: srv.Endpoint().QUIC, TCP: closedTCP})
		waitConnected(t, a, QUIC, 5*time.Second)
		c := sessionOver(t, srv, QUIC)
		roundTrip(t, c, 64<<10)
		c.Close()
		testenv.Eventually(t, 5*time.Second, func() error {
			if st := a.Status()[0]; st.BulkError == "" || !st.Connected || st.Transport != QUIC {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		c = sessionOver(t, srv, QUIC)
		roundTrip(t, c, 64<<10)
		c.Close()
	})

	t.Run("quic_killed_bulk_takes_over_then_stays_beside_quic", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		relay := newUDPRelay(t, srv.Endpoint().QUIC)
		a := startAgent(t, agentConfig(t, p, bulkAgent(func(c *AgentConfig) { c.HandshakeTimeout = time.Second })),
			Endpoint{QUIC: relay.addr(), TCP: srv.Endpoint().TCP})
		waitConnected(t, a, QUIC, 5*time.Second)
		bulkUp(t, srv, a)
		sshAt := tunnelsOf(srv)[SSH][0].ConnectedAt
		live := sessionOver(t, srv, SSH)
		defer live.Close()

		relay.blocked.Store(true)
		waitConnected(t, a, SSH, 5*time.Second)
		waitTunnels(t, srv, bulkLeaf, 0, QUIC, 5*time.Second)
		if err := echoCheck(live, 64<<10); err != nil {
			t.Errorf("a session on the SSH tunnel did not survive the end of the QUIC tunnel: %v", err)
		}
		if got := tunnelsOf(srv)[SSH]; len(got) != 1 || !got[0].ConnectedAt.Equal(sshAt) {
			t.Fatalf("the SSH tunnel kept for sessions was replaced: %+v", got)
		}
		serviceOver(t, srv, SSH)

		relay.blocked.Store(false)
		waitBulk(t, a, true, 10*time.Second)
		waitTunnels(t, srv, bulkLeaf, 1, QUIC, 5*time.Second)
		if got := tunnelsOf(srv)[SSH]; len(got) != 1 || !got[0].ConnectedAt.Equal(sshAt) {
			t.Fatalf("QUIC came back and the SSH tunnel was not kept: %+v", got)
		}
		c := sessionOver(t, srv, SSH)
		roundTrip(t, c, 64<<10)
		c.Close()
		serviceOver(t, srv, QUIC)
	})

	t.Run("option_off_never", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		for range 3 {
			c := sessionOver(t, srv, QUIC)
			c.Close()
		}
		time.Sleep(500 * time.Millisecond) // give a wrongly started SSH tunnel the time to show
		if got := tunnelsOf(srv); len(got[SSH]) != 0 || len(got[QUIC]) != 1 {
			t.Fatalf("tunnels %+v, want one QUIC tunnel", got)
		}
		c := sessionOver(t, srv, QUIC)
		c.Close()
	})

	t.Run("older_root_gets_no_bulk_tunnel", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, func(c *ServerConfig) { c.legacyNoBulk = true })
		a := startAgent(t, agentConfig(t, p, bulkAgent(nil)), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		c := sessionOver(t, srv, QUIC)
		c.Close()
		time.Sleep(500 * time.Millisecond)
		if got := tunnelsOf(srv); len(got[SSH]) != 0 || len(got[QUIC]) != 1 {
			t.Fatalf("tunnels %+v, want one QUIC tunnel", got)
		}
		if st := a.Status()[0]; st.Bulk {
			t.Errorf("status %+v claims a bulk tunnel", st)
		}
	})

	t.Run("disconnect_closes_both", func(t *testing.T) {
		t.Parallel()
		var trusted atomic.Bool
		trusted.Store(true)
		srv := startServer(t, p, func(c *ServerConfig) { c.VerifyLeaf = p.verifier(&trusted) })
		a := startAgent(t, agentConfig(t, p, bulkAgent(nil)), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		bulkUp(t, srv, a)
		trusted.Store(false)
		if n := srv.Disconnect(bulkLeaf, "trust disabled"); n != 2 {
			t.Errorf("Disconnect closed %d tunnels, want 2", n)
		}
		waitTunnels(t, srv, bulkLeaf, 0, "", 2*time.Second)
		testenv.Eventually(t, 2*time.Second, func() error {
			if st := a.Status()[0]; st.Connected || st.Bulk {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
	})
}

// TestPickSkipsAClosingSSHTunnel: an SSH tunnel for sessions the leaf is closing for
// idleness (its heartbeat said StateClosing) gets no new session while QUIC is healthy,
// and still one when it is all there is.
func TestPickSkipsAClosingSSHTunnel(t *testing.T) {
	now := time.Now().UnixNano()
	mk := func(tr Transport, bulk bool, state string) *rootTunnel {
		rt := &rootTunnel{session: &session{link: fakeLink{tr: tr}, bulk: bulk, interval: time.Second, connectedAt: time.Now()}}
		rt.lastHeartbeat.Store(now)
		rt.state.Store(state)
		return rt
	}
	q, b := mk(QUIC, false, "ok"), mk(SSH, true, "ok")
	s := &Server{tunnels: map[string][]*rootTunnel{bulkLeaf: {q, b}}}
	if got := s.pick(bulkLeaf, true); got != b {
		t.Fatal("a session did not pick the SSH tunnel for sessions")
	}
	if got := s.pick(bulkLeaf, false); got != q {
		t.Fatal("a service request did not pick QUIC")
	}
	b.state.Store(StateClosing)
	if got := s.pick(bulkLeaf, true); got != q {
		t.Fatal("a session picked the SSH tunnel the leaf is closing")
	}
	s.tunnels[bulkLeaf] = []*rootTunnel{b}
	if got := s.pick(bulkLeaf, true); got != b {
		t.Fatal("the closing SSH tunnel, alone, was not picked")
	}
}

// fakeLink is a link that only names its carrier (pick asks nothing else).
type fakeLink struct {
	link
	tr Transport
}

func (l fakeLink) transport() Transport { return l.tr }
