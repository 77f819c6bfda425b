package resource

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template is a parsed role login or label value: either a literal, or
// prefix{{expr}}suffix where expr reads one trait of the user, optionally through a function.
type Template struct {
	// Literal is the whole value when IsLiteral is true.
	Literal   string
	IsLiteral bool

	// Prefix and Suffix surround the expression. As in Teleport, leading whitespace of the
	// prefix and trailing whitespace of the suffix are dropped.
	Prefix, Suffix string
	// Namespace is "internal" or "external"; both read the same trait map.
	Namespace string
	// Trait is the trait's name, for example "logins".
	Trait string
	// Func is "", "email_local" (email.local) or "regexp_replace" (regexp.replace).
	Func string
	// Regex and Replacement are regexp.replace's pattern and replacement.
	Regex, Replacement string
}

// Template namespaces and functions.
const (
	NamespaceInternal = "internal"
	NamespaceExternal = "external"
	FuncEmailLocal    = "email_local"
	FuncRegexpReplace = "regexp_replace"
)

// ParseTemplate parses a role login or label value. A value with neither "{{" nor "}}" is a
// literal. Otherwise it must be prefix{{expr}}suffix with exactly one expression and no other
// '{' or '}' anywhere (Teleport's rule; write \x7b and \x7d inside a quoted string for literal
// braces). Whitespace is allowed between the expression's tokens. expr is one of
//
//	internal.NAME                 external.NAME
//	internal["NAME"]              external["NAME"]
//	email.local(VAR)              regexp.replace(VAR, "re", "replacement")
//
// where VAR is one of the first four forms and strings are Go string literals ("..." with Go
// escapes, or `...`). The regular expression must compile (RE2).
func ParseTemplate(s string) (Template, error) {
	open := strings.Index(s, "{{")
	closing := strings.Index(s, "}}")
	if open < 0 && closing < 0 {
		return Template{Literal: s, IsLiteral: true}, nil
	}
	if open < 0 || closing < 0 || closing < open {
		return Template{}, fmt.Errorf("template %q: unbalanced braces: write prefix{{expression}}suffix", s)
	}
	prefix, rest := s[:open], s[open+2:]
	end := strings.Index(rest, "}}")
	expr, suffix := rest[:end], rest[end+2:]
	switch {
	case strings.Contains(suffix, "{{"):
		return Template{}, fmt.Errorf("template %q: only one {{...}} expression is allowed", s)
	case strings.ContainsAny(prefix, "{}") || strings.ContainsAny(expr, "{}") || strings.ContainsAny(suffix, "{}"):
		return Template{}, fmt.Errorf("template %q: unbalanced braces: no '{' or '}' is allowed outside the one {{...}}", s)
	}
	t, err := parseExpr(expr)
	if err != nil {
		return Template{}, fmt.Errorf("template %q: %w", s, err)
	}
	t.Prefix = strings.TrimLeftFunc(prefix, unicode.IsSpace)
	t.Suffix = strings.TrimRightFunc(suffix, unicode.IsSpace)
	return t, nil
}

// String returns the template in the syntax ParseTemplate reads; parsing it gives t back.
func (t Template) String() string {
	if t.IsLiteral {
		return t.Literal
	}
	v := t.Namespace + "." + t.Trait
	if !isIdent(t.Trait) {
		v = t.Namespace + "[" + quoteTemplateString(t.Trait) + "]"
	}
	switch t.Func {
	case FuncEmailLocal:
		v = "email.local(" + v + ")"
	case FuncRegexpReplace:
		v = "regexp.replace(" + v + ", " + quoteTemplateString(t.Regex) + ", " + quoteTemplateString(t.Replacement) + ")"
	}
	return t.Prefix + "{{" + v + "}}" + t.Suffix
}

// quoteTemplateString quotes s as a Go string literal with no braces, which the template
// syntax reserves.
func quoteTemplateString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "{", `\x7b`)
	return strings.ReplaceAll(q, "}", `\x7d`)
}

func hasTemplateBraces(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "}}")
}

// Template expression tokens.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	text string // identifier, unquoted string, or the punctuation character
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i += size
		case r == '_' || unicode.IsLetter(r):
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += size
			}
			toks = append(toks, token{tokIdent, s[i:j]})
			i = j
		case strings.ContainsRune(".[](),", r):
			toks = append(toks, token{tokPunct, string(r)})
			i += size
		case r == '"' || r == '`':
			j := stringLiteralEnd(s, i)
			if j < 0 {
				return nil, errors.New("unterminated string")
			}
			v, err := strconv.Unquote(s[i:j])
			if err != nil {
				return nil, fmt.Errorf("invalid string %s: %v", s[i:j], err)
			}
			toks = append(toks, token{tokString, v})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", r)
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

