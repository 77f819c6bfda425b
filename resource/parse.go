package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxInputSize is the largest input Parse and ParseFile accept: 4 MiB.
const MaxInputSize = 4 << 20

// Parse decodes and validates every resource document in data, a YAML stream of one or more
// documents separated by ---. source names the input in errors (usually the file name).
// Empty documents are skipped. Either every document decodes and validates and all are
// returned, in order, or the problems are returned and no resources: one *ParseError, or
// ParseErrors when there are several (every bad field of every document, and each
// document's first validation error).
//
// Fields that Teleport's tctl prints and Tether has no use for are accepted; see
// ParseWithWarnings to hear about them.
func Parse(data []byte, source string) ([]Resource, error) {
	rs, _, err := ParseWithWarnings(data, source)
	return rs, err
}

// ParseWithWarnings is Parse that also returns, when there are any and the input parsed,
// the Teleport fields it ignored, as one warning listing them with their lines.
func ParseWithWarnings(data []byte, source string) ([]Resource, *Warning, error) {
	if source == "" {
		source = "<input>"
	}
	if len(data) > MaxInputSize {
		return nil, nil, &ParseError{Source: source, Err: fmt.Errorf(
			"input is %d bytes, more than the limit of %d (4 MiB): split it into several files", len(data), MaxInputSize)}
	}
	if !utf8.Valid(data) {
		line, col := firstInvalidUTF8(data)
		return nil, nil, &ParseError{Source: source, Line: line, Column: col,
			Err: errors.New("input is not valid UTF-8: save the file as UTF-8")}
	}
	var (
		rs   []Resource
		errs ParseErrors
	)
	d := &decoder{budget: 2*len(data) + 1024}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for len(errs) < maxErrors && d.budget >= 0 {
		var doc yaml.Node
		if err := decodeNode(dec, &doc); err == io.EOF {
			break
		} else if err != nil {
			errs = append(errs, yamlError(source, data, err).(*ParseError))
			break
		}
		r, derrs := d.document(&doc)
		for _, err := range derrs {
			errs = append(errs, locate(source, &doc, err))
		}
		if r != nil && len(derrs) == 0 {
			rs = append(rs, r)
		}
	}
	switch len(errs) {
	case 0:
	case 1:
		return nil, nil, errs[0]
	default:
		return nil, nil, errs
	}
	if len(d.ignored) == 0 {
		return rs, nil, nil
	}
	sortIgnored(d.ignored)
	return rs, &Warning{Source: source, Fields: d.ignored}, nil
}

// ParseErrors are several problems of one input, in the order found.
type ParseErrors []*ParseError

// Error lists the problems, one per line.
func (e ParseErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(e))
	for _, pe := range e {
		b.WriteString("\n  ")
		b.WriteString(pe.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.As and errors.Is.
func (e ParseErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, pe := range e {
		out[i] = pe
	}
	return out
}

// decodeNode reads the next document. yaml.v3 reports its errors by panicking and recovering
// internally; a panic that escapes is a parser bug and must not take the process down.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("yaml: internal parser error: %v", p)
		}
	}()
	return dec.Decode(doc)
}

// ParseFile reads the file at path, at most MaxInputSize bytes, and parses it with Parse,
// naming it by path in errors.
func ParseFile(path string) ([]Resource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return Parse(data, path)
}

