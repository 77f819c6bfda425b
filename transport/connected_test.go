package transport

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestLeafConnectedMeansTheRootRoutes: a leaf counts itself connected only once the root
// lists its tunnel and has recorded it (OnConnect, where tetherd writes the tunnel's
// status record and claim), so a dial made the moment the leaf says "connected" (a script
// that waits for `tetherctl status` and then runs `tether ssh`) finds the tunnel. Before,
// the root answered the hello first and listed the tunnel after; OnConnect is made slow
// here as a store write under load would be.
func TestLeafConnectedMeansTheRootRoutes(t *testing.T) {
	t.Parallel()
	for _, tr := range []Transport{QUIC, SSH} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			p := testPKI(t)
			var recorded atomic.Bool
			srv := startServer(t, p, func(c *ServerConfig) {
				c.OnConnect = func(TunnelInfo) {
					time.Sleep(300 * time.Millisecond)
					recorded.Store(true)
				}
			})
			ep := srv.Endpoint()
			if tr == SSH {
				ep.QUIC = ""
			}
			a := startAgent(t, agentConfig(t, p, nil), ep)
			deadline := time.Now().Add(10 * time.Second)
			for {
				if ss := a.Status(); len(ss) > 0 && ss[0].Connected {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the leaf never connected")
				}
				time.Sleep(time.Millisecond)
			}
			if !recorded.Load() {
				t.Error("the leaf said connected before the root recorded the tunnel (OnConnect had not returned)")
			}
			if n := len(srv.Tunnels()); n != 1 {
				t.Errorf("the leaf said connected while the root listed %d tunnels", n)
			}
			c, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "")
			if err != nil {
				t.Fatalf("a dial the moment the leaf said connected: %v", err)
			}
			roundTrip(t, c, 1<<16)
			c.Close()
		})
	}
}
