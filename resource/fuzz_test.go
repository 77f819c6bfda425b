package resource

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/guide.yaml", "testdata/all-kinds.yaml", "testdata/teleport-tctl-get.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for _, doc := range strings.Split(string(data), "\n---\n") {
			f.Add([]byte(doc))
		}
	}
	for _, s := range []string{
		"", "---\n---\n", "~\n", "kind: role\n", "kind: node\nversion: v2\nmetadata: {name: n}\n",
		"kind: role\nversion: v5\nmetadata: {name: r}\nspec: {allow: {node_labels: {a: [b, '^c$'], '*': '*'}}}\n",
		"kind: role\nversion: v5\nmetadata: {name: r, labels: {a: 1}}\nspec: {allow: {logins: ['{{internal.x}}']}}\n",
		"kind: user\nversion: v2\nmetadata: {name: &n a}\nspec: {roles: [*n], traits: {t: &l [x], u: *l}}\n",
		"kind: lock\nversion: v2\nmetadata: {name: l, expires: 2026-01-01T00:00:00+05:00}\nspec: {target: {login: root}}\n",
		"kind: remote_cluster\nversion: v3\nmetadata: {name: leaf}\nstatus: {last_heartbeat: \"2026-11-23T19:45:35.123456789Z\"}\n",
		"kind: token\nversion: v2\nmetadata: {name: t}\nspec: {roles: [NODE]}\n",
		"kind: role\nversion: v5\nmetadata: {name: r}\nspec: {options: {max_session_ttl: 1.5h}}\n",
		"kind: role\nversion: v5\nmetadata: {name: \"a\\u2028b\"}\n",
		"kind: node\nversion: v2\nmetadata: {name: n, description: \"line1\\n  line2 \\n\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if rs != nil {
				t.Fatalf("Parse returned resources with error %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		var all []byte
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed resource does not validate again: %v", err)
			}
			out, err := Marshal(r)
			if err != nil {
				t.Fatalf("Marshal(%#v): %v", r, err)
			}
			back, err := Parse(out, "marshaled.yaml")
			if err != nil {
				t.Fatalf("Parse(Marshal(r)): %v\nYAML:\n%s", err, out)
			}
			if len(back) != 1 || !reflect.DeepEqual(back[0], r) {
				t.Fatalf("round trip changed the resource\nYAML:\n%s\n got %#v\nwant %#v", out, back, r)
			}
			all = append(append(all, "---\n"...), out...)
		}
		back, err := Parse(all, "all.yaml")
		if err != nil || len(back) != len(rs) {
			t.Fatalf("Parse of all marshaled documents: %d resources, %v", len(back), err)
		}
	})
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		"visitor", "{{internal.logins}}", "{{ external . x }}", `{{internal["a b"]}}`, "p-{{internal.x}}-s",
		"{{email.local(external.email)}}", `{{regexp.replace(internal.a, "^(.*)$", "$1")}}`,
		"{{internal.a}}{{internal.b}}", "{{", "}}", "{{}}", `{{internal["\x7b"]}}`, "{{external[`raw`]}}",
		" \t{{internal.x}} \n", `{{regexp.replace(internal.a, "\u00e9", "\\")}}`,
		`{{"x"}}`, `{{regexp.replace("a", "(a)", "$1")}}`, `{{email.local("a@b.c")}}`, "{{internal.jwt}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		if tpl.IsLiteral {
			if tpl.Literal != s || hasTemplateBraces(s) {
				t.Fatalf("literal %#v from %q", tpl, s)
			}
			return
		}
		switch {
		case tpl.IsConst:
			if tpl.Namespace != "" || tpl.Trait != "" {
				t.Fatalf("constant template with a trait %#v from %q", tpl, s)
			}
		case tpl.Namespace != NamespaceInternal && tpl.Namespace != NamespaceExternal || tpl.Trait == "":
			t.Fatalf("bad template %#v from %q", tpl, s)
		case tpl.Namespace == NamespaceInternal && !slices.Contains(InternalTraits, tpl.Trait):
			t.Fatalf("internal.%s is not one of Teleport's internal traits, from %q", tpl.Trait, s)
		}
		if tpl.Func == FuncRegexpReplace {
			if _, err := regexp.Compile(tpl.Regex); err != nil {
				t.Fatalf("regex %q does not compile: %v", tpl.Regex, err)
			}
		}
		again, err := ParseTemplate(tpl.String())
		if err != nil || again != tpl {
			t.Fatalf("ParseTemplate(%q) from %q = %#v, %v; want %#v", tpl.String(), s, again, err, tpl)
		}
	})
}

// rulesFromString decodes fuzz input into rules: one rule per line, remote and locals
// separated by tabs; a line without a tab has no locals.
func rulesFromString(s string) []RoleMapping {
	if s == "" {
		return nil
	}
	var rules []RoleMapping
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Split(line, "\t")
		r := RoleMapping{Remote: fields[0]}
		if len(fields) > 1 {
			r.Local = fields[1:]
		}
		rules = append(rules, r)
	}
	return rules
}

