package resource

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template is a parsed role login or label value: either a literal, or
// prefix{{expr}}suffix where expr reads one trait of the user (or a string literal),
// optionally through a function.
type Template struct {
	// Literal is the whole value when IsLiteral is true.
	Literal   string
	IsLiteral bool

	// Prefix and Suffix surround the expression. As in Teleport, leading whitespace of the
	// prefix and trailing whitespace of the suffix are dropped.
	Prefix, Suffix string
	// Namespace is "internal" or "external"; both read the same trait map. Empty when the
	// expression reads the string literal Const instead of a trait.
	Namespace string
	// Trait is the trait's name, for example "logins". For the internal namespace it is
	// one of InternalTraits.
	Trait string
	// Const is the string literal the expression reads when IsConst is true: {{"x"}},
	// {{regexp.replace("x", "re", "repl")}}, {{email.local("a@b.c")}}. Such a template does
	// not depend on the user; Expand(nil) gives its values.
	Const   string
	IsConst bool
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

// InternalTraits are the trait names the internal namespace accepts: Teleport's internal
// traits. {{internal.NAME}} with any other NAME is refused (use external.NAME).
var InternalTraits = []string{
	"logins", "windows_logins", "kubernetes_users", "kubernetes_groups",
	"db_users", "db_names", "db_roles", "aws_role_arns", "azure_identities",
	"gcp_service_accounts", "host_user_uid", "host_user_gid", "github_orgs", "jwt",
}

// ParseTemplate parses a role login or label value. A value with neither "{{" nor "}}" is a
// literal. Otherwise it must be prefix{{expr}}suffix with exactly one expression and no other
// '{' or '}' anywhere (Teleport's rule; write \x7b and \x7d inside a quoted string for literal
// braces). Whitespace is allowed between the expression's tokens. expr is one of
//
//	internal.NAME                 external.NAME
//	internal["NAME"]              external["NAME"]
//	"string"
//	email.local(VAR)              regexp.replace(VAR, "re", "replacement")
//
// where VAR is one of the first five forms and strings are Go string literals ("..." with Go
// escapes, or `...`). The regular expression must compile (RE2). internal.NAME accepts only
// Teleport's internal trait names (InternalTraits). Any other namespace is refused (Tether:
// Teleport reads an unknown namespace as external).
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
	switch {
	case t.IsConst:
		v = quoteTemplateString(t.Const)
	case !isIdent(t.Trait):
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
	if first.kind == tokString {
		t := Template{Const: first.text, IsConst: true}
		if tok := p.next(); tok.kind != tokEOF {
			return Template{}, fmt.Errorf("unexpected %s after the expression", describeToken(tok))
		}
		return t, nil
	}
	if first.kind != tokIdent {
		return Template{}, fmt.Errorf("expected internal, external, a \"string\", email.local or regexp.replace, found %s", describeToken(first))
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
	if ns == NamespaceInternal && !slices.Contains(InternalTraits, t.Trait) {
		return Template{}, fmt.Errorf("%q is not an internal trait: internal.NAME takes one of %s; read other traits with external.NAME",
			t.Trait, strings.Join(InternalTraits, ", "))
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
	var t Template
	switch {
	case ns.kind == tokString:
		t = Template{Const: ns.text, IsConst: true}
	case ns.kind == tokIdent && (ns.text == NamespaceInternal || ns.text == NamespaceExternal):
		var err error
		if t, err = p.variable(ns.text); err != nil {
			return Template{}, fmt.Errorf("%s: %w", fn, err)
		}
	default:
		return Template{}, fmt.Errorf("%s: first argument must be internal.NAME, external.NAME or a \"string\", found %s", fn, describeToken(ns))
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

// Expand returns the values the template gives a user with these traits, in order, as
// Teleport computes them: a literal gives itself; an expression gives prefix+v+suffix for
// each value v of its trait (or its string literal) that its function keeps. A missing
// trait gives nothing. regexp.replace drops values its expression does not match.
// email.local keeps the local part of each value parsed as an RFC 5322 address
// (net/mail.ParseAddress; "Name <a@b.c>" gives "a"), and one value that does not parse
// voids the whole expression: it then gives nothing.
//
// The policy expands templates in Rego (rego/templates.rego); Go uses Expand for templates
// that do not depend on the user (IsConst) and as the reference the Rego is tested against.
func (t Template) Expand(traits map[string][]string) []string {
	if t.IsLiteral {
		return []string{t.Literal}
	}
	in := traits[t.Trait]
	if t.IsConst {
		in = []string{t.Const}
	}
	var re *regexp.Regexp
	if t.Func == FuncRegexpReplace {
		var err error
		if re, err = regexp.Compile(t.Regex); err != nil {
			return nil // ParseTemplate refuses such a template
		}
	}
	out := make([]string, 0, len(in))
	for _, v := range in {
		switch t.Func {
		case FuncEmailLocal:
			local, ok := EmailLocal(v)
			if !ok {
				return nil
			}
			v = local
		case FuncRegexpReplace:
			if !re.MatchString(v) {
				continue
			}
			v = re.ReplaceAllString(v, t.Replacement)
		}
		out = append(out, t.Prefix+v+t.Suffix)
	}
	return out
}

// EmailLocal returns the local part of an RFC 5322 address as Teleport's email.local
// computes it: the value is parsed with net/mail.ParseAddress and the part of the address
// before its first '@' is kept. ok is false for an empty value or one that does not parse.
func EmailLocal(v string) (local string, ok bool) {
	if v == "" {
		return "", false
	}
	addr, err := mail.ParseAddress(v)
	if err != nil {
		return "", false
	}
	local, _, ok = strings.Cut(addr.Address, "@")
	return local, ok
}
