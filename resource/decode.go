package resource

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The strict decoder walks yaml.Node trees itself, rather than using yaml.v3's
// KnownFields, so that every error carries the resource, the field path and the line, and so
// that duplicate keys, merge keys, unexpected tags and alias blow-ups are caught uniformly.

// YAML core tags as yaml.Node.ShortTag reports them.
const (
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagBool      = "!!bool"
	tagNull      = "!!null"
	tagTimestamp = "!!timestamp"
	tagMerge     = "!!merge"
)

var (
	durationType = reflect.TypeFor[Duration]()
	labelsType   = reflect.TypeFor[Labels]()
	timeType     = reflect.TypeFor[time.Time]()
	boolOptType  = reflect.TypeFor[BoolOption]()
)

// decodeError is an error at a node; Parse turns it into a *ParseError.
type decodeError struct {
	node *yaml.Node
	err  *FieldError
}

func (e *decodeError) Error() string { return e.err.Error() }

// decoder decodes one file's documents. budget bounds the nodes visited, counting every
// expansion of an alias, so that a small file of nested aliases cannot take unbounded time.
type decoder struct {
	res    string
	kind   string
	budget int
	// errs collects a document's errors: decoding goes on after a bad field so that one
	// run reports every problem of a file.
	errs []error
	// ignored collects the Teleport fields accepted and not used.
	ignored []IgnoredField
}

// maxErrors bounds the errors one input reports.
const maxErrors = 100

// keep records a field's error and lets decoding go on, unless the budget is spent or
// enough errors were found, when it returns err to stop.
func (d *decoder) keep(err error) error {
	if err == nil {
		return nil
	}
	if d.budget < 0 || len(d.errs) >= maxErrors {
		return err
	}
	d.errs = append(d.errs, err)
	return nil
}

func (d *decoder) errAt(n *yaml.Node, p path, format string, args ...any) error {
	return &decodeError{node: n, err: fieldErr(d.res, p, format, args...)}
}

// errInline is errAt for a message that already names the field.
func (d *decoder) errInline(n *yaml.Node, p path, format string, args ...any) error {
	fe := fieldErr(d.res, p, format, args...)
	fe.inline = true
	return &decodeError{node: n, err: fe}
}

// resolve follows aliases, charging the budget for each node visited.
func (d *decoder) resolve(n *yaml.Node, p path) (*yaml.Node, error) {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			return nil, d.errAt(n, p, "alias %q does not resolve", n.Value)
		}
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 {
		return nil, d.errAt(n, p, "document too complex: aliases expand to more nodes than the file holds; write the values out")
	}
	return n, nil
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull }

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case tagStr:
			return "the string " + quoteShort(n.Value)
		case tagBool:
			return "the boolean " + n.Value
		case tagInt, tagFloat:
			return "the number " + n.Value
		case tagTimestamp:
			return "the time " + n.Value
		}
		return fmt.Sprintf("a %s value", n.ShortTag())
	}
	return "an unexpected node"
}

// decode sets v from n strictly.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, p path) error {
	n, err := d.resolve(n, p)
	if err != nil {
		return err
	}
	if isNull(n) {
		v.SetZero()
		return nil
	}
	switch v.Type() {
	case durationType:
		return d.duration(n, v, p)
	case labelsType:
		return d.labels(n, v, p)
	case boolOptType:
		var b bool
		if err := d.decode(n, reflect.ValueOf(&b).Elem(), p); err != nil {
			return err
		}
		v.Set(reflect.ValueOf(NewBoolOption(b)))
		return nil
	case timeType:
		t, err := d.time(n, p)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		if err := d.decode(n, e.Elem(), p); err != nil {
			return err
		}
		if e.Elem().IsZero() {
			// A zero value written out is the same as none, so Marshal (which omits it)
			// round-trips.
			v.SetZero()
		} else {
			v.Set(e)
		}
		return nil
	case reflect.Struct:
		return d.structure(n, v, p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errAt(n, p, "expected a list, got %s", describeNode(n))
		}
		if len(n.Content) == 0 {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), p.with(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		return d.mapping(n, v, p)
	case reflect.String:
		s, err := d.str(n, p)
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == tagBool {
			switch strings.ToLower(n.Value) {
			case "true":
				v.SetBool(true)
				return nil
			case "false":
				v.SetBool(false)
				return nil
			}
		}
		return d.errAt(n, p, "expected true or false, got %s", describeNode(n))
	case reflect.Int, reflect.Int64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == tagInt {
			i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
			if err == nil && !v.OverflowInt(i) {
				v.SetInt(i)
				return nil
			}
		}
		return d.errAt(n, p, "expected a whole number, got %s", describeNode(n))
	}
	return d.errAt(n, p, "internal error: cannot decode into %s", v.Type())
}

