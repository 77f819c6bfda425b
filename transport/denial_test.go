package transport

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tetherproject/tether/transport/frame"
)

// A compromised leaf refuses a dial with a reason of its choosing, and the root passes the
// reason on to users (the SSH entry's channel refusal, the web API's node list and node
// search, which ask every leaf the user may see): before, its bytes went through as sent,
// up to a frame's 32 KiB, so one leaf could write terminal escape sequences (OSC 52 sets
// the clipboard on many terminals) to any user of the root who ran tether ssh without
// --cluster. The root now bounds the reason and escapes what is not printable text.
// Found by the acceptance pass reading the dial answer's path to the user.
//
// And an honest leaf's reason longer than the dial answer's 512-byte field (a denial naming
// many roles) was refused by the root as malformed (or, past the frame's 1 KiB, not
// written), which users read as "cluster ... is offline". The leaf now shortens it.
func TestLeafDenialReasonReachesUsersAsPrintableBoundedText(t *testing.T) {
	t.Parallel()
	p := testPKI(t)
	evil := "\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u009bH bad bytes " + strings.Repeat("\x1b", 200)
	for _, carrier := range carriers {
		t.Run(carrier.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, p, nil)
			a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) {
				carrier.mod(c)
				c.Handler = func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
					return nil, Deny(evil)
				}
			}), srv.Endpoint())
			waitConnected(t, a, transportOf(carrier.name), 10*time.Second)
			_, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "192.0.2.7:5555")
			var d *DialDeniedError
			if !errors.As(err, &d) {
				t.Fatalf("got %v, want a denial", err)
			}
			if !utf8.ValidString(d.Reason) || strings.ContainsFunc(d.Reason, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
				t.Errorf("the leaf's reason reaches the user with control characters or invalid UTF-8: %q", d.Reason[:min(len(d.Reason), 80)])
			}
			if len(d.Reason) > MaxDenialReason {
				t.Errorf("the leaf's reason reaches the user with %d bytes, more than %d", len(d.Reason), MaxDenialReason)
			}
			if !strings.Contains(d.Reason, `\x1b]52;c;`) || !strings.Contains(d.Reason, "bad") {
				t.Errorf("the reason should stay readable, escaped: %q", d.Reason[:min(len(d.Reason), 80)])
			}
		})
	}
	t.Run("long_reason_is_shortened_not_dropped", func(t *testing.T) {
		t.Parallel()
		long := "no role allows login \"ubuntu\" on node \"web\" (roles [" + strings.Repeat("\"some-long-role-name\", ", 100) + "])"
		srv := startServer(t, p, nil)
		a := startAgent(t, agentConfig(t, p, func(c *AgentConfig) {
			c.Handler = func(ctx context.Context, req *frame.DialRequest) (func(net.Conn), error) {
				return nil, Deny(long)
			}
		}), srv.Endpoint())
		waitConnected(t, a, QUIC, 10*time.Second)
		_, err := srv.Dial(context.Background(), "leaf.example.com", "web", nil, "192.0.2.7:5555")
		var d *DialDeniedError
		if !errors.As(err, &d) || !strings.HasPrefix(d.Reason, `no role allows login "ubuntu"`) {
			t.Fatalf("got %v, want the leaf's denial, shortened", err)
		}
	})
	// An ordinary reason is passed on unchanged.
	if got := denialReason("node db is not registered: ask an admin (tetherctl nodes ls)"); got != "node db is not registered: ask an admin (tetherctl nodes ls)" {
		t.Errorf("denialReason changed a printable reason: %q", got)
	}
}
