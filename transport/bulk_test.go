package transport

import (
	"context"
	"errors"
	"fmt"
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

// TestBulkSSHCarriesSessions: with BulkSSH the leaf keeps an SSH tunnel beside QUIC; user
// sessions go over it, service requests and heartbeats stay on QUIC; the SSH tunnel
// killed → sessions over QUIC, the QUIC tunnel untouched, the SSH tunnel back; QUIC
// killed → the SSH tunnel carries everything with its live sessions intact, and when QUIC
// returns the same SSH tunnel stays for sessions instead of draining.
func TestBulkSSHCarriesSessions(t *testing.T) {
	t.Parallel()
	p := testPKI(t)

	t.Run("sessions_over_ssh_services_over_quic", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, bulkAgent(nil)), srv.Endpoint())
		waitBulk(t, a, true, 5*time.Second)
		waitTunnels(t, srv, bulkLeaf, 1, QUIC, 5*time.Second)
		waitTunnels(t, srv, bulkLeaf, 1, SSH, 5*time.Second)
		if ssh := tunnelsOf(srv)[SSH][0]; !ssh.Bulk {
			t.Errorf("the SSH tunnel is not marked bulk: %+v", ssh)
		}
		if q := tunnelsOf(srv)[QUIC][0]; q.Bulk {
			t.Errorf("the QUIC tunnel is marked bulk: %+v", q)
		}
		c := sessionOver(t, srv, SSH)
		roundTrip(t, c, 1<<20)
		c.Close()
		serviceOver(t, srv, QUIC)
	})

	t.Run("bulk_killed_sessions_fall_back_to_quic_and_it_returns", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, bulkAgent(func(c *AgentConfig) {
			c.Backoff = Backoff{Base: 300 * time.Millisecond, Cap: 300 * time.Millisecond}
		})), srv.Endpoint())
		waitBulk(t, a, true, 5*time.Second)
		quicSince := a.Status()[0].Since
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
		c := sessionOver(t, srv, QUIC)
		roundTrip(t, c, 64<<10)
		c.Close()
		if err := echoCheck(live, 1024); err == nil {
			t.Error("a session on the killed SSH tunnel still carries bytes")
		}
		st := waitBulk(t, a, true, 5*time.Second)
		if !st.Since.Equal(quicSince) {
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
		testenv.Eventually(t, 5*time.Second, func() error {
			if st := a.Status()[0]; st.BulkError == "" || !st.Connected || st.Transport != QUIC {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		c := sessionOver(t, srv, QUIC)
		roundTrip(t, c, 64<<10)
		c.Close()
	})

	t.Run("quic_killed_bulk_takes_over_then_stays_beside_quic", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		relay := newUDPRelay(t, srv.Endpoint().QUIC)
		a := startAgent(t, agentConfig(t, p, bulkAgent(func(c *AgentConfig) { c.HandshakeTimeout = time.Second })),
			Endpoint{QUIC: relay.addr(), TCP: srv.Endpoint().TCP})
		waitBulk(t, a, true, 5*time.Second)
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

	t.Run("option_off_one_tunnel", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, nil), srv.Endpoint())
		waitConnected(t, a, QUIC, 5*time.Second)
		time.Sleep(500 * time.Millisecond) // give a wrongly started bulk tunnel the time to show
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
		waitBulk(t, a, true, 5*time.Second)
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