// str reads a scalar as a string. Numbers and times are kept exactly as written, so
// `tier: 1` is the label value "1". An unquoted true or false is refused: where text is
// expected it is more likely a misplaced flag than a login named "true", and Teleport refuses
// it too.
func (d *decoder) str(n *yaml.Node, p path) (string, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case tagStr, tagInt, tagFloat, tagTimestamp:
			return n.Value, nil
		case tagMerge:
			// "<<" only merges as a key; as a value it is text.
			return n.Value, nil
		case tagBool:
			return "", d.errAt(n, p, "expected a string, got the boolean %s: quote it (%q) if you mean the text", n.Value, n.Value)
		}
	}
	return "", d.errAt(n, p, "expected a string, got %s", describeNode(n))
}

func (d *decoder) time(n *yaml.Node, p path) (time.Time, error) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == tagTimestamp || n.ShortTag() == tagStr) {
		t, err := time.Parse(time.RFC3339Nano, n.Value)
		if err == nil {
			t = t.UTC()
			if t.Year() >= 0 && t.Year() <= 9999 {
				return t, nil
			}
		}
		return time.Time{}, d.errAt(n, p, "invalid time %q: write an RFC 3339 time such as 2026-11-23T19:45:35Z", n.Value)
	}
	return time.Time{}, d.errAt(n, p, "expected an RFC 3339 time such as 2026-11-23T19:45:35Z, got %s", describeNode(n))
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, p path) error {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case tagStr:
			dur, err := time.ParseDuration(n.Value)
			if err != nil {
				return d.errAt(n, p, "invalid duration %q: write a Go duration such as 8h, 90m or 30h0m0s", n.Value)
			}
			v.SetInt(int64(dur))
			return nil
		case tagInt:
			if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil && i == 0 {
				v.SetInt(0)
				return nil
			}
			return d.errAt(n, p, "duration %s has no unit: write for example 8h or 90m", n.Value)
		}
	}
	return d.errAt(n, p, "expected a duration such as 8h or 90m, got %s", describeNode(n))
}

// key reads a mapping key, which must be a plain scalar.
func (d *decoder) key(n *yaml.Node, p path) (*yaml.Node, string, error) {
	n, err := d.resolve(n, p)
	if err != nil {
		return nil, "", err
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == tagMerge {
		return nil, "", d.errAt(n, p, "YAML merge keys (<<) are not supported: write the fields out")
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case tagStr, tagInt, tagFloat, tagTimestamp:
			return n, n.Value, nil
		}
	}
	return nil, "", d.errAt(n, p, "mapping keys must be strings, got %s", describeNode(n))
}

