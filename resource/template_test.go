package resource

import (
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Template
	}{
		{"literal", "visitor", Template{Literal: "visitor", IsLiteral: true}},
		{"literal_empty", "", Template{Literal: "", IsLiteral: true}},
		{"literal_single_braces", "^a{2}$", Template{Literal: "^a{2}$", IsLiteral: true}},
		{"literal_keeps_spaces", " a ", Template{Literal: " a ", IsLiteral: true}},
		{"internal", "{{internal.logins}}", Template{Namespace: "internal", Trait: "logins"}},
		{"external", "{{external.groups}}", Template{Namespace: "external", Trait: "groups"}},
		{"whitespace_inside_braces", "{{ internal . logins }}", Template{Namespace: "internal", Trait: "logins"}},
		{"tabs_and_newlines_inside_braces", "{{\tinternal.logins\n}}", Template{Namespace: "internal", Trait: "logins"}},
		{"index_form", `{{internal["logins"]}}`, Template{Namespace: "internal", Trait: "logins"}},
		{"index_form_any_name", `{{external["user-groups.x y"]}}`, Template{Namespace: "external", Trait: "user-groups.x y"}},
		{"index_form_escapes", `{{external["a\tb\x7b"]}}`, Template{Namespace: "external", Trait: "a\tb{"}},
		{"index_form_raw_string", "{{external[`a\\b`]}}", Template{Namespace: "external", Trait: `a\b`}},
		{"unicode_trait", "{{internal.équipe}}", Template{Namespace: "internal", Trait: "équipe"}},
		{"prefix_and_suffix", "ops-{{internal.team}}-admin", Template{Prefix: "ops-", Suffix: "-admin", Namespace: "internal", Trait: "team"}},
		{"prefix_leading_and_suffix_trailing_space_dropped", "  a {{internal.x}} b  ", Template{Prefix: "a ", Suffix: " b", Namespace: "internal", Trait: "x"}},
		{"email_local", "{{email.local(external.email)}}", Template{Namespace: "external", Trait: "email", Func: FuncEmailLocal}},
		{"email_local_index", `{{ email.local( internal["e-mail"] ) }}`, Template{Namespace: "internal", Trait: "e-mail", Func: FuncEmailLocal}},
		{"regexp_replace", `{{regexp.replace(external.groups, "^team-(.*)$", "$1")}}`,
			Template{Namespace: "external", Trait: "groups", Func: FuncRegexpReplace, Regex: "^team-(.*)$", Replacement: "$1"}},
		{"regexp_replace_escapes", `x-{{regexp.replace(internal.a, "\\d+", "n\x7d")}}`,
			Template{Prefix: "x-", Namespace: "internal", Trait: "a", Func: FuncRegexpReplace, Regex: `\d+`, Replacement: "n}"}},
		{"regexp_replace_empty", `{{regexp.replace(internal.a, "", "")}}`,
			Template{Namespace: "internal", Trait: "a", Func: FuncRegexpReplace}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTemplate(tt.in)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseTemplate(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			again, err := ParseTemplate(got.String())
			if err != nil || again != got {
				t.Errorf("ParseTemplate(String() = %q) = %#v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unclosed", "{{internal.logins", `template "{{internal.logins": unbalanced braces`},
		{"unclosed_single", "{{internal.logins}", `unbalanced braces`},
		{"close_only", "internal.logins}}", `unbalanced braces`},
		{"close_before_open", "}}{{internal.x}}", `unbalanced braces`},
		{"triple_open", "{{{internal.x}}", `unbalanced braces: no '{' or '}' is allowed outside the one {{...}}`},
		{"triple_close", "{{internal.x}}}", `unbalanced braces`},
		{"brace_in_prefix", "a{b{{internal.x}}", `unbalanced braces`},
		{"two_expressions", "{{internal.a}}-{{internal.b}}", `only one {{...}} expression is allowed`},
		{"empty_expression", "{{ }}", `empty expression: write for example {{internal.logins}}`},
		{"unknown_namespace", "{{traits.logins}}", `unknown namespace "traits": use internal or external`},
		{"bare_identifier", "{{logins}}", `unknown namespace "logins": use internal or external`},
		{"namespace_only", "{{internal}}", `expected internal.NAME or internal["NAME"], found end of expression`},
		{"too_many_parts", "{{internal.a.b}}", `unexpected "." after the expression`},
		{"trailing_junk", "{{internal.a b}}", `unexpected "b" after the expression`},
		{"digit_trait", "{{internal.1}}", `unexpected character '1'`},
		{"index_not_string", "{{internal[logins]}}", `expected a quoted trait name after "internal[", found "logins"`},
		{"index_unclosed", `{{internal["a"}}`, `expected "]", found end of expression`},
		{"empty_trait", `{{internal[""]}}`, `trait name must not be empty`},
		{"unterminated_string", `{{internal["a]}}`, `unterminated string`},
		{"bad_escape", `{{internal["\q"]}}`, `invalid string`},
		{"unknown_function", "{{regexp.match(internal.a)}}", `unsupported function regexp.match: use email.local or regexp.replace`},
		{"unknown_function_namespace", "{{strings.upper(internal.a)}}", `unsupported function strings.upper`},
		{"function_without_namespace", "{{local(internal.a)}}", `unknown namespace "local"`},
		{"nested_function", "{{email.local(email.local(internal.a))}}", `email.local: first argument must be internal.NAME or external.NAME, found "email"`},
		{"function_arity", "{{email.local(internal.a, \"x\")}}", `email.local takes 1 argument(s): expected ")", found ","`},
		{"regexp_replace_arity", `{{regexp.replace(internal.a, "x")}}`, `regexp.replace takes 3 arguments: expected ",", found ")"`},
		{"regexp_replace_non_string", `{{regexp.replace(internal.a, x, "y")}}`, `regexp.replace: expected a quoted string argument, found "x"`},
		{"regexp_replace_bad_regex", `{{regexp.replace(internal.a, "(", "y")}}`, `regexp.replace: "(" is not a valid regular expression: missing closing )`},
		{"regexp_replace_literal_arg", `{{regexp.replace("a", "b", "c")}}`, `regexp.replace: first argument must be internal.NAME or external.NAME, found string "a"`},
		{"unclosed_call", "{{email.local(internal.a}}", `expected ")", found end of expression`},
		{"symbol", "{{internal.a + 1}}", `unexpected character '+'`},
		{"string_expression", `{{"x"}}`, `expected internal, external, email.local or regexp.replace, found string "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTemplate(tt.in)
			if err == nil {
				t.Fatalf("ParseTemplate(%q) = %#v, want error %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTemplate(%q) error:\n got %v\nwant %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestTemplateStringQuotesBraces(t *testing.T) {
	t.Parallel()
	tpl := Template{Namespace: "internal", Trait: "a{b}", Func: FuncRegexpReplace, Regex: "x{2}", Replacement: "}}"}
	s := tpl.String()
	if strings.Count(s, "{") != 2 || strings.Count(s, "}") != 2 {
		t.Errorf("String() = %s has braces outside the expression", s)
	}
	back, err := ParseTemplate(s)
	if err != nil || back != tpl {
		t.Errorf("ParseTemplate(%s) = %#v, %v", s, back, err)
	}
}