func FuzzValidateRoleMap(f *testing.F) {
	for _, s := range []string{
		"access\tvisitor", "access\tvisitor\n^remote-(.*)$\tlocal-$1\ncluster-*\tclusteradmin",
		"\tx", "a", "a\t", "a\t*", "a\tx\na\ty", "^(a$\tx", "^a)|(b$\tx", " \tx", "a\t \t*", "*\t$1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules := rulesFromString(s)
		err := ValidateRoleMap(rules)
		if err == nil {
			for _, r := range rules {
				regex, _, err := CompileRoleMapRemote(r.Remote)
				if err != nil {
					t.Fatalf("valid map has a remote that does not compile: %q: %v", r.Remote, err)
				}
				if _, err := regexp.Compile(regex); err != nil {
					t.Fatalf("CompileRoleMapRemote(%q) = %q, which does not compile: %v", r.Remote, regex, err)
				}
			}
			return
		}
		var rme *RoleMapError
		if !errors.As(err, &rme) || rme.Index < 0 || rme.Index >= len(rules) {
			t.Fatalf("ValidateRoleMap error %v is not a *RoleMapError with an index in range", err)
		}
		if rme.Rule != rules[rme.Index].String() || rme.Code == "" || rme.Msg == "" {
			t.Fatalf("RoleMapError %+v does not describe rule %d", rme, rme.Index)
		}
		// First failure wins: the rules before it validate, and the prefix up to it fails
		// the same way.
		if err := ValidateRoleMap(rules[:rme.Index]); err != nil {
			t.Fatalf("rules before the failing one do not validate: %v", err)
		}
		var again *RoleMapError
		if err := ValidateRoleMap(rules[:rme.Index+1]); !errors.As(err, &again) || *again != *rme {
			t.Fatalf("prefix ends in %v, want %v", err, rme)
		}
	})
}

func FuzzCompileRoleMapRemote(f *testing.F) {
	for _, s := range [][3]string{
		{"access", "access", "visitor"}, {"cluster-*", "cluster-x", "$1"}, {"a*b*", "axbyb", "$0"},
		{"^dev|ops$", "devops-team", "${0}"}, {"a?[.", "a?[.", "$$"}, {"", "", "$1x"}, {"*", "", "${"},
		{"^a)|(b$", "b", "$00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, remote, role, local string) {
		got := ExpandLiteralLocal(remote, local)
		if utf8.ValidString(remote) && utf8.ValidString(local) && len(remote) < 1000 {
			if want := expandWithRegexp(remote, local); got != want {
				t.Fatalf("ExpandLiteralLocal(%q, %q) = %q, regexp gives %q", remote, local, got, want)
			}
		}
		regex, literal, err := CompileRoleMapRemote(remote)
		if err != nil {
			if !IsRoleMapRegex(remote) && utf8.ValidString(remote) && len(remote) < 1000 {
				t.Fatalf("non-regex remote %q does not compile: %v", remote, err)
			}
			return
		}
		re, err := regexp.Compile(regex)
		if err != nil {
			t.Fatalf("CompileRoleMapRemote(%q) = %q, which does not compile: %v", remote, regex, err)
		}
		if !utf8.ValidString(role) {
			return
		}
		matched := re.MatchString(role)
		switch {
		case literal:
			if matched != (role == remote) {
				t.Fatalf("literal %q matches %q: %v", remote, role, matched)
			}
		case !IsRoleMapRegex(remote):
			if want := globMatch(remote, role); matched != want {
				t.Fatalf("glob %q matches %q: %v, want %v", remote, role, matched, want)
			}
		default:
			// The remote as written compiles, and whatever the whole-name regex matches,
			// the remote as written matches too.
			raw := regexp.MustCompile(remote)
			if matched && !raw.MatchString(role) {
				t.Fatalf("regex %q matched %q, which %q does not", regex, role, remote)
			}
		}
	})
}

// globMatch is a reference matcher: '*' matches any run of bytes except a newline (as
// Teleport's (.*) does; role names never hold one), everything else matches itself. It is
// the classic backtracking matcher remembering only the last star.
func globMatch(pattern, s string) bool {
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0 && s[mark] != '\n':
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// FuzzMarshalString puts an arbitrary string everywhere a Node holds free text and requires
// Marshal then Parse to give it back.
func FuzzMarshalString(f *testing.F) {
	for _, s := range []string{"", "\n", "\n\nx", "<<", "a: b", "- x", "true", "\u0085", "\ufeff", " x ", "a\r\nb", "|", "'\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		n := &Node{
			Metadata: Metadata{Name: "n", Description: s, Labels: map[string]string{"k": s}},
			Spec:     NodeSpec{Hostname: s},
		}
		if s != "" {
			n.Metadata.Labels[s] = "v"
		}
		out, err := Marshal(n)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out, "m.yaml")
		if err != nil {
			t.Fatalf("Parse(Marshal(%q)): %v\n%s", s, err, out)
		}
		n.Kind, n.Version = KindNode, "v2"
		if !reflect.DeepEqual(back[0], n) {
			t.Fatalf("round trip of %q:\n got %#v\nwant %#v\n%s", s, back[0], n, out)
		}
	})
}
