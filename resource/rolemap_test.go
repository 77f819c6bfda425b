package resource

import (
	"errors"
	"regexp"
	"strconv"
	"testing"
)

func TestValidateRoleMap(t *testing.T) {
	t.Parallel()
	rm := func(pairs ...any) []RoleMapping {
		var out []RoleMapping
		for i := 0; i < len(pairs); i += 2 {
			var local []string
			if pairs[i+1] != nil {
				local = pairs[i+1].([]string)
			}
			out = append(out, RoleMapping{Remote: pairs[i].(string), Local: local})
		}
		return out
	}
	l := func(s ...string) []string { return s }
	tests := []struct {
		name  string
		rules []RoleMapping
		index int
		code  string
		msg   string
	}{
		{name: "nil_map_is_valid", rules: nil, index: -1},
		{name: "design_example_is_valid", rules: rm("access", l("visitor"), "^remote-(.*)$", l("local-$1"), "cluster-*", l("clusteradmin")), index: -1},
		{name: "same_local_twice_is_valid", rules: rm("a", l("x", "x"), "b", l("x")), index: -1},
		{name: "empty_remote", rules: rm("a", l("x"), "b", l("y"), "", l("z")), index: 2, code: RoleMapEmptyRemote,
			msg: "remote must not be empty"},
		{name: "whitespace_remote_is_empty", rules: rm(" \t", l("z")), index: 0, code: RoleMapEmptyRemote,
			msg: "remote must not be empty"},
		{name: "empty_local_list", rules: rm("a", nil), index: 0, code: RoleMapEmptyLocal,
			msg: "local must list at least one role"},
		{name: "empty_local_entry", rules: rm("a", l("x"), "b", l("y", "")), index: 1, code: RoleMapEmptyLocal,
			msg: "local[1] must not be empty"},
		{name: "whitespace_local_entry", rules: rm("a", l(" ")), index: 0, code: RoleMapEmptyLocal,
			msg: "local[0] must not be empty"},
		{name: "wildcard_local", rules: rm("a", l("x", "*")), index: 0, code: RoleMapWildcardLocal,
			msg: `local[1] must not be "*": name the local roles to grant`},
		{name: "wildcard_local_in_glob", rules: rm("*", l("*")), index: 0, code: RoleMapWildcardLocal,
			msg: `local[0] must not be "*": name the local roles to grant`},
		{name: "local_glob_is_not_wildcard", rules: rm("a", l("x-*")), index: -1},
		{name: "empty_local_checked_before_wildcard", rules: rm("a", l("*", "")), index: 0, code: RoleMapEmptyLocal,
			msg: "local[1] must not be empty"},
		{name: "duplicate_remote", rules: rm("access", l("x"), "other", l("y"), "access", l("z")), index: 2, code: RoleMapDuplicateRemote,
			msg: `remote "access" is already mapped by role_map[0]: merge the two rules`},
		{name: "duplicate_is_byte_for_byte", rules: rm("access", l("x"), "Access", l("y"), "access ", l("z")), index: -1},
		{name: "duplicate_checked_before_regex", rules: rm("^(a$", l("x"), "^(a$", l("y")), index: 0, code: RoleMapInvalidRemote,
			msg: `remote "^(a$" is not a valid regular expression: missing closing )`},
		{name: "invalid_regex", rules: rm("a", l("x"), "^remote-(.*$", l("y")), index: 1, code: RoleMapInvalidRemote,
			msg: `remote "^remote-(.*$" is not a valid regular expression: missing closing )`},
		{name: "invalid_regex_perl_syntax", rules: rm("^(?<=a)b$", l("x")), index: 0, code: RoleMapInvalidRemote,
			msg: `remote "^(?<=a)b$" is not a valid regular expression: invalid named capture in "(?<=a)b$"`},
		{name: "regex_that_only_compiles_wrapped", rules: rm("^a)|(b$", l("x")), index: 0, code: RoleMapInvalidRemote,
			msg: `remote "^a)|(b$" is not a valid regular expression: unexpected )`},
		{name: "unbalanced_paren_is_literal_without_anchors", rules: rm("(a", l("x"), "^(a", l("y"), "(a$", l("z")), index: -1},
		{name: "first_failing_rule_wins", rules: rm("a", l("*"), "", l("x")), index: 0, code: RoleMapWildcardLocal,
			msg: `local[0] must not be "*": name the local roles to grant`},
		{name: "invalid_utf8_remote", rules: rm("a\xff", l("x")), index: 0, code: RoleMapInvalidRemote,
			msg: "remote is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateRoleMap(tt.rules)
			if tt.index < 0 {
				if err != nil {
					t.Fatalf("ValidateRoleMap: %v", err)
				}
				return
			}
			var rme *RoleMapError
			if !errors.As(err, &rme) {
				t.Fatalf("ValidateRoleMap = %v, want *RoleMapError", err)
			}
			if rme.Index != tt.index || rme.Code != tt.code || rme.Msg != tt.msg {
				t.Errorf("got  {%d %s %q}\nwant {%d %s %q}", rme.Index, rme.Code, rme.Msg, tt.index, tt.code, tt.msg)
			}
			if want := tt.rules[tt.index].String(); rme.Rule != want {
				t.Errorf("Rule = %s, want %s", rme.Rule, want)
			}
			if want := "role_map[" + strconv.Itoa(tt.index) + "]: " + tt.msg + " (rule " + rme.Rule + ")"; err.Error() != want {
				t.Errorf("Error() = %s\nwant      %s", err, want)
			}
		})
	}
}