// pairs iterates a mapping's key/value pairs, refusing duplicate keys.
func (d *decoder) pairs(n *yaml.Node, p path, what string, f func(k string, kn, vn *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, p, "expected %s, got %s", what, describeNode(n))
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, k, err := d.key(n.Content[i], p)
		if err != nil {
			return err
		}
		if first, dup := seen[k]; dup {
			return d.errAt(kn, p.with(k), "duplicate key %s (first at line %d): keep one", quoteShort(k), first.Line)
		}
		seen[k] = kn
		if err := f(k, kn, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, p path) error {
	fields := structFields(v.Type())
	what := "a mapping"
	if len(p) > 0 {
		what = "a mapping of " + strings.Join(fieldNames(fields), ", ")
	}
	return d.pairs(n, p, what, func(k string, kn, vn *yaml.Node) error {
		if i, ok := fields[k]; ok {
			return d.keep(d.decode(vn, v.Field(i), p.with(k)))
		}
		return d.keep(d.foreignField(kn, vn, p, k, fields))
	})
}

// foreignField handles a field the type does not have: a Teleport field that can be
// ignored is noted, one that cannot is refused with the reason, anything else is an
// unknown field.
func (d *decoder) foreignField(kn, vn *yaml.Node, p path, k string, fields map[string]int) error {
	fp := p.with(k)
	why, at, atPath, ok, err := d.teleportField(fp, vn)
	switch {
	case err != nil:
		return err
	case !ok:
		return d.unknownField(kn, p, k, fields)
	case why != "":
		if at == vn {
			at = kn
		}
		return d.errAt(at, atPath, "Teleport field that Tether cannot honour: %s", why)
	}
	d.ignored = append(d.ignored, IgnoredField{Line: kn.Line, Resource: d.res, Field: fp.String()})
	return nil
}

func (d *decoder) unknownField(kn *yaml.Node, p path, k string, fields map[string]int) error {
	names := fieldNames(fields)
	msg := "unknown field " + quoteShort(k)
	if len(p) > 0 {
		msg += " in " + p.String()
	}
	if s := closest(k, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += " (known fields: " + strings.Join(names, ", ") + ")"
	}
	return d.errInline(kn, p.with(k), "%s", msg)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, p path) error {
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	err := d.pairs(n, p, "a mapping", func(k string, _, vn *yaml.Node) error {
		e := reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(vn, e, p.with(k)); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		return nil
	})
	if err != nil {
		return err
	}
	if m.Len() == 0 {
		v.SetZero()
	} else {
		v.Set(m)
	}
	return nil
}

// labels reads a selector: each key maps to one string or a list of strings.
func (d *decoder) labels(n *yaml.Node, v reflect.Value, p path) error {
	out := Labels{}
	err := d.pairs(n, p, "a mapping of label keys to values", func(k string, _, vn *yaml.Node) error {
		kp := p.with(k)
		vn, err := d.resolve(vn, kp)
		if err != nil {
			return err
		}
		switch {
		case isNull(vn):
			out[k] = nil
		case vn.Kind == yaml.SequenceNode:
			var vs []string
			for i, item := range vn.Content {
				item, err := d.resolve(item, kp.with(i))
				if err != nil {
					return err
				}
				s, err := d.str(item, kp.with(i))
				if err != nil {
					return err
				}
				vs = append(vs, s)
			}
			out[k] = vs
		default:
			s, err := d.str(vn, kp)
			if err != nil {
				return d.errAt(vn, kp, "expected a label value or a list of values, got %s", describeNode(vn))
			}
			out[k] = []string{s}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(out) == 0 {
		v.SetZero()
	} else {
		v.Set(reflect.ValueOf(out))
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> map[string]int

// structFields maps a struct's YAML field names to field indices.
func structFields(t reflect.Type) map[string]int {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]int)
	}
	f := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f[name] = i
	}
	fieldCache.Store(t, f)
	return f
}

func fieldNames(fields map[string]int) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return fields[a] - fields[b] })
	return names
}

// closest returns the candidate within a small edit distance of s, or "".
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	if len(s) > 64 {
		return ""
	}
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two short strings, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lookupKey returns the value of the first key k in mapping n, following aliases, or nil.
// It does not charge the budget: it is only used to name the resource before decoding.
func lookupKey(n *yaml.Node, k string) *yaml.Node {
	n = followAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if kn := followAlias(n.Content[i]); kn != nil && kn.Kind == yaml.ScalarNode && kn.Value == k {
			return followAlias(n.Content[i+1])
		}
	}
	return nil
}

func followAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// findNode returns the node at p in the document, or the deepest node on the way there.
func findNode(top *yaml.Node, p path) *yaml.Node {
	n := followAlias(top)
	for _, e := range p {
		var next *yaml.Node
		switch e := e.(type) {
		case string:
			next = lookupKey(n, e)
		case int:
			switch {
			case n.Kind == yaml.SequenceNode && e < len(n.Content):
				next = followAlias(n.Content[e])
			case n.Kind == yaml.ScalarNode && e == 0:
				next = n // a label written as one value rather than a list
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}
