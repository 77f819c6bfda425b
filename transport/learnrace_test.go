package transport

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tetherproject/tether/transport/frame"
)

// Learns running together (one per connected replica of a root, each on its own
// goroutine) keep the bound on learned replicas between them: learn counted under a.mu
// and added outside it, so each could add up to the bound (84 replicas against 32; found
// by the attacker review). Addresses are loopback ones nothing listens on.
func TestConcurrentLearnsKeepTheBound(t *testing.T) {
	p := testPKI(t)
	worst := 0
	for round := 0; round < 30; round++ {
		a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) { c.DisableSSH, c.IgnoreAdvertisedReplicas = true, false }))
		const k = 8
		var start, wg sync.WaitGroup
		start.Add(1)
		for g := range k {
			var eps []Endpoint
			for i := range frame.MaxReplicas {
				addr := fmt.Sprintf("127.0.2.%d:%d", 1+i, 2000+100*round+g)
				eps = append(eps, Endpoint{QUIC: addr, TCP: addr})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				a.learn(nil, eps)
			}()
		}
		start.Done()
		wg.Wait()
		worst = max(worst, len(a.Status()))
		a.Close()
	}
	if worst > MaxLearnedReplicas {
		t.Errorf("concurrent learns left %d replicas, bound %d", worst, MaxLearnedReplicas)
	}
}