func TestRoleMappingString(t *testing.T) {
	t.Parallel()
	r := RoleMapping{Remote: `a"b`, Local: []string{"x", "$1"}}
	if got, want := r.String(), `{remote: "a\"b", local: ["x", "$1"]}`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestCompileRoleMapRemote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		remote   string
		regex    string
		literal  bool
		match    []string
		notMatch []string
	}{
		{"exact", "access", `^access$`, true, []string{"access"}, []string{"access2", "xaccess", "Access", ""}},
		{"star_matches_everything", "*", `^(?:(.*))$`, false, []string{"", "access", "a b"}, nil},
		{"glob_suffix", "cluster-*", `^(?:cluster-(.*))$`, false, []string{"cluster-", "cluster-admin"}, []string{"Cluster-admin", "xcluster-a", "cluster"}},
		{"glob_two_stars", "a*b*", `^(?:a(.*)b(.*))$`, false, []string{"ab", "axxbyy", "abb"}, []string{"ba", "xab"}},
		{"question_mark_is_literal", "dev?", `^dev\?$`, true, []string{"dev?"}, []string{"dev", "devs"}},
		{"question_mark_in_glob", "dev?-*", `^(?:dev\?-(.*))$`, false, []string{"dev?-x"}, []string{"devs-x"}},
		{"dot_is_literal", "a.b", `^a\.b$`, true, []string{"a.b"}, []string{"axb"}},
		{"dot_in_glob", "a.*", `^(?:a\.(.*))$`, false, []string{"a.", "a.x"}, []string{"ax"}},
		{"bracket_is_literal", "[ab]", `^\[ab\]$`, true, []string{"[ab]"}, []string{"a", "b"}},
		{"bracket_in_glob", "x[*", `^(?:x\[(.*))$`, false, []string{"x[", "x[y"}, []string{"x"}},
		{"caret_without_dollar_is_literal", "^dev", `^\^dev$`, true, []string{"^dev"}, []string{"dev"}},
		{"dollar_without_caret_is_literal", "dev$", `^dev\$$`, true, []string{"dev$"}, []string{"dev"}},
		{"regex", "^remote-(.*)$", `^(?:^remote-(.*)$)$`, false, []string{"remote-a", "remote-"}, []string{"xremote-a", "Remote-a"}},
		{"regex_alternation_matches_whole_name", "^dev|ops$", `^(?:^dev|ops$)$`, false, []string{"dev", "ops"}, []string{"devops-team", "devops", "dev-x", "x-ops"}},
		{"regex_star_is_regex", "^a*$", `^(?:^a*$)$`, false, []string{"", "aaa"}, []string{"b"}},
		{"empty_regex", "^$", `^(?:^$)$`, false, []string{""}, []string{"a"}},
		{"unicode", "équipe-*", `^(?:équipe-(.*))$`, false, []string{"équipe-1"}, []string{"equipe-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			regex, literal, err := CompileRoleMapRemote(tt.remote)
			if err != nil {
				t.Fatal(err)
			}
			if regex != tt.regex || literal != tt.literal {
				t.Errorf("CompileRoleMapRemote(%q) = %q, %v; want %q, %v", tt.remote, regex, literal, tt.regex, tt.literal)
			}
			re := regexp.MustCompile(regex)
			for _, s := range tt.match {
				if !re.MatchString(s) {
					t.Errorf("%s does not match %q", regex, s)
				}
			}
			for _, s := range tt.notMatch {
				if re.MatchString(s) {
					t.Errorf("%s matches %q", regex, s)
				}
			}
		})
	}
	for _, bad := range []string{"^(a$", "^a)|(b$", "^a{1001}$", "\xff"} {
		if _, _, err := CompileRoleMapRemote(bad); err == nil {
			t.Errorf("CompileRoleMapRemote(%q) succeeded", bad)
		}
	}
}

