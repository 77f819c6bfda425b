package decisionlog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event is one decision in OPA's decision-log event shape (OPA's EventV1); the
// JSON field names are OPA's, so tools that read OPA decision logs read these.
//
// Input and Result hold JSON-compatible values: map[string]any, []any,
// string, float64 or json.Number, bool and nil. Other values (structs, typed
// maps) are encoded with encoding/json and converted to that form before
// masking. The Logger never modifies them, but it reads them after Log
// returns, so the caller must not modify them either once the event is logged.
type Event struct {
	// DecisionID identifies the decision; the Logger fills in a random UUID
	// when it is empty.
	DecisionID string `json:"decision_id"`
	// Path is the query path without the "data." prefix, slash-separated,
	// as OPA writes it: "tether/authz/decision".
	Path string `json:"path,omitempty"`
	// Input is the input document of the query.
	Input any `json:"input,omitempty"`
	// Result is the value the query produced.
	Result any `json:"result,omitempty"`
	// Bundles maps each bundle's name to the revision that decided.
	Bundles map[string]BundleInfo `json:"bundles,omitempty"`
	// Labels identify the gateway. The Logger adds id, version and cluster
	// (from Config), which take precedence over labels set here.
	Labels map[string]string `json:"labels"`
	// Timestamp is when the decision was made; the Logger uses the time of
	// the Log call when it is zero. It is written in UTC, RFC 3339 with
	// nanoseconds.
	Timestamp time.Time `json:"timestamp"`
	// Metrics are the evaluation's timers and counters, as OPA reports them
	// ("timer_rego_query_eval_ns": 1234).
	Metrics map[string]any `json:"metrics,omitempty"`
	// RequestedBy is the address of the client the decision was made for.
	RequestedBy string `json:"requested_by,omitempty"`
	// Erased lists the mask paths that removed a value from this event.
	Erased []string `json:"erased,omitempty"`
	// Masked lists the mask paths that replaced a value in this event.
	Masked []string `json:"masked,omitempty"`
}

// BundleInfo describes the bundle a decision was made with.
type BundleInfo struct {
	Revision string `json:"revision,omitempty"`
}

// eventJSON has Event's fields without its methods, so encoding it does not
// recurse into MarshalJSON.
type eventJSON Event

// MarshalJSON encodes the event as OPA does, with the timestamp in UTC.
func (e Event) MarshalJSON() ([]byte, error) {
	w := eventJSON(e)
	w.Timestamp = e.Timestamp.UTC()
	return json.Marshal(w)
}

// newUUID returns a random (version 4) UUID in its canonical text form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
