package transport

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBulk measures one stream's throughput leaf → root over each carrier with both
// ends in this process (for profiling: go test -bench Bulk -cpuprofile).
func BenchmarkBulk(b *testing.B) {
	p := testPKI(b)
	for _, carrier := range carriers {
		b.Run(carrier.name, func(b *testing.B) {
			const size = 64 << 20
			srv := startServer(b, p, func(c *ServerConfig) { c.KeepAliveInterval = 15 * time.Second })
			a := startAgent(b, agentConfig(b, p, func(c *AgentConfig) {
				carrier.mod(c)
				c.Handler = benchHandler(size)
				c.KeepAliveInterval = 15 * time.Second
			}), srv.Endpoint())
			waitConnected(b, a, transportOf(carrier.name), 10*time.Second)
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				c, err := srv.Dial(context.Background(), "leaf.example.com", "source", nil, "")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := download(c, size); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
