package decisionlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// Mask operations, as in OPA's structured mask rules.
const (
	// MaskRemove erases the value at the path; the path is recorded in the
	// event's erased list. It is the operation of a rule whose Op is empty.
	MaskRemove = "remove"
	// MaskUpsert sets the value at the path, creating missing objects on the
	// way; the path is recorded in the event's masked list.
	MaskUpsert = "upsert"
)

// MaskRule erases or replaces one value in every event, in OPA's mask syntax.
//
// Path starts with "/input" or "/result" and goes on with one segment per
// object key or array index: "/input/cert/traits/password",
// "/result/reasons/0". A segment is percent-decoded, so "%2F" stands for a
// "/" inside a key; the erased and masked lists hold the path with each
// segment percent-encoded again (url.PathEscape), as OPA records it. "/input"
// alone addresses the whole input.
//
// A rule whose path does not exist in an event does nothing, except that an
// upsert creates missing object keys along the path (not array elements).
type MaskRule struct {
	// Op is MaskRemove (the default when empty) or MaskUpsert.
	Op string `json:"op,omitempty"`
	// Path is the slash-separated path of the value.
	Path string `json:"path"`
	// Value is what an upsert writes; it must be JSON-encodable.
	Value any `json:"value,omitempty"`
}

// DefaultMasks returns the rules every Logger applies unless
// Config.NoDefaultMasks is set. They erase the places where a secret can
// reach a decision's input:
//
//   - /input/token, /input/password, /input/otp: join and trusted-cluster
//     tokens, and credentials of login and certificate-issue requests;
//   - /input/client_secret, /input/private_key: connector secrets and keys
//     that an issue request may carry;
//   - /input/cert/traits/password, /input/cert/traits/secret,
//     /input/cert/traits/token, /input/cert/traits/access_token,
//     /input/cert/traits/id_token, /input/cert/traits/refresh_token:
//     identity-provider claims copied into certificate traits, which Tether
//     does not control.
func DefaultMasks() []MaskRule {
	paths := []string{
		"/input/token",
		"/input/password",
		"/input/otp",
		"/input/client_secret",
		"/input/private_key",
		"/input/cert/traits/password",
		"/input/cert/traits/secret",
		"/input/cert/traits/token",
		"/input/cert/traits/access_token",
		"/input/cert/traits/id_token",
		"/input/cert/traits/refresh_token",
	}
	rules := make([]MaskRule, len(paths))
	for i, p := range paths {
		rules[i] = MaskRule{Op: MaskRemove, Path: p}
	}
	return rules
}

// ErrInvalidMask is returned, wrapped, for a MaskRule that cannot be applied.
var ErrInvalidMask = errors.New("invalid mask rule")

// Mask returns a copy of ev with rules applied in order, as the Logger applies
// them. The maps and arrays of ev.Input and ev.Result are not modified: the
// ones along a changed path are copied.
func Mask(ev Event, rules ...MaskRule) (Event, error) {
	ms, err := compileMasks(rules)
	if err != nil {
		return ev, err
	}
	return applyMasks(ev, ms), nil
}

// mask is a validated MaskRule.
type mask struct {
	upsert bool
	result bool     // the rule addresses Result, not Input
	parts  []string // decoded segments after the root
	canon  string   // the path as recorded in erased / masked
	value  any      // generic form of the upsert value
}

