# role_map (DESIGN §3a "role_map"): validation first, then every rule applied to every
# remote role. Maps are shaped as bundles.Shape ships them (fx.shape_role_map mirrors it;
# test_fixture_shapes_like_bundles_shape pins the shape down).
package tether.rolemap_test

import data.tether.fixtures_test as fx
import data.tether.rolemap

# map applies role_map rules to a certificate's remote roles.
map(rules, roles) := rolemap.map_roles(fx.shape_role_map(rules), rolemap.remote_roles(roles))

rule(remote, locals) := {"remote": remote, "local": locals}

# ---- the shape ----------------------------------------------------------------------------

# Literal remotes are object keys with locals pre-expanded (Regexp.Expand with group 0
# only); globs and ^regex$ remotes are full-match regexes with locals kept as templates.
test_fixture_shapes_like_bundles_shape if {
	fx.shape_role_map([
		rule("access", ["visitor", "$0-x", "$1", "$$"]),
		rule("cluster-*", ["$1"]),
		rule("^remote-(.*)$", ["local-$1"]),
		rule("a.b?[c]*", ["x"]),
	]) == {
		"exact": {"access": {"rule": 0, "local": ["visitor", "access-x", "", "$"]}},
		"patterns": [
			{"rule": 1, "regex": "^(?:cluster-(.*))$", "local": ["$1"]},
			{"rule": 2, "regex": "^(?:^remote-(.*)$)$", "local": ["local-$1"]},
			{"rule": 3, "regex": `^(?:a\.b\?\[c\](.*))$`, "local": ["x"]},
		],
	}
}

# ---- validation -----------------------------------------------------------------------------

test_seed_role_map_is_valid if {
	rolemap.errors([
		rule("access", ["visitor"]),
		rule("^remote-(.*)$", ["local-$1"]),
		rule("cluster-*", ["clusteradmin"]),
	]) == set()
}

test_empty_remote_is_rejected if {
	rolemap.errors([rule("access", ["visitor"]), rule("", ["visitor"])]) == {"role_map[1]: remote must not be empty"}
}

test_missing_remote_is_rejected if {
	rolemap.errors([{"local": ["visitor"]}]) == {"role_map[0]: remote must not be empty"}
}

test_empty_local_list_is_rejected if {
	rolemap.errors([rule("access", [])]) == {"role_map[0]: local must list at least one role"}
}

test_missing_local_list_is_rejected if {
	rolemap.errors([{"remote": "access"}]) == {"role_map[0]: local must list at least one role"}
}

test_empty_local_entry_is_rejected if {
	rolemap.errors([rule("access", ["visitor", ""])]) == {"role_map[0]: local[1] must not be empty"}
}

test_blank_remote_is_rejected if {
	rolemap.errors([rule("  ", ["visitor"])]) == {"role_map[0]: remote must not be empty"}
}

test_blank_local_entry_is_rejected if {
	rolemap.errors([rule("access", ["\t "])]) == {"role_map[0]: local[0] must not be empty"}
}

test_local_of_exactly_star_is_rejected if {
	rolemap.errors([rule("access", ["visitor", "*"])]) == {`role_map[0]: local[1] must not be "*": a wildcard would grant every local role`}
}

test_local_containing_a_star_is_not_a_wildcard if {
	rolemap.errors([rule("access", ["team-*"])]) == set()
}

test_same_remote_twice_is_rejected if {
	rolemap.errors([rule("access", ["a"]), rule("ops", ["b"]), rule("access", ["c"])]) == {`role_map[2]: remote "access" is already mapped by role_map[0]`}
}

test_remotes_differing_in_case_are_not_duplicates if {
	rolemap.errors([rule("access", ["a"]), rule("Access", ["b"])]) == set()
}

test_regex_remote_that_does_not_compile_is_rejected if {
	rolemap.errors([rule("^remote-(.*$", ["a"])]) == {`role_map[0]: remote "^remote-(.*$" is not a valid RE2 regular expression`}
}

test_regex_remote_must_be_re2 if {
	rolemap.errors([rule("^(?=x)y$", ["a"])]) == {`role_map[0]: remote "^(?=x)y$" is not a valid RE2 regular expression`}
}

# ^a)|(b$ is not a regex, but ^(?:^a)|(b$)$ is: it must compile as written too.
test_regex_remote_must_compile_as_written if {
	rolemap.errors([rule("^a)|(b$", ["x"])]) == {`role_map[0]: remote "^a)|(b$" is not a valid RE2 regular expression`}
}

