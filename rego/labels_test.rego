# Label selectors (DESIGN §3a "Labels"): an empty selector matches nothing, {'*': '*'}
# matches everything, otherwise every key must exist and its value match one listed value:
# '*', a glob, a ^regex$ (full match) or an exact string. Values may be templates.
package tether.labels_test

import data.tether.fixtures_test as fx
import data.tether.labels

traits := {"envs": ["stage", "qa"], "team": ["db"], "bad": ["("], "globs": ["*", "^.*$", "a|b"]}

# selects reports whether a shaped selector, compiled with traits, selects a resource.
selects(s, lbls) if labels.matches(labels.compile(s, traits), lbls)

# deny_selects is selects for a deny selector.
deny_selects(s, lbls) if labels.matches_deny(labels.compile(s, traits), lbls)

test_empty_selector_matches_nothing if {
	not selects(fx.nothing, {"env": "prod"})
	not selects(fx.nothing, {})
	not selects({}, {"env": "prod"})
	not deny_selects(fx.nothing, {"env": "prod"})
}

test_wildcard_matches_everything if {
	selects(fx.wildcard, {"env": "prod"})
	selects(fx.wildcard, {})
	deny_selects(fx.wildcard, {})
}

test_every_key_must_exist_on_the_resource if {
	s := fx.sel({"env": ["*"], "team": ["*"]})
	selects(s, {"env": "prod", "team": "db"})
	not selects(s, {"env": "prod"})
}

test_every_key_must_match if {
	s := fx.sel({"env": ["prod"], "team": ["db"]})
	selects(s, {"env": "prod", "team": "db", "region": "eu"})
	not selects(s, {"env": "prod", "team": "web"})
}

test_exact_value_matches_only_itself if {
	s := fx.sel({"env": ["prod"]})
	selects(s, {"env": "prod"})
	not selects(s, {"env": "prod-1"})
	not selects(s, {"env": "Prod"})
}

test_star_value_matches_any_value_of_a_present_key if {
	s := fx.sel({"env": ["*"]})
	selects(s, {"env": "anything"})
	selects(s, {"env": ""})
	not selects(s, {"region": "eu"})
}

test_any_listed_value_may_match if {
	s := fx.sel({"env": ["dev", "stage-*", "^qa-[0-9]+$"]})
	selects(s, {"env": "dev"})
	selects(s, {"env": "stage-2"})
	selects(s, {"env": "qa-17"})
	not selects(s, {"env": "qa-x"})
	not selects(s, {"env": "prod"})
}

test_glob_matches_the_whole_value if {
	s := fx.sel({"env": ["stage-*"]})
	selects(s, {"env": "stage-1"})
	selects(s, {"env": "stage-"})
	not selects(s, {"env": "prestage-1"})
	not selects(s, {"env": "stage"})
}

test_glob_star_may_be_anywhere if {
	s := fx.sel({"host": ["db-*.example.com"]})
	selects(s, {"host": "db-1.example.com"})
	not selects(s, {"host": "db-1.example.org"})
}

test_regex_value_must_match_the_whole_value if {
	s := fx.sel({"env": ["^prod$"]})
	selects(s, {"env": "prod"})
	not selects(s, {"env": "prod-1"})
	not selects(s, {"env": "preprod"})
}

test_regex_alternation_must_match_the_whole_value if {
	s := fx.sel({"env": ["^dev|ops$"]})
	selects(s, {"env": "dev"})
	selects(s, {"env": "ops"})
	not selects(s, {"env": "devops"})
	not selects(s, {"env": "dev-1"})
}

test_regex_meta_characters_in_globs_are_literal if {
	s := fx.sel({"name": ["a.b*"]})
	selects(s, {"name": "a.b1"})
	not selects(s, {"name": "axb1"})
	t := fx.sel({"name": ["a+(b)?[c]|d*"]})
	selects(t, {"name": "a+(b)?[c]|d-1"})
	not selects(t, {"name": "aab"})
}

