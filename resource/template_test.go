package resource

import (
	"slices"
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
		{"unicode_trait", "{{external.équipe}}", Template{Namespace: "external", Trait: "équipe"}},
		{"prefix_and_suffix", "ops-{{external.team}}-admin", Template{Prefix: "ops-", Suffix: "-admin", Namespace: "external", Trait: "team"}},
		{"prefix_leading_and_suffix_trailing_space_dropped", "  a {{external.x}} b  ", Template{Prefix: "a ", Suffix: " b", Namespace: "external", Trait: "x"}},
		{"email_local", "{{email.local(external.email)}}", Template{Namespace: "external", Trait: "email", Func: FuncEmailLocal}},
		{"email_local_index", `{{ email.local( external["e-mail"] ) }}`, Template{Namespace: "external", Trait: "e-mail", Func: FuncEmailLocal}},
		{"regexp_replace", `{{regexp.replace(external.groups, "^team-(.*)$", "$1")}}`,
			Template{Namespace: "external", Trait: "groups", Func: FuncRegexpReplace, Regex: "^team-(.*)$", Replacement: "$1"}},
		{"regexp_replace_escapes", `x-{{regexp.replace(external.a, "\\d+", "n\x7d")}}`,
			Template{Prefix: "x-", Namespace: "external", Trait: "a", Func: FuncRegexpReplace, Regex: `\d+`, Replacement: "n}"}},
		{"regexp_replace_empty", `{{regexp.replace(external.a, "", "")}}`,
			Template{Namespace: "external", Trait: "a", Func: FuncRegexpReplace}},
		{"every_internal_trait_name", "{{internal.gcp_service_accounts}}", Template{Namespace: "internal", Trait: "gcp_service_accounts"}},
		{"internal_index_form", `{{internal["host_user_uid"]}}`, Template{Namespace: "internal", Trait: "host_user_uid"}},
		{"string_literal", `{{"x"}}`, Template{Const: "x", IsConst: true}},
		{"string_literal_affixes", `a-{{ "x" }}-b`, Template{Prefix: "a-", Suffix: "-b", Const: "x", IsConst: true}},
		{"string_literal_braces", `{{"\x7b\x7d"}}`, Template{Const: "{}", IsConst: true}},
		{"regexp_replace_of_a_literal", `{{regexp.replace("team-db", "^team-(.*)$", "$1")}}`,
			Template{Const: "team-db", IsConst: true, Func: FuncRegexpReplace, Regex: "^team-(.*)$", Replacement: "$1"}},
		{"email_local_of_a_literal", `{{email.local("Alice <alice@example.com>")}}`,
			Template{Const: "Alice <alice@example.com>", IsConst: true, Func: FuncEmailLocal}},
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
		{"close_before_open", "}}{{external.x}}", `unbalanced braces`},
		{"triple_open", "{{{external.x}}", `unbalanced braces: no '{' or '}' is allowed outside the one {{...}}`},
		{"triple_close", "{{external.x}}}", `unbalanced braces`},
		{"brace_in_prefix", "a{b{{external.x}}", `unbalanced braces`},
		{"two_expressions", "{{external.a}}-{{external.b}}", `only one {{...}} expression is allowed`},
		{"empty_expression", "{{ }}", `empty expression: write for example {{internal.logins}}`},
		{"unknown_namespace", "{{traits.logins}}", `unknown namespace "traits": use internal or external`},
		{"bare_identifier", "{{logins}}", `unknown namespace "logins": use internal or external`},
		{"namespace_only", "{{internal}}", `expected internal.NAME or internal["NAME"], found end of expression`},
		{"too_many_parts", "{{external.a.b}}", `unexpected "." after the expression`},
		{"trailing_junk", "{{external.a b}}", `unexpected "b" after the expression`},
		{"digit_trait", "{{external.1}}", `unexpected character '1'`},
		{"index_not_string", "{{internal[logins]}}", `expected a quoted trait name after "internal[", found "logins"`},
		{"index_unclosed", `{{external["a"}}`, `expected "]", found end of expression`},
		{"empty_trait", `{{internal[""]}}`, `trait name must not be empty`},
		{"unterminated_string", `{{external["a]}}`, `unterminated string`},
		{"bad_escape", `{{internal["\q"]}}`, `invalid string`},
		{"unknown_function", "{{regexp.match(external.a)}}", `unsupported function regexp.match: use email.local or regexp.replace`},
		{"unknown_function_namespace", "{{strings.upper(external.a)}}", `unsupported function strings.upper`},
		{"function_without_namespace", "{{local(external.a)}}", `unknown namespace "local"`},
		{"nested_function", "{{email.local(email.local(external.a))}}", `email.local: first argument must be internal.NAME, external.NAME or a "string", found "email"`},
		{"function_arity", "{{email.local(external.a, \"x\")}}", `email.local takes 1 argument(s): expected ")", found ","`},
		{"regexp_replace_arity", `{{regexp.replace(external.a, "x")}}`, `regexp.replace takes 3 arguments: expected ",", found ")"`},
		{"regexp_replace_non_string", `{{regexp.replace(external.a, x, "y")}}`, `regexp.replace: expected a quoted string argument, found "x"`},
		{"regexp_replace_bad_regex", `{{regexp.replace(external.a, "(", "y")}}`, `regexp.replace: "(" is not a valid regular expression: missing closing )`},
		{"regexp_replace_number_arg", `{{regexp.replace(1, "b", "c")}}`, `unexpected character '1'`},
		{"unclosed_call", "{{email.local(external.a}}", `expected ")", found end of expression`},
		{"symbol", "{{external.a + 1}}", `unexpected character '+'`},
		{"string_then_junk", `{{"x" "y"}}`, `unexpected string "y" after the expression`},
		{"string_then_selector", `{{"x".y}}`, `unexpected "." after the expression`},
		{"punctuation_first", `{{.x}}`, `expected internal, external, a "string", email.local or regexp.replace, found "."`},
		// Teleport's internal traits only (issue 7, point 6); the error lists them.
		{"internal_unknown_trait", "{{internal.team}}", `"team" is not an internal trait: internal.NAME takes one of logins, windows_logins, kubernetes_users, kubernetes_groups, db_users, db_names, db_roles, aws_role_arns, azure_identities, gcp_service_accounts, host_user_uid, host_user_gid, github_orgs, jwt; read other traits with external.NAME`},
		{"internal_unknown_trait_index_form", `{{internal["email"]}}`, `"email" is not an internal trait`},
		{"internal_unknown_trait_in_email_local", "{{email.local(internal.email)}}", `email.local: "email" is not an internal trait`},
		{"internal_unknown_trait_in_regexp_replace", `{{regexp.replace(internal.groups, "a", "b")}}`, `regexp.replace: "groups" is not an internal trait`},
		{"internal_trait_names_are_case_sensitive", "{{internal.Logins}}", `"Logins" is not an internal trait`},
		// Tether: an unknown namespace is refused (Teleport reads {{foo.bar}} as external.bar).
		{"unknown_namespace_with_name", "{{foo.bar}}", `unknown namespace "foo": use internal or external`},
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
	tpl := Template{Namespace: "external", Trait: "a{b}", Func: FuncRegexpReplace, Regex: "x{2}", Replacement: "}}"}
	s := tpl.String()
	if strings.Count(s, "{") != 2 || strings.Count(s, "}") != 2 {
		t.Errorf("String() = %s has braces outside the expression", s)
	}
	back, err := ParseTemplate(s)
	if err != nil || back != tpl {
		t.Errorf("ParseTemplate(%s) = %#v, %v", s, back, err)
	}
}

