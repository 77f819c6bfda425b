package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// The root's pushes to a leaf (its locks, its CAs) are one document each way on a service
// stream: the root writes its document and closes its side, the leaf answers and closes.

// pushSlots holds, per root, the push of one service a leaf is reading: a root that opens
// many streams at once does not make the leaf hold up to MaxServiceAnswer from each (the
// waiting ones stay unread, bounded by the tunnel's flow control), and two replicas of a
// root pushing together wait for each other.
type pushSlots struct{ m sync.Map }

func (s *pushSlots) of(root string) chan struct{} {
	c, _ := s.m.LoadOrStore(root, make(chan struct{}, 1))
	return c.(chan struct{})
}

// receivePush serves one push of root on c: it waits for root's slot, reads the document
// (at most MaxServiceAnswer bytes) and writes what handle answers, which is handed the
// document or why it could not be read. what names the push in the refusal ("locks").
func receivePush(c net.Conn, slots *pushSlots, root, what string, handle func(data []byte, err error) []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	slot := slots.of(root)
	var err error
	select {
	case slot <- struct{}{}:
		defer func() { <-slot }()
	case <-time.After(25 * time.Second):
		err = fmt.Errorf("another push of this root's %s is being read; try again", what)
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(c, MaxServiceAnswer+1))
	}
	_, _ = c.Write(handle(data, err))
	closeWrite(c)
}

// push writes doc on a new stream of service svc to leaf, closes its side and returns the
// leaf's answer (at most limit bytes).
func (r *Root) push(ctx context.Context, leaf string, svc frame.Service, what string, doc []byte, limit int64) ([]byte, error) {
	conn, err := r.dial(ctx, leaf, &frame.DialRequest{Service: svc})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(doc); err != nil {
		return nil, fmt.Errorf("sending the %s to %s: %w", what, leaf, err)
	}
	closeWrite(conn)
	data, err := io.ReadAll(io.LimitReader(conn, limit))
	if ctx.Err() != nil {
		return nil, fmt.Errorf("cluster %s did not answer in time: %w", leaf, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("reading the answer of cluster %s: %w", leaf, err)
	}
	return data, nil
}

// closeWrite closes c's writing side when it has one to close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// rounds schedules one kind of push from a root to each connected leaf: again when what
// it sends changed (its digest), after every, or after retry when the last one failed;
// at most one in flight per leaf. A leaf that disconnects is pushed to again when it
// comes back.
type rounds struct {
	mu      sync.Mutex
	last    map[string]round
	running map[string]bool
}

// round is what a root last sent a leaf (its digest, empty after a failure) and when.
type round struct {
	digest string
	at     time.Time
}

// start runs push, on a goroutine of its own, for every leaf of connected that is due;
// push says whether the leaf took it.
func (rs *rounds) start(connected map[string]bool, digest string, every, retry time.Duration, push func(leaf string) bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.last == nil {
		rs.last, rs.running = map[string]round{}, map[string]bool{}
	}
	for leaf := range rs.last {
		if !connected[leaf] {
			delete(rs.last, leaf)
		}
	}
	now := time.Now()
	for leaf := range connected {
		p, ok := rs.last[leaf]
		switch {
		case rs.running[leaf]:
			continue
		case ok && p.digest == digest && now.Sub(p.at) < every:
			continue
		case ok && p.digest == "" && now.Sub(p.at) < retry:
			continue
		}
		rs.running[leaf] = true
		go func() {
			took := push(leaf)
			rs.mu.Lock()
			defer rs.mu.Unlock()
			delete(rs.running, leaf)
			if took {
				rs.last[leaf] = round{digest: digest, at: now}
			} else {
				rs.last[leaf] = round{at: now}
			}
		}()
	}
}

// connectedLeaves are the leaves with a tunnel to this replica.
func (r *Root) connectedLeaves() map[string]bool {
	connected := map[string]bool{}
	for _, t := range r.srv.Tunnels() {
		connected[t.Cluster] = true
	}
	return connected
}

// olderLeaf: err is how a leaf that predates a service refuses it.
func olderLeaf(err error) bool {
	var denied *transport.DialDeniedError
	return errors.As(err, &denied) || errors.Is(err, frame.ErrMalformed) || errors.Is(err, frame.ErrServiceUnsupported)
}