test_glob_with_regex_syntax_is_literal_and_valid if {
	rolemap.errors([rule("remote-(*", ["a"]), rule("^remote-(*", ["b"])]) == set()
}

test_every_broken_rule_is_reported if {
	rolemap.errors([rule("", []), rule("a", ["*"]), rule("a", ["b"])]) == {
		"role_map[0]: remote must not be empty",
		"role_map[0]: local must list at least one role",
		`role_map[1]: local[0] must not be "*": a wildcard would grant every local role`,
		`role_map[2]: remote "a" is already mapped by role_map[1]`,
	}
}

test_remote_is_a_regex_only_between_caret_and_dollar if {
	rolemap.is_regex("^remote-(.*)$")
	not rolemap.is_regex("^remote-(.*)")
	not rolemap.is_regex("remote-(.*)$")
	not rolemap.is_regex("remote")
}

# ---- mapping ---------------------------------------------------------------------------------

test_exact_remote_maps_to_its_locals if {
	map([rule("access", ["visitor", "auditor"])], ["access"]) == ["visitor", "auditor"]
}

test_exact_remote_maps_only_that_role if {
	map([rule("access", ["visitor"])], ["access-2", "xaccess", "editor"]) == []
}

test_exact_remote_expansions_that_are_empty_are_dropped if {
	map([rule("access", ["$1", "visitor", "${name}"])], ["access"]) == ["visitor"]
}

test_exact_remote_dollar_zero_is_the_remote if {
	map([rule("access", ["$0-x", "${0}y"])], ["access"]) == ["access-x", "accessy"]
}

test_star_maps_every_role if {
	map([rule("*", ["guest"])], ["access", "editor"]) == ["guest"]
	map([rule("*", ["r-$1"])], ["access", "editor"]) == ["r-access", "r-editor"]
}

test_glob_star_captures_the_rest if {
	map([rule("cluster-*", ["$1"])], ["cluster-db", "cluster-web", "other"]) == ["db", "web"]
	map([rule("cluster-*", ["clusteradmin"])], ["cluster-db"]) == ["clusteradmin"]
}

test_glob_star_may_match_nothing if {
	map([rule("cluster-*", ["clusteradmin", "$1"])], ["cluster-"]) == ["clusteradmin"]
}

test_glob_stars_are_numbered_groups if {
	map([rule("*-team-*", ["$2-$1"])], ["db-team-eu"]) == ["eu-db"]
}

test_regex_dollar_number_expands_a_group if {
	map([rule("^remote-(.*)$", ["local-$1"])], ["remote-ops"]) == ["local-ops"]
}

test_regex_braced_number_expands_a_group if {
	map([rule("^remote-(.*)$", ["${1}x"])], ["remote-ops"]) == ["opsx"]
}

test_regex_named_group_expands if {
	map([rule("^remote-(?P<team>[a-z]+)$", ["${team}-admin"])], ["remote-ops"]) == ["ops-admin"]
}

test_regex_double_dollar_is_a_dollar if {
	map([rule("^remote-(.*)$", ["$$1-$1"])], ["remote-ops"]) == ["$1-ops"]
}

# Go's Regexp.Expand reads $1x as the group named "1x", which does not exist.
test_dollar_1x_is_the_group_named_1x_and_empty if {
	map([rule("^remote-(.*)$", ["$1x", "a$1x", "${1}x"])], ["remote-ops"]) == ["a", "opsx"]
}

test_matching_is_case_sensitive if {
	map([rule("Cluster-*", ["c"]), rule("Access", ["a"]), rule("^Remote-.*$", ["r"])], ["cluster-1", "access", "remote-x"]) == []
}

test_question_mark_in_a_glob_is_literal if {
	map([rule("dev?-*", ["d"])], ["devx-1"]) == []
	map([rule("dev?-*", ["d"])], ["dev?-1"]) == ["d"]
}

test_dot_in_a_glob_is_literal if {
	map([rule("a.b-*", ["d"])], ["axb-1"]) == []
	map([rule("a.b-*", ["d"])], ["a.b-1"]) == ["d"]
}

test_bracket_in_a_glob_is_literal if {
	map([rule("[ab]-*", ["d"])], ["a-1"]) == []
	map([rule("[ab]-*", ["d"])], ["[ab]-1"]) == ["d"]
}