func compileMasks(rules []MaskRule) ([]mask, error) {
	ms := make([]mask, 0, len(rules))
	for _, r := range rules {
		m, err := compileMask(r)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func compileMask(r MaskRule) (mask, error) {
	var m mask
	switch r.Op {
	case "", MaskRemove:
	case MaskUpsert:
		m.upsert = true
		v, err := toGeneric(r.Value)
		if err != nil {
			return m, fmt.Errorf("%w %q: value is not JSON: %v", ErrInvalidMask, r.Path, err)
		}
		m.value = v
	default:
		return m, fmt.Errorf("%w %q: op %q is neither %q nor %q", ErrInvalidMask, r.Path, r.Op, MaskRemove, MaskUpsert)
	}
	rest, ok := strings.CutPrefix(r.Path, "/")
	if !ok {
		return m, fmt.Errorf("%w %q: a path starts with /input or /result", ErrInvalidMask, r.Path)
	}
	segs := strings.Split(rest, "/")
	switch segs[0] {
	case "input":
	case "result":
		m.result = true
	default:
		return m, fmt.Errorf("%w %q: a path starts with /input or /result", ErrInvalidMask, r.Path)
	}
	var canon strings.Builder
	canon.WriteString("/" + segs[0])
	for _, s := range segs[1:] {
		d, err := url.PathUnescape(s)
		if err != nil {
			return m, fmt.Errorf("%w %q: segment %q: %v", ErrInvalidMask, r.Path, s, err)
		}
		m.parts = append(m.parts, d)
		canon.WriteString("/" + url.PathEscape(d))
	}
	m.canon = canon.String()
	return m, nil
}

// applyMasks returns ev with ms applied; see Mask.
func applyMasks(ev Event, ms []mask) Event {
	var inputGeneric, resultGeneric bool
	for _, m := range ms {
		root := &ev.Input
		done := &inputGeneric
		if m.result {
			root, done = &ev.Result, &resultGeneric
		}
		if *root == nil {
			continue // OPA leaves an absent input or result absent
		}
		if !*done {
			// Convert a struct or typed map once, so that every rule sees
			// the same generic document and rules cannot miss a field
			// because of its Go type.
			*root = generic(*root)
			*done = true
		}
		switch {
		case len(m.parts) == 0 && m.upsert:
			*root = m.value
		case len(m.parts) == 0:
			*root = nil
		case m.upsert:
			v, ok := upsertAt(*root, m.parts, m.value)
			if !ok {
				continue
			}
			*root = v
		default:
			v, ok := eraseAt(*root, m.parts)
			if !ok {
				continue
			}
			*root = v
		}
		if m.upsert {
			ev.Masked = append(slices.Clip(ev.Masked), m.canon)
		} else {
			ev.Erased = append(slices.Clip(ev.Erased), m.canon)
		}
	}
	return ev
}

// eraseAt returns a copy of node without the value at path, copying only
// the containers along path, and false when path does not exist.
func eraseAt(node any, path []string) (any, bool) {
	key := path[0]
	switch n := generic(node).(type) {
	case map[string]any:
		child, ok := n[key]
		if !ok {
			return nil, false
		}
		if len(path) == 1 {
			c := make(map[string]any, len(n)-1)
			for k, v := range n {
				if k != key {
					c[k] = v
				}
			}
			return c, true
		}
		nc, ok := eraseAt(child, path[1:])
		if !ok {
			return nil, false
		}
		c := maps.Clone(n)
		c[key] = nc
		return c, true
	case []any:
		i, ok := arrayIndex(key, len(n))
		if !ok {
			return nil, false
		}
		if len(path) == 1 {
			c := make([]any, 0, len(n)-1) // never nil: an emptied array stays []
			return append(append(c, n[:i]...), n[i+1:]...), true
		}
		nc, ok := eraseAt(n[i], path[1:])
		if !ok {
			return nil, false
		}
		c := slices.Clone(n)
		c[i] = nc
		return c, true
	}
	return nil, false
}

// upsertAt returns a copy of node with value at path, copying only the
// containers along path and creating missing object keys, and false when path
// runs through a scalar or past the end of an array.
func upsertAt(node any, path []string, value any) (any, bool) {
	key := path[0]
	switch n := generic(node).(type) {
	case map[string]any:
		child := value
		if len(path) > 1 {
			old, ok := n[key]
			if !ok {
				old = map[string]any{}
			}
			if child, ok = upsertAt(old, path[1:], value); !ok {
				return nil, false
			}
		}
		c := make(map[string]any, len(n)+1)
		maps.Copy(c, n)
		c[key] = child
		return c, true
	case []any:
		i, ok := arrayIndex(key, len(n))
		if !ok {
			return nil, false
		}
		child := value
		if len(path) > 1 {
			if child, ok = upsertAt(n[i], path[1:], value); !ok {
				return nil, false
			}
		}
		c := slices.Clone(n)
		c[i] = child
		return c, true
	}
	return nil, false
}

// arrayIndex parses a path segment as an index into an array of length n:
// decimal digits without sign or leading zeros.
func arrayIndex(s string, n int) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	i := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, i < n
}

// generic returns v itself when it is a generic JSON value, and otherwise
// (a struct, a typed map or slice, a pointer) its JSON round trip, so that
// masks can walk it. A value that cannot be encoded is returned as it is; the
// encoder reports it later.
func generic(v any) any {
	switch v.(type) {
	case nil, map[string]any, []any, string, bool, float64, json.Number:
		return v
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Struct, reflect.Slice, reflect.Array, reflect.Pointer, reflect.Interface:
		if g, err := toGeneric(v); err == nil {
			return g
		}
	}
	return v
}

// toGeneric converts v to map[string]any, []any, string, json.Number, bool
// or nil through encoding/json.
func toGeneric(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		return nil, err
	}
	return g, nil
}
