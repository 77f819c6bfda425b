package proxy

import (
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// ChannelConn is an SSH channel as a net.Conn, for running SSH over SSH (the inner
// connection to a node inside the subsystem channel). Deadlines are not supported and
// are ignored; the outer connection's keepalives and the caller's context bound it.
type ChannelConn struct {
	ssh.Channel
	Local, Remote net.Addr
}

// LocalAddr returns Local.
func (c *ChannelConn) LocalAddr() net.Addr { return c.Local }

// RemoteAddr returns Remote.
func (c *ChannelConn) RemoteAddr() net.Addr { return c.Remote }

// SetDeadline is ignored.
func (c *ChannelConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline is ignored.
func (c *ChannelConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is ignored.
func (c *ChannelConn) SetWriteDeadline(time.Time) error { return nil }
