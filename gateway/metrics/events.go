package metrics

import (
	"context"
	"sync/atomic"

	"github.com/tetherproject/tether/gateway/audit"
)

// Events is an audit.Auditor that counts what operators alert on: sign-ins, certificates
// issued, SSH sessions (active, by component) and their bytes. Each event is a few
// atomic adds.
type Events struct {
	loginOK, loginFailed, loginLimited atomic.Uint64
	certsIssued                        atomic.Uint64
	sessions                           [numComponents]sessionCounters
	trustChanges                       atomic.Uint64
}

type sessionCounters struct {
	active, started   atomic.Int64
	bytesIn, bytesOut atomic.Uint64
}

var components = [...]string{audit.ComponentProxy, audit.ComponentForward, audit.ComponentNode}

const numComponents = len(components)

func componentIndex(c any) int {
	s, _ := c.(string)
	for i, n := range components {
		if n == s {
			return i
		}
	}
	return -1
}

// Audit counts ev.
func (e *Events) Audit(_ context.Context, ev audit.Event) {
	switch ev.Type {
	case "user.login":
		e.loginOK.Add(1)
	case "user.login.failed":
		e.loginFailed.Add(1)
	case "user.login.rate_limited":
		e.loginLimited.Add(1)
	case "cert.issued":
		e.certsIssued.Add(1)
	case "trust.join", audit.TrustDisable, audit.TrustEnable, audit.TrustRemove:
		e.trustChanges.Add(1)
	case audit.SessionStart:
		if i := componentIndex(ev.Fields["component"]); i >= 0 {
			e.sessions[i].active.Add(1)
			e.sessions[i].started.Add(1)
		}
	case audit.SessionEnd:
		if i := componentIndex(ev.Fields["component"]); i >= 0 {
			s := &e.sessions[i]
			s.active.Add(-1)
			s.bytesIn.Add(uint64(asInt64(ev.Fields["bytes_in"])))
			s.bytesOut.Add(uint64(asInt64(ev.Fields["bytes_out"])))
		}
	}
}

func asInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		if n > 0 {
			return n
		}
	case int:
		if n > 0 {
			return int64(n)
		}
	}
	return 0
}
