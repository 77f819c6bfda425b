package transport

import (
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// The SSH fallback accepts any key and learns which cluster it speaks for only from the
// chain exchange, so anyone reaching the tunnel port (the web port, by default) could hold
// a goroutine and a descriptor per connection for the handshake timeout, without bound.
// With MaxSSHStartups connections in the handshake, the next is closed unanswered; a place
// freed serves the next connection.
func TestSSHTunnelHandshakesAreBounded(t *testing.T) {
	const limit = 2
	s := startServer(t, testPKI(t), func(c *ServerConfig) {
		c.MaxSSHStartups = limit
		c.HandshakeTimeout = 30 * time.Second
	})
	testenv.CheckSSHHandshakesBounded(t, s.Endpoint().TCP, limit, "MaxSSHStartups")
}

// One host could take all MaxSSHStartups places and keep every leaf from reconnecting
// over the fallback. With MaxSSHStartupsPerSource from one address, the next from it is
// closed unanswered and another address still gets in.
func TestSSHTunnelHandshakesAreBoundedPerSource(t *testing.T) {
	const perSource = 2
	s := startServer(t, testPKI(t), func(c *ServerConfig) {
		c.MaxSSHStartups = 10
		c.MaxSSHStartupsPerSource = perSource
		c.HandshakeTimeout = 30 * time.Second
	})
	testenv.CheckSSHHandshakesBoundedPerSource(t, s.Endpoint().TCP, perSource, "MaxSSHStartupsPerSource")
}
