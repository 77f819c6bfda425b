package node

import (
	"log/slog"
	"net"
	"os"
	"testing"
)

// BenchmarkForwardDial is the cost of one direct-tcpip connection's socket: asked of the
// connection's dial helper once it runs (every dial after a connection's first), made by a
// new helper (what every dial cost when a helper was started per dial, and what a
// connection's first dial still costs), or made by the agent itself. It runs the helper as
// root (this test binary sits in a directory only root may enter): the credential change
// it leaves out costs a few system calls. The helper is this test binary, or the tetherd
// named by TETHER_BENCH_TETHERD:
//
//	go test -run '^$' -bench BenchmarkForwardDial -benchtime 200x ./gateway/node/
//	go build -o /tmp/tetherd ./cmd/tetherd && TETHER_BENCH_TETHERD=/tmp/tetherd go test ...
func BenchmarkForwardDial(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the net helper runs only for a root agent")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	exe := os.Getenv("TETHER_BENCH_TETHERD")
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			b.Fatal(err)
		}
	}
	a := &Agent{cfg: Config{NetCommand: []string{exe, NetSubcommand}}, log: slog.Default(), netHelpers: make(chan struct{}, DefaultMaxNetHelpers)}
	u, err := lookupUser("root")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	b.Run("kept_helper", func(b *testing.B) {
		d := &connDialer{a: a, u: u}
		defer d.close()
		c, err := d.dial(addr) // the helper starts
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		for b.Loop() {
			c, err := d.dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("new_helper", func(b *testing.B) {
		for b.Loop() {
			d := &connDialer{a: a, u: u}
			c, err := d.dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
			d.close()
		}
	})
	b.Run("in_process", func(b *testing.B) {
		for b.Loop() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}
