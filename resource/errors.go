package resource

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ParseError is an error at a place in an input file. Line and Column are 1-based and zero
// when not known. Err is a *FieldError when the problem is with one field of a resource,
// and may wrap a *RoleMapError.
type ParseError struct {
	Source string
	Line   int
	Column int
	Err    error
}

// Error formats the error as source:line:column: message.
func (e *ParseError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %v", e.Source, e.Line, e.Column, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %v", e.Source, e.Line, e.Err)
	default:
		return fmt.Sprintf("%s: %v", e.Source, e.Err)
	}
}

// Unwrap returns the underlying error, usually a *FieldError.
func (e *ParseError) Unwrap() error { return e.Err }

// FieldError is a problem with one field of one resource.
type FieldError struct {
	// Resource names the resource, for example `role "visitor"`; tokens are named by kind only.
	Resource string
	// Field is the field's path in the document, for example "spec.allow.logins[1]" or
	// `spec.allow.node_labels["env"]`; empty for the document as a whole.
	Field string
	// Err says what is wrong.
	Err error

	path path
	// inline means Err's message already names the field, as in
	// `unknown field "allwo" in spec`, so Error does not repeat it.
	inline bool
}

// Error formats the error as resource: field: problem.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Resource != "" {
		b.WriteString(e.Resource)
		b.WriteString(": ")
	}
	if e.Field != "" && !e.inline {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the problem, which may be a *RoleMapError.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(res string, p path, format string, args ...any) *FieldError {
	return &FieldError{Resource: res, Field: p.String(), Err: fmt.Errorf(format, args...), path: p}
}

func wrapFieldErr(res string, p path, err error) *FieldError {
	return &FieldError{Resource: res, Field: p.String(), Err: err, path: p}
}

// path is a field's location in a document: string elements are mapping keys, int elements
// are list indices.
type path []any

// with returns a new path with elems appended; it never aliases p's backing array.
func (p path) with(elems ...any) path {
	q := make(path, 0, len(p)+len(elems))
	return append(append(q, p...), elems...)
}

func (p path) String() string {
	var b strings.Builder
	for i, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		case string:
			if isPlainKey(e) {
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(e)
			} else {
				fmt.Fprintf(&b, "[%s]", strconv.Quote(e))
			}
		}
	}
	return b.String()
}

// isPlainKey reports whether a key can be shown after a dot without quoting.
func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r != '_' && r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