test_value_with_caret_but_no_dollar_is_not_a_regex if {
	s := fx.sel({"env": ["^prod"]})
	selects(s, {"env": "^prod"})
	not selects(s, {"env": "prod"})
}

test_templates_in_values_expand_with_the_traits if {
	s := fx.tsel({"env": [fx.internal("envs")]})
	selects(s, {"env": "stage"})
	selects(s, {"env": "qa"})
	not selects(s, {"env": "prod"})
}

# Tether: the text a template gives is literal, the author's prefix and suffix included.
test_template_values_are_literal_text_even_with_a_glob_suffix if {
	s := fx.tsel({"team": [object.union(fx.internal("team"), {"suffix": "-*"})]})
	selects(s, {"team": "db-*"})
	not selects(s, {"team": "db-primary"})
}

# ---- Tether: trait values are literals (issue 7, point 9) -----------------------------------
#
# An identity provider that asserts "*" or "^.*$" for a trait used in a selector gets a
# selector for exactly that text, not every resource. The attacker's tests first.

attacker_traits(v) := {"env": [v]}

test_trait_star_is_not_a_wildcard if {
	s := fx.tsel({"env": [fx.external("env")]})
	m := labels.compile(s, attacker_traits("*"))
	not labels.matches(m, {"env": "prod"})
	not labels.matches_keys(labels.key_regexes(m), {"env": "prod"})
	labels.matches(m, {"env": "*"})
	m.keys.env == {"any": false, "exact": {"*": true}, "regex": "", "invalid": false}
}

test_trait_regex_is_not_a_regex if {
	s := fx.tsel({"env": [fx.external("env")]})
	m := labels.compile(s, attacker_traits("^.*$"))
	not labels.matches(m, {"env": "prod"})
	not labels.matches_keys(labels.key_regexes(m), {"env": "prod"})
	labels.matches(m, {"env": "^.*$"})
	m.keys.env.regex == ""
}

test_trait_glob_is_not_a_glob if {
	s := fx.tsel({"env": [fx.external("env")]})
	m := labels.compile(s, attacker_traits("pro*"))
	not labels.matches(m, {"env": "prod"})
	labels.matches(m, {"env": "pro*"})
}

test_trait_values_are_literal_in_deny_selectors_too if {
	s := fx.tsel({"env": [fx.external("env")]})
	m := labels.compile(s, attacker_traits("*"))
	not labels.matches_deny(m, {"env": "prod"})
	not labels.matches_keys(labels.deny_key_regexes(m), {"env": "prod"})
}

test_author_literal_values_keep_pattern_semantics_beside_trait_values if {
	s := fx.tsel({"env": [fx.external("env"), fx.lit("stage-*"), fx.lit("^qa-[0-9]$")]})
	m := labels.compile(s, attacker_traits("*"))
	labels.matches(m, {"env": "stage-1"})
	labels.matches(m, {"env": "qa-7"})
	labels.matches(m, {"env": "*"})
	not labels.matches(m, {"env": "prod"})
}

test_trait_star_in_node_labels_reaches_no_prod_node if {
	w := fx.with_roles(fx.leaf_world, {"by-env": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.tsel({"env": [fx.external("env")]})})})
	every v in ["*", "^.*$", "^(?s:.*)$", "p*", ".*"] {
		cert := fx.put(fx.put(fx.alice(["access"]), "roles", ["by-env"]), "traits", {"env": [v]})
		cert2 := object.union(cert, {"signing_ca": {"cluster": fx.leaf, "fingerprint": "SHA256:leaf-user"}})
		inp := fx.ssh(cert2, "visitor", fx.prod_node)
		d := fx.decision(w, inp)
		not d.allow
		d == fx.decide_full(w, inp)
		d == fx.staged(w, inp)
		fx.fast(w, inp) == d.reasons
	}
}

