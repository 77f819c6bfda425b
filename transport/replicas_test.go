package transport

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherproject/tether/transport/frame"
)

// A root advertises its live replicas in every hello answer and heartbeat reply, and the
// leaf keeps a tunnel to each. A compromised root (or one whose replicas come and go with
// new addresses, as pods do) advertised new endpoints at every heartbeat and the leaf kept
// every one forever: a goroutine each, reconnecting with backoff, dialing whatever address
// it was told from inside the leaf's network. The leaf now drops a learned replica that is
// not connected and no longer advertised, and learns at most MaxLearnedReplicas. Found by
// the acceptance pass reading the agent's learn.
func TestAdvertisedReplicasAreBoundedAndForgotten(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	var round atomic.Int64
	srv := startServer(t, p, func(c *ServerConfig) {
		c.Replicas = func() []Endpoint {
			n := round.Add(1)
			var eps []Endpoint
			for i := range frame.MaxReplicas - 1 {
				// Loopback addresses nothing listens on (tests dial no other address).
				addr := fmt.Sprintf("127.0.2.%d:%d", 1+i, 1000+n%5000)
				eps = append(eps, Endpoint{QUIC: addr, TCP: addr})
			}
			return eps
		}
	})
	a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) { c.DisableSSH, c.IgnoreAdvertisedReplicas = true, false }), srv.Endpoint())
	waitConnected(t, a, QUIC, 10*time.Second)
	// 200 ms heartbeats: some 15 rounds of 15 new endpoints each.
	deadline := time.Now().Add(3 * time.Second)
	most := 0
	for time.Now().Before(deadline) {
		most = max(most, len(a.Status()))
		time.Sleep(50 * time.Millisecond)
	}
	if round.Load() < 5 {
		t.Fatalf("only %d advertisements in 3 s", round.Load())
	}
	if most > 1+MaxLearnedReplicas {
		t.Errorf("the leaf kept up to %d replicas after %d advertisements of new endpoints, want at most %d", most, round.Load(), 1+MaxLearnedReplicas)
	}
	// The seed (the replica it was given) is never dropped and stays connected.
	st := a.Status()
	connected := 0
	for _, s := range st {
		if s.Connected {
			connected++
		}
	}
	if connected != 1 {
		t.Errorf("%d replicas connected, want the seed: %+v", connected, st)
	}
}