func TestRoleMapGlobCaptures(t *testing.T) {
	t.Parallel()
	regex, _, _ := CompileRoleMapRemote("cluster-*-*")
	re := regexp.MustCompile(regex)
	m := re.FindStringSubmatchIndex("cluster-eu-admin")
	if got := string(re.ExpandString(nil, "$1/$2", "cluster-eu-admin", m)); got != "eu/admin" {
		t.Errorf("expand = %q, want eu/admin", got)
	}
}

func TestExpandLiteralLocal(t *testing.T) {
	t.Parallel()
	tests := []struct{ remote, local, want string }{
		{"access", "visitor", "visitor"},
		{"access", "$0", "access"},
		{"access", "${0}", "access"},
		{"access", "x-$0-y", "x-access-y"},
		{"access", "$1", ""},
		{"access", "${1}", ""},
		{"access", "$1x", ""},
		{"access", "${1}x", "x"},
		{"access", "$00", ""},
		{"access", "$name", ""},
		{"access", "$$", "$"},
		{"access", "$$1", "$1"},
		{"access", "a$", "a$"},
		{"access", "$-", "$-"},
		{"access", "${", "${"},
		{"access", "${0", "${0"},
		{"access", "${}", "${}"},
		{"access", "$é", ""},
		{"", "$0x", ""},
		{"", "r-${0}", "r-"},
		{"a$1", "$0", "a$1"},
	}
	for _, tt := range tests {
		if got := ExpandLiteralLocal(tt.remote, tt.local); got != tt.want {
			t.Errorf("ExpandLiteralLocal(%q, %q) = %q, want %q", tt.remote, tt.local, got, tt.want)
		}
		if ref := expandWithRegexp(tt.remote, tt.local); ref != tt.want {
			t.Errorf("regexp reference for (%q, %q) = %q, test table says %q", tt.remote, tt.local, ref, tt.want)
		}
	}
}

// expandWithRegexp is ExpandLiteralLocal's definition.
func expandWithRegexp(remote, local string) string {
	return regexp.MustCompile("^"+regexp.QuoteMeta(remote)+"$").ReplaceAllString(remote, local)
}

func TestGlobMatchReference(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"a*b", "ab", true}, {"a*b", "axxb", true},
		{"a*b", "axxbx", false}, {"*a*", "bab", true}, {"a**", "a", true}, {"a*b*c", "abbc", true}, {"a*b*c", "acb", false},
		{"*", "\n", false}, {"a*", "ab\nc", false}, {"a*\n", "ab\n", true},
	} {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}