test_every_rule_applies_to_every_role if {
	rules := [rule("access", ["a"]), rule("*", ["b"]), rule("^acc.*$", ["c"])]
	map(rules, ["access"]) == ["a", "b", "c"]
}

test_output_is_ordered_rule_then_remote_role_then_local if {
	rules := [rule("*", ["all-$1"]), rule("dev", ["d1", "d2"])]
	map(rules, ["ops", "dev"]) == ["all-ops", "all-dev", "d1", "d2"]
}

test_duplicates_keep_their_first_occurrence if {
	rules := [rule("b", ["x", "y"]), rule("a", ["y", "x", "z"]), rule("*", ["z", "x"])]
	map(rules, ["a", "b"]) == ["x", "y", "z"]
}

test_default_implicit_role_is_never_mapped if {
	map([rule("*", ["guest"])], ["default-implicit-role"]) == []
	map([rule("default-implicit-role", ["guest"])], ["default-implicit-role"]) == []
	map([rule("*", ["g-$1"])], ["default-implicit-role", "access"]) == ["g-access"]
}

test_no_roles_map_as_the_empty_role if {
	rolemap.remote_roles([]) == [""]
	rolemap.remote_roles(["access"]) == ["access"]
	map([rule("*", ["guest"])], []) == ["guest"]
	map([rule("access", ["visitor"])], []) == []
}

# Tether: Teleport would rewrite part of devops-team with ^dev|ops$; Tether evaluates every
# regex as ^(?:...)$, so it must match the whole remote role.
test_regex_remote_must_match_whole_role if {
	rules := [rule("^dev|ops$", ["x"])]
	map(rules, ["devops-team"]) == []
	map(rules, ["dev-team"]) == []
	map(rules, ["dev"]) == ["x"]
	map(rules, ["ops"]) == ["x"]
}

test_regex_remote_does_not_match_inside_a_role if {
	map([rule("^remote-(.*)$", ["local-$1"])], ["xremote-a"]) == []
}

test_no_rules_map_nothing if {
	map([], ["access"]) == []
}

# ---- the one regex of all patterns (role_map.any_pattern) ---------------------------------

any_pattern_rules := [
	rule("access", ["visitor"]),
	rule("cluster-*", ["$1"]),
	rule("^remote-(.*)$", ["local-$1"]),
	rule("^(?i)ops-[0-9]+$", ["ops"]),
	rule("a.b?[c]*", ["x"]),
]

# It matches a role exactly when some pattern does (each keeps its own flags), so the
# roles it rules out would have been mapped by no pattern.
test_any_pattern_matches_when_some_pattern_does if {
	shaped := fx.shape_role_map(any_pattern_rules)
	re := rolemap.any_pattern_of(shaped.patterns)
	every role in ["access", "cluster-", "cluster-a", "remote-x", "OPS-7", "ops-7", "Ops-x", "a.b?[c]zz", "xcluster-a", "remote", "", "ab?[c]", "OPS-7\n"] {
		{true | regex.match(re, role)} == {true | some p in shaped.patterns; regex.match(p.regex, role)}
	}
}

test_any_pattern_of_no_patterns_matches_nothing if {
	re := rolemap.any_pattern_of([])
	every role in ["", "a", "access", "\n"] {
		not regex.match(re, role)
	}
}

# A hand-written role_map whose pattern is not a valid regex: the shortcut steps aside, so
# every pattern is tried and the invalid one fails as it would without it.
test_any_pattern_with_an_invalid_pattern_matches_everything if {
	rolemap.any_pattern_of([{"rule": 0, "regex": "^(?:a)$", "local": ["x"]}, {"rule": 1, "regex": "(", "local": ["y"]}]) == `(?s:.*)`
	rolemap.any_pattern_of([{"rule": 0, "local": ["y"]}]) == `(?s:.*)`
}

# A stored any_pattern (what bundles.Shape ships) maps the same as one computed here.
test_stored_any_pattern_maps_the_same if {
	shaped := fx.shape_role_map(any_pattern_rules)
	stored := object.union(shaped, {"any_pattern": rolemap.any_pattern_of(shaped.patterns)})
	every roles in [["access"], ["cluster-a", "remote-b"], ["OPS-7", "nope"], [""], ["a.b?[c]x", "access"]] {
		rolemap.map_roles(stored, roles) == rolemap.map_roles(shaped, roles)
	}
	rolemap.map_roles(shaped, ["cluster-a", "remote-b", "OPS-7"]) == ["a", "local-b", "ops"]
}