// document decodes and validates one document; it returns nil for an empty one, and every
// problem found.
func (d *decoder) document(doc *yaml.Node) (Resource, []error) {
	d.errs, d.kind = nil, ""
	r, err := d.documentOne(doc)
	if err != nil {
		d.errs = append(d.errs, err)
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return r, nil
}

func (d *decoder) documentOne(doc *yaml.Node) (Resource, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	top := followAlias(doc.Content[0])
	if top == nil || isNull(top) {
		return nil, nil
	}
	d.res = ""
	if top.Kind != yaml.MappingNode {
		return nil, d.errAt(top, nil, "expected a resource (a mapping with kind, version, metadata and spec), got %s", describeNode(top))
	}
	kn := lookupKey(top, "kind")
	switch {
	case kn == nil || isNull(kn) || (kn.Kind == yaml.ScalarNode && kn.Value == ""):
		return nil, d.errInline(top, path{"kind"}, "kind is required (one of: %s)", kindNames())
	case kn.Kind != yaml.ScalarNode || kn.ShortTag() != tagStr:
		return nil, d.errInline(kn, path{"kind"}, "expected kind to be one of %s, got %s", kindNames(), describeNode(kn))
	}
	info, ok := lookupKind(kn.Value)
	if !ok {
		msg := fmt.Sprintf("unknown kind %q", kn.Value)
		if s := closest(kn.Value, strings.Split(kindNames(), ", ")); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, d.errInline(kn, path{"kind"}, "%s; supported kinds: %s", msg, kindNames())
	}
	var name string
	if nn := lookupKey(lookupKey(top, "metadata"), "name"); nn != nil && nn.Kind == yaml.ScalarNode {
		name = nn.Value
	}
	d.res, d.kind = describe(info.kind, name), info.kind
	vn := lookupKey(top, "version")
	supported := strings.Join(info.versions, ", ")
	switch {
	case vn == nil || isNull(vn) || (vn.Kind == yaml.ScalarNode && vn.Value == ""):
		return nil, d.errInline(top, path{"version"}, "version is required (supported for %s: %s)", info.kind, supported)
	case vn.Kind != yaml.ScalarNode || vn.ShortTag() != tagStr:
		return nil, d.errInline(vn, path{"version"}, "expected version to be one of %s, got %s", supported, describeNode(vn))
	}
	if !slices.Contains(info.versions, vn.Value) {
		return nil, d.errInline(vn, path{"version"}, "unsupported version %q for %s (supported: %s)", vn.Value, info.kind, supported)
	}
	r := info.new()
	if err := d.decode(top, reflect.ValueOf(r).Elem(), nil); err != nil {
		return nil, err
	}
	if len(d.errs) > 0 {
		return nil, nil
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// locate turns a decoding or validation error into a *ParseError with a line.
func locate(source string, doc *yaml.Node, err error) *ParseError {
	var de *decodeError
	if errors.As(err, &de) {
		return &ParseError{Source: source, Line: de.node.Line, Column: de.node.Column, Err: de.err}
	}
	var fe *FieldError
	if errors.As(err, &fe) && len(doc.Content) > 0 {
		n := findNode(doc.Content[0], fe.path)
		return &ParseError{Source: source, Line: n.Line, Column: n.Column, Err: err}
	}
	return &ParseError{Source: source, Line: doc.Line, Column: doc.Column, Err: err}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are yaml.v3's parser (as opposed to scanner) error messages. yaml.v3
// reports a parser error's line 0-based and a scanner error's 1-based.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive", "found duplicate %YAML directive",
	"found incompatible YAML document", "found undefined tag handle",
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into a *ParseError.
func yamlError(source string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		if slices.Contains(yamlParserProblems, m[2]) {
			line++
		}
		return &ParseError{Source: source, Line: line, Err: errors.New("invalid YAML: " + m[2])}
	}
	if msg == "control characters are not allowed" {
		line, col := firstControlChar(data)
		return &ParseError{Source: source, Line: line, Column: col,
			Err: errors.New("invalid YAML: control characters are not allowed (write them as escapes in a double-quoted string)")}
	}
	return &ParseError{Source: source, Err: errors.New("invalid YAML: " + msg)}
}

// firstControlChar finds the first character YAML does not allow in a stream.
func firstControlChar(data []byte) (line, col int) {
	line, col = 1, 1
	for _, r := range string(data) {
		switch {
		case r == '\n':
			line, col = line+1, 1
			continue
		case r == '\t' || r == '\r' || r == 0x85 || (r >= 0x20 && r <= 0x7e) ||
			(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || r >= 0x10000:
		default:
			return line, col
		}
		col++
	}
	return 0, 0
}

func firstInvalidUTF8(data []byte) (line, col int) {
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return line, col
}

// Marshal writes r as one YAML document in the shape Parse reads; Parse of the result gives
// back a resource equal to r (for resources that validate). An empty Kind or Version is
// filled in with the type's kind and default version. Marshal does not validate r, but
// refuses strings that are not valid UTF-8, which YAML cannot carry as text.
func Marshal(r Resource) ([]byte, error) {
	if r == nil || reflect.ValueOf(r).IsNil() {
		return nil, errors.New("marshaling resource: nil resource")
	}
	info, ok := kindOfType(r)
	if !ok {
		return nil, fmt.Errorf("marshaling resource: unsupported type %T", r)
	}
	v := reflect.New(reflect.TypeOf(r).Elem())
	v.Elem().Set(reflect.ValueOf(r).Elem())
	kind, version := v.Elem().FieldByName("Kind"), v.Elem().FieldByName("Version")
	switch kind.String() {
	case "":
		kind.SetString(info.kind)
	case info.kind:
	default:
		return nil, fmt.Errorf("marshaling %T: kind is %q, want %q", r, kind.String(), info.kind)
	}
	if version.String() == "" {
		version.SetString(info.versions[0])
	}
	if p, ok := invalidUTF8(v.Elem(), nil); ok {
		return nil, fmt.Errorf("marshaling %s: %s is not valid UTF-8", describe(info.kind, r.GetMetadata().Name), p)
	}
	doc, err := encode(v.Elem())
	if err != nil {
		return nil, fmt.Errorf("marshaling %s: %w", describe(info.kind, r.GetMetadata().Name), err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("marshaling %s: %w", describe(info.kind, r.GetMetadata().Name), err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshaling %s: %w", describe(info.kind, r.GetMetadata().Name), err)
	}
	return buf.Bytes(), nil
}

// invalidUTF8 finds a string in v that is not valid UTF-8 and returns its path.
func invalidUTF8(v reflect.Value, p path) (path, bool) {
	switch v.Kind() {
	case reflect.String:
		return p, !utf8.ValidString(v.String())
	case reflect.Pointer:
		if v.IsNil() {
			return nil, false
		}
		return invalidUTF8(v.Elem(), p)
	case reflect.Struct:
		fields := structFields(v.Type())
		for name, i := range fields {
			if q, bad := invalidUTF8(v.Field(i), p.with(name)); bad {
				return q, true
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if q, bad := invalidUTF8(v.Index(i), p.with(i)); bad {
				return q, true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := it.Key().String()
			if !utf8.ValidString(k) {
				return p, true
			}
			if q, bad := invalidUTF8(it.Value(), p.with(k)); bad {
				return q, true
			}
		}
	}
	return nil, false
}