test_trait_value_reaches_the_node_with_exactly_that_label if {
	w := fx.with_roles(fx.leaf_world, {"by-env": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.tsel({"env": [fx.external("env")]})})})
	cert := object.union(fx.put(fx.put(fx.alice(["by-env"]), "roles", ["by-env"]), "traits", {"env": ["prod"]}), {"signing_ca": {"cluster": fx.leaf, "fingerprint": "SHA256:leaf-user"}})
	inp := fx.ssh(cert, "visitor", fx.prod_node)
	fx.decision(w, inp).allow
	fx.decision(w, inp) == fx.decide_full(w, inp)
	fx.fast(w, inp) == true
	fx.fast_agrees(w, inp)
}

test_missing_trait_matches_nothing if {
	s := fx.tsel({"env": [fx.internal("missing")]})
	not selects(s, {"env": "prod"})
	not selects(s, {"env": ""})
	not deny_selects(s, {"env": "prod"})
	not deny_selects(s, {"env": ""})
}

test_missing_trait_leaves_other_values_of_the_key if {
	s := fx.tsel({"env": [fx.internal("missing"), fx.lit("prod")]})
	selects(s, {"env": "prod"})
}

# A literal deny value whose pattern is not a valid regex (role validation refuses one; a
# bundle built by other means may hold one) counts as a match: a broken deny fails closed.
literal_bad_regex := fx.lit("^($")

test_matches_deny_fails_closed_on_an_invalid_regex if {
	s := fx.tsel({"env": [literal_bad_regex]})
	deny_selects(s, {"env": "prod"})
	not selects(s, {"env": "prod"})
}

test_matches_deny_with_an_invalid_regex_still_needs_the_key if {
	s := fx.tsel({"env": [literal_bad_regex]})
	not deny_selects(s, {"region": "eu"})
}

test_matches_deny_with_an_invalid_regex_still_needs_the_other_keys_to_match if {
	s := fx.tsel({
		"env": [literal_bad_regex],
		"team": [fx.lit("db")],
	})
	deny_selects(s, {"env": "prod", "team": "db"})
	not deny_selects(s, {"env": "prod", "team": "web"})
}

# A template that looks like a broken regex once expanded ("^{{internal.bad}}$" with bad
# "(" gives "^($") is literal text, neither a broken pattern nor a match for other values.
test_expanded_template_that_looks_like_a_broken_regex_is_literal if {
	s := fx.tsel({"env": [object.union(fx.internal("bad"), {"prefix": "^", "suffix": "$"})]})
	not deny_selects(s, {"env": "prod"})
	not selects(s, {"env": "prod"})
	selects(s, {"env": "^($"})
	deny_selects(s, {"env": "^($"})
}

test_matches_deny_is_matches_for_valid_values if {
	s := fx.sel({"env": ["prod", "^stage-[0-9]$"]})
	deny_selects(s, {"env": "prod"})
	deny_selects(s, {"env": "stage-1"})
	not deny_selects(s, {"env": "dev"})
}

test_compile_expands_values_into_a_lookup_and_one_full_match_regex if {
	m := labels.compile(fx.sel({"env": ["stage", "stage-*", "^qa$"]}), traits)
	m == {"wildcard": false, "keys": {"env": {
		"any": false,
		"exact": {"stage": true},
		"regex": "^(?:(?:^qa$)|(?:stage-.*))$",
		"invalid": false,
	}}}
}

test_compile_without_patterns_has_no_regex if {
	m := labels.compile(fx.sel({"env": ["*", "prod"]}), traits)
	m.keys.env == {"any": true, "exact": {"prod": true}, "regex": "", "invalid": false}
}

test_compile_of_wildcard_is_wildcard if {
	labels.compile(fx.wildcard, traits) == {"wildcard": true, "keys": {}}
}

test_selects_is_false_for_an_empty_selector if {
	labels.selects(fx.nothing) == false
	labels.selects({}) == false
}

test_selects_is_true_for_wildcard_and_for_keys if {
	labels.selects(fx.wildcard)
	labels.selects(fx.sel({"env": ["demo"]}))
}

