package transport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetherproject/tether/transport/frame"
)

// ALPN is the application protocol the QUIC tunnel negotiates.
const ALPN = "tether-tunnel/1"

// Transport names the carrier a tunnel runs over.
type Transport string

// Carriers.
const (
	QUIC Transport = "quic"
	SSH  Transport = "ssh"
)

// Endpoint is where a root replica listens: UDP for QUIC, TCP for the SSH fallback.
type Endpoint = frame.Endpoint

// Defaults for the fields of ServerConfig and AgentConfig left zero.
const (
	DefaultKeepAliveInterval = 15 * time.Second
	DefaultKeepAliveCount    = 3
	DefaultHandshakeTimeout  = 5 * time.Second
	// DefaultMaxSSHStartups bounds SSH fallback connections in their handshake: well
	// above a reconnect crowd's (leaves try QUIC first; hellos are bounded at 256).
	DefaultMaxSSHStartups = 1024
	// DefaultMaxSSHStartupsPerSource keeps a quarter of them for other sources.
	DefaultMaxSSHStartupsPerSource = 256
	DefaultDialTimeout             = 10 * time.Second
	DefaultProbeInterval           = 30 * time.Second
	DefaultAcceptLoops             = 4
	// DefaultBulkIdleTimeout closes an SSH tunnel for sessions that carried none for it.
	DefaultBulkIdleTimeout = 10 * time.Minute
	// DefaultUDPBufferSize is the socket buffer asked for: below about 7 MiB QUIC drops
	// packets under load.
	DefaultUDPBufferSize = 7 << 20
	// DefaultMaxIncomingStreams is how many dial streams the root may have open on one
	// tunnel at once (quic-go's default of 100 is far too low for a busy leaf).
	DefaultMaxIncomingStreams = 10000
	// StreamFailureLimit consecutive stream failures on a QUIC tunnel close it, and the
	// leaf moves to the SSH fallback.
	StreamFailureLimit = 3
)

// Bounds on negotiated keep-alive values.
const (
	minKeepAliveInterval = 100 * time.Millisecond
	maxKeepAliveInterval = 5 * time.Minute
	maxKeepAliveCount    = 10
)

// DialDeniedError is the leaf's refusal of a dial request; Reason is the leaf's words.
type DialDeniedError struct {
	Cluster, Node, Reason string
}

func (e *DialDeniedError) Error() string {
	return fmt.Sprintf("leaf %q refused to connect node %q: %s", e.Cluster, e.Node, e.Reason)
}

// Denial is an error a DialHandler returns to refuse a dial with a reason the root (and
// the user) may see. Any other error refuses with a generic reason, so internals do not
// leak across clusters.
type Denial struct{ Reason string }

func (d *Denial) Error() string { return d.Reason }

// Deny returns a Denial with the reason.
func Deny(reason string) error { return &Denial{Reason: reason} }

// Errors callers branch on.
var (
	// ErrNoTunnel: the leaf has no tunnel to this root replica.
	ErrNoTunnel = errors.New("leaf cluster has no tunnel to this proxy")
	// ErrClosed: the server or agent was closed.
	ErrClosed = errors.New("transport closed")
)

// genericDenial is what the root sees when the leaf's handler failed for a reason it did
// not choose to share.
const genericDenial = "the leaf refused the connection"

// Application error codes on QUIC connection close.
const (
	codeNormal         = 0
	codeRejected       = 1 // hello refused, identity mismatch
	codeRevoked        = 2 // the root disconnected the leaf (trust disabled or removed)
	codeStreamFailures = 3 // too many failed streams: fall back
	codeGoAway         = 4 // the root is going away; come back later
	codeHeartbeat      = 5 // heartbeats stopped
	codeDrained        = 6 // the leaf moved to another tunnel
)

// negotiateKeepAlive is the root's decision: the more patient of both proposals, within
// bounds. Both sides then use it, so differently configured peers cannot flap.
func negotiateKeepAlive(leafInterval time.Duration, leafCount int, rootInterval time.Duration, rootCount int) (time.Duration, int) {
	iv := max(leafInterval, rootInterval)
	iv = min(max(iv, minKeepAliveInterval), maxKeepAliveInterval)
	n := min(max(max(leafCount, rootCount), 1), maxKeepAliveCount)
	return iv, n
}

// maxAnswerReason is the longest reason a dial answer carries: the root refuses a longer
// one as malformed (frame's dial-answer field limit).
const maxAnswerReason = 512

// fitDialAnswer shortens a leaf's refusal to fit its dial answer, at a rune boundary: a
// longer one (a denial naming many roles) was refused by the root as a malformed answer,
// and users read that the cluster was offline.
func fitDialAnswer(s string) string {
	if len(s) <= maxAnswerReason {
		return s
	}
	cut := maxAnswerReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// MaxDenialReason bounds a leaf's reason for refusing a dial as the root passes it on.
const MaxDenialReason = 1024

// denialReason is a leaf's refusal as the root passes it on to users (the SSH entry's
// channel refusal, the web API's errors): a leaf is another party, perhaps compromised,
// so its text reaches a user's terminal only as printable UTF-8 — control characters
// (C0, DEL, C1) and invalid bytes escaped Go-style — and at most MaxDenialReason bytes.
func denialReason(s string) string {
	var b strings.Builder
	for i, r := range s {
		var piece string
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			piece = strings.Trim(strconv.QuoteRune(r), "'")
		default:
			piece = string(r)
		}
		if b.Len()+len(piece) > MaxDenialReason-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
	}
	return b.String()
}