// TestTemplateExpand: the values a template gives, Teleport's semantics (DESIGN §3a
// "Templates"); the Rego expansion is held to it by regolib's differential tests.
func TestTemplateExpand(t *testing.T) {
	t.Parallel()
	traits := map[string][]string{
		"logins": {"visitor", "ubuntu"},
		"email":  {"alice@example.com", "Bob Smith <bob@example.com>"},
		"mixed":  {"alice@example.com", "not an address"},
		"groups": {"team-db", "other", "team-web"},
	}
	tests := []struct {
		name, tpl string
		want      []string
	}{
		{"literal_gives_itself", "visitor", []string{"visitor"}},
		{"trait_gives_every_value", "{{internal.logins}}", []string{"visitor", "ubuntu"}},
		{"affixes_wrap_every_value", "u-{{external.logins}}-x", []string{"u-visitor-x", "u-ubuntu-x"}},
		{"missing_trait_gives_nothing", "{{external.nosuch}}", nil},
		{"email_local_keeps_the_local_part", "{{email.local(external.email)}}", []string{"alice", "bob"}},
		{"email_local_one_unparsable_value_voids_the_whole_expression", "{{email.local(external.mixed)}}", nil},
		{"regexp_replace_drops_values_that_do_not_match", `{{regexp.replace(external.groups, "^team-(.*)$", "$1")}}`, []string{"db", "web"}},
		{"string_literal", `{{"x"}}`, []string{"x"}},
		{"string_literal_affixes", `a-{{"x"}}-b`, []string{"a-x-b"}},
		{"regexp_replace_of_a_literal", `{{regexp.replace("team-db", "^team-(.*)$", "$1")}}`, []string{"db"}},
		{"regexp_replace_of_a_literal_that_does_not_match", `{{regexp.replace("db", "^team-(.*)$", "$1")}}`, nil},
		{"email_local_of_a_literal", `{{email.local("Alice <alice@example.com>")}}`, []string{"alice"}},
		{"email_local_of_a_literal_that_does_not_parse", `{{email.local("alice")}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := ParseTemplate(tt.tpl)
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Expand(traits); !slices.Equal(got, tt.want) {
				t.Fatalf("Expand = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEmailLocal: net/mail's RFC 5322 parsing, as Teleport's email.local uses it.
func TestEmailLocal(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"alice@example.com", "alice", true},
		{"Alice <alice@example.com>", "alice", true},
		{`"Alice Smith" <alice.smith@example.com>`, "alice.smith", true},
		{"<alice@example.com>", "alice", true},
		{"*@example.com", "*", true},
		{"", "", false},
		{"alice", "", false},
		{"alice@", "", false},
		{"@example.com", "", false},
		{"a@b@c", "", false},
		{".alice@example.com", "", false},
		{"Alice <alice@example.com", "", false},
	} {
		got, ok := EmailLocal(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("EmailLocal(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
