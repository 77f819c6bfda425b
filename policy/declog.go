package policy

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/tetherproject/tether/policy/decisionlog"
)

// DecisionLogPath is the path decision-log events carry: the public query's.
const DecisionLogPath = "tether/authz/decision"

// NewDecisionLog adapts a decision-log Logger to the engine: every decision becomes one
// event in OPA's shape. The event's input and result are turned into JSON on the
// logger's own goroutine, never on the decision path.
func NewDecisionLog(l *decisionlog.Logger) Logger { return logAdapter{l} }

type logAdapter struct{ l *decisionlog.Logger }

func (a logAdapter) LogDecision(in *Input, d *Decision) {
	// The event is encoded later, on the logger's goroutine, while the caller may reuse
	// its input: the event gets a deep copy, so it records the input that was decided
	// and shares no map or slice with the caller.
	// An allow decided on the fast form has its reasons computed when the result is
	// encoded, on the logger's goroutine (Decision.Explained).
	a.l.Log(decisionlog.Event{
		Path:      DecisionLogPath,
		Input:     lazyInput{in.Clone()},
		Result:    lazyResult{Decision{Allow: d.Allow, Roles: slices.Clone(d.Roles), Reasons: slices.Clone(d.Reasons), ExpiresAt: d.ExpiresAt, why: d.why}},
		Bundles:   map[string]decisionlog.BundleInfo{"tether": {Revision: d.Revision}},
		Timestamp: time.Now(),
		Metrics:   map[string]any{"tether_decision_cached": d.Cached},
	})
}

type lazyInput struct{ in *Input }

func (l lazyInput) MarshalJSON() ([]byte, error) {
	m, err := l.in.JSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// lazyResult is a decision whose reasons may still have to be produced.
type lazyResult struct{ d Decision }

func (l lazyResult) MarshalJSON() ([]byte, error) {
	d, err := l.d.Explained(context.Background())
	if err != nil {
		return nil, err
	}
	return json.Marshal(DecisionJSON(d))
}

// DecisionJSON is a decision as the public query returns it:
// {"allow", "roles", "reasons", "expires_at"} (expires_at null when unset).
func DecisionJSON(d Decision) map[string]any {
	roles := d.Roles
	if roles == nil {
		roles = []string{}
	}
	reasons := d.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	var expires any
	if !d.ExpiresAt.IsZero() {
		expires = d.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{"allow": d.Allow, "roles": roles, "reasons": reasons, "expires_at": expires}
}