test_selects_compiled_is_true_when_a_compiled_matcher_can_select if {
	labels.selects_compiled(labels.compile(fx.wildcard, traits))
	labels.selects_compiled(labels.compile(fx.sel({"env": ["prod"]}), traits))
	not labels.selects_compiled(labels.compile(fx.nothing, traits))
}

# ---- the per-request form: one full-match regex per key --------------------------------

bad_regex := object.union(fx.internal("bad"), {"prefix": "^", "suffix": "$"})

table_selectors := [
	fx.nothing,
	fx.wildcard,
	fx.sel({"env": ["*"]}),
	fx.sel({"env": ["*", "prod"]}),
	fx.sel({"env": ["prod"]}),
	fx.sel({"env": ["dev", "stage-*", "^qa-[0-9]+$"]}),
	fx.sel({"env": ["prod"], "team": ["db"]}),
	fx.sel({"env": ["^dev|ops$"]}),
	fx.sel({"name": ["a.b*"]}),
	fx.sel({"env": ["a|b", "(x)"]}),
	fx.tsel({"env": [fx.internal("envs")]}),
	fx.tsel({"env": [fx.internal("missing")]}),
	fx.tsel({"env": [bad_regex]}),
	fx.tsel({"env": [bad_regex], "team": [fx.lit("db")]}),
	fx.tsel({"env": [literal_bad_regex]}),
	fx.tsel({"env": [literal_bad_regex], "team": [fx.lit("db")]}),
	fx.tsel({"env": [fx.internal("globs")]}),
	fx.tsel({"env": [fx.internal("globs"), fx.lit("stage-*")]}),
]

table_labels := [
	{},
	{"env": ""},
	{"env": "prod"},
	{"env": "prod-1"},
	{"env": "stage-2"},
	{"env": "qa-17"},
	{"env": "dev"},
	{"env": "devops"},
	{"env": "qa"},
	{"env": "prod", "team": "db"},
	{"env": "prod", "team": "web"},
	{"name": "a.b1"},
	{"name": "axb1"},
	{"env": "a|b"},
	{"env": "a"},
	{"env": "(x)"},
	{"env": "stage-\nline"},
	{"env": "*"},
	{"env": "^.*$"},
	{"env": "^($"},
]

# Each form as a boolean, so the two can be compared.
slow_matches(m, lbls) if labels.matches(m, lbls)

else := false

fast_matches(m, lbls) if labels.matches_keys(labels.key_regexes(m), lbls)

else := false

slow_matches_deny(m, lbls) if labels.matches_deny(m, lbls)

else := false

fast_matches_deny(m, lbls) if labels.matches_keys(labels.deny_key_regexes(m), lbls)

else := false

test_key_regexes_select_what_matches_selects if {
	every s in table_selectors {
		m := labels.compile(s, traits)
		every lbls in table_labels {
			slow_matches(m, lbls) == fast_matches(m, lbls)
		}
	}
}

test_the_label_table_holds_matches_and_misses if {
	results := {slow_matches(labels.compile(s, traits), lbls) | some s in table_selectors; some lbls in table_labels}
	results == {true, false}
}

test_deny_key_regexes_select_what_matches_deny_selects if {
	every s in table_selectors {
		m := labels.compile(s, traits)
		every lbls in table_labels {
			slow_matches_deny(m, lbls) == fast_matches_deny(m, lbls)
		}
	}
}

test_key_regexes_of_a_selector_that_matches_nothing_are_undefined if {
	not labels.key_regexes(labels.compile(fx.nothing, traits))
	not labels.key_regexes(labels.compile(fx.tsel({"env": [fx.internal("missing")]}), traits))
	not labels.deny_key_regexes(labels.compile(fx.nothing, traits))
}

test_key_regexes_of_wildcard_check_no_key if {
	labels.key_regexes(labels.compile(fx.wildcard, traits)) == {}
	labels.deny_key_regexes(labels.compile(fx.wildcard, traits)) == {}
}
