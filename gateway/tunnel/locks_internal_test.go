package tunnel

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// TestLeafReadsOneLockPushPerRootAtATime: a root (compromised) that opens many lock
// pushes at once must not make the leaf hold up to 16 MiB from each in memory: the leaf
// reads one push of a root at a time; the others wait unread (bounded by the tunnel's
// flow control). Another root's push is not held up.
func TestLeafReadsOneLockPushPerRootAtATime(t *testing.T) {
	t.Parallel()
	l := &Leaf{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	serve := func(root string, c net.Conn) {
		f, err := l.receiveLocks(root)
		if err != nil {
			t.Error(err)
			return
		}
		go f(c)
	}
	big := bytes.Repeat([]byte(" "), 8<<20) // JSON white space: read whole, then refused
	// A first push from root A that is still being sent.
	a1, a1leaf := testenv.TCPPair(t)
	serve("a.example.com", a1leaf)
	if _, err := a1.Write([]byte(`{"locks":[`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	// A second push from A is not read meanwhile: its 8 MiB cannot all be written.
	a2, a2leaf := testenv.TCPPair(t)
	serve("a.example.com", a2leaf)
	_ = a2.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := a2.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the leaf read a second push of the same root while the first was open (write: %v)", err)
	}

	// Root B's push is read at once.
	b, bleaf := testenv.TCPPair(t)
	serve("b.example.com", bleaf)
	_ = b.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Write(big); err != nil {
		t.Fatalf("another root's push waited: %v", err)
	}

	// The first push ends (refused: not a document); then the second is read.
	a1.(*net.TCPConn).CloseWrite()
	if ans, _ := io.ReadAll(a1); !bytes.Contains(ans, []byte(`"error"`)) {
		t.Fatalf("first push answered %s", ans)
	}
	_ = a2.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := a2.Write(big); err != nil {
		t.Fatalf("the second push was not read after the first ended: %v", err)
	}
}