// stringLiteralEnd returns the index just past the string literal starting at s[i], or -1.
func stringLiteralEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q == '"':
			j++
		case s[j] == '\n' && q == '"':
			return -1
		case s[j] == q:
			return j + 1
		}
	}
	return -1
}

type exprParser struct {
	toks []token
	pos  int
}

func (p *exprParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *exprParser) peek() token { return p.toks[p.pos] }

func (p *exprParser) expect(punct string) error {
	t := p.next()
	if t.kind != tokPunct || t.text != punct {
		return fmt.Errorf("expected %q, found %s", punct, describeToken(t))
	}
	return nil
}

func describeToken(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return "string " + strconv.Quote(t.text)
	default:
		return strconv.Quote(t.text)
	}
}

func parseExpr(expr string) (Template, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return Template{}, err
	}
	p := &exprParser{toks: toks}
	if p.peek().kind == tokEOF {
		return Template{}, errors.New("empty expression: write for example {{internal.logins}}")
	}
	first := p.next()
	if first.kind != tokIdent {
		return Template{}, fmt.Errorf("expected internal, external, email.local or regexp.replace, found %s", describeToken(first))
	}
	var t Template
	if first.text == NamespaceInternal || first.text == NamespaceExternal {
		if t, err = p.variable(first.text); err != nil {
			return Template{}, err
		}
	} else {
		if err := p.expect("."); err != nil {
			return Template{}, fmt.Errorf("unknown namespace %q: use internal or external", first.text)
		}
		name := p.next()
		if name.kind != tokIdent {
			return Template{}, fmt.Errorf("expected a name after %q, found %s", first.text+".", describeToken(name))
		}
		fn := first.text + "." + name.text
		if p.peek().kind != tokPunct || p.peek().text != "(" {
			return Template{}, fmt.Errorf("unknown namespace %q: use internal or external", first.text)
		}
		p.next()
		if t, err = p.call(fn); err != nil {
			return Template{}, err
		}
	}
	if tok := p.next(); tok.kind != tokEOF {
		return Template{}, fmt.Errorf("unexpected %s after the expression", describeToken(tok))
	}
	return t, nil
}

// variable parses the rest of internal.NAME or internal["NAME"].
func (p *exprParser) variable(ns string) (Template, error) {
	t := Template{Namespace: ns}
	switch tok := p.next(); {
	case tok.kind == tokPunct && tok.text == ".":
		name := p.next()
		if name.kind != tokIdent {
			return Template{}, fmt.Errorf("expected a trait name after %q, found %s", ns+".", describeToken(name))
		}
		t.Trait = name.text
	case tok.kind == tokPunct && tok.text == "[":
		name := p.next()
		if name.kind != tokString {
			return Template{}, fmt.Errorf("expected a quoted trait name after %q, found %s", ns+"[", describeToken(name))
		}
		if err := p.expect("]"); err != nil {
			return Template{}, err
		}
		t.Trait = name.text
	default:
		return Template{}, fmt.Errorf("expected %s.NAME or %s[\"NAME\"], found %s", ns, ns, describeToken(tok))
	}
	if t.Trait == "" {
		return Template{}, errors.New("trait name must not be empty")
	}
	return t, nil
}

// call parses a function's arguments after the opening parenthesis.
func (p *exprParser) call(fn string) (Template, error) {
	var nargs int
	switch fn {
	case "email.local":
		nargs = 1
	case "regexp.replace":
		nargs = 3
	default:
		return Template{}, fmt.Errorf("unsupported function %s: use email.local or regexp.replace", fn)
	}
	ns := p.next()
	if ns.kind != tokIdent || (ns.text != NamespaceInternal && ns.text != NamespaceExternal) {
		return Template{}, fmt.Errorf("%s: first argument must be internal.NAME or external.NAME, found %s", fn, describeToken(ns))
	}
	t, err := p.variable(ns.text)
	if err != nil {
		return Template{}, fmt.Errorf("%s: %w", fn, err)
	}
	var strs []string
	for range nargs - 1 {
		if err := p.expect(","); err != nil {
			return Template{}, fmt.Errorf("%s takes %d arguments: %w", fn, nargs, err)
		}
		s := p.next()
		if s.kind != tokString {
			return Template{}, fmt.Errorf("%s: expected a quoted string argument, found %s", fn, describeToken(s))
		}
		strs = append(strs, s.text)
	}
	if err := p.expect(")"); err != nil {
		return Template{}, fmt.Errorf("%s takes %d argument(s): %w", fn, nargs, err)
	}
	switch fn {
	case "email.local":
		t.Func = FuncEmailLocal
	case "regexp.replace":
		if _, err := regexp.Compile(strs[0]); err != nil {
			return Template{}, fmt.Errorf("regexp.replace: %q is not a valid regular expression: %s", strs[0], regexpProblem(err, strs[0]))
		}
		t.Func, t.Regex, t.Replacement = FuncRegexpReplace, strs[0], strs[1]
	}
	return t, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}
