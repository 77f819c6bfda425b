# Label selectors: node_labels and cluster_labels.
#
# A shaped selector is {"wildcard": bool, "keys": {KEY: {"values": [template...]}}}.
# An empty selector matches nothing; {'*': '*'} matches everything; otherwise every key
# must exist on the resource and its value must match one of the key's values: '*'
# (anything), a glob such as 'stage-*', a full-match '^regex$', or an exact string.
# METADATA
# title: Label selectors
# description: >-
#   node_labels and cluster_labels selectors - expansion with traits, matching, and per-key regexes for lookups.
package tether.labels

import data.tether.templates

# compile expands a selector's templates with the traits into a matcher:
# {"wildcard": bool, "keys": {KEY: {"any": bool, "exact": {v: true}, "regex": "..."}}}.
# A missing trait expands to nothing, so that key matches no value.
#
# Tether: only values the role's author wrote ({"lit": ...}) are patterns ('*', globs,
# ^regex$). A value that comes out of a template is a trait value, asserted by an identity
# provider, and is matched as literal text: it lands in "exact", never in "any" or "regex",
# so a trait "*" or "^.*$" selects only a label whose value is exactly that text.
compile(sel, traits) := compile_static(static(sel), traits)

# static is the part of compile that depends only on what the role's author wrote: the
# matchers of the keys without templates ("fixed") with their per-key regexes for the
# lookup path (key_regex for allow, deny_key_regex for deny), and the literal parts of the
# keys with templates ("templated"), left for the certificate's traits. bundles.Shape
# evaluates it once per role selector at build time (identity.role_derived); a
# certificate then only expands the templates of the keys that have them.
static(sel) := {"wildcard": true, "fixed": {}, "templated": {}, "fixed_res": {}, "fixed_deny_res": {}} if sel.wildcard

static(sel) := {
	"wildcard": false,
	"fixed": fixed,
	"templated": {k: lm | some k, lm in lms; count(lm.templates) > 0},
	"fixed_res": {k: re | some k, vm in fixed; re := key_regex(vm)},
	"fixed_deny_res": {k: re | some k, vm in fixed; re := deny_key_regex(vm)},
} if {
	not sel.wildcard
	lms := {k: key_literals(s) | some k, s in object.get(sel, "keys", {})}
	fixed := {k: matcher(lm, {}) | some k, lm in lms; count(lm.templates) == 0}
}

# compile_static completes a static selector with the traits: compile.
# (Each function on the identity's path is one else chain: OPA evaluates every body of a
# function, an else chain stops at the first that holds.)
compile_static(st, traits) := {"wildcard": true, "keys": {}} if {
	st.wildcard
} else := {"wildcard": false, "keys": st.fixed} if {
	count(st.templated) == 0
} else := {"wildcard": false, "keys": object.union(st.fixed, {k: matcher(lm, traits) | some k, lm in st.templated})} if {
	count(st.templated) > 0
}

# static_key_regexes is key_regexes(m) for m = compile_static(st, traits), reusing the
# fixed keys' regexes: {} for the wildcard, undefined when the selector can match nothing.
static_key_regexes(st, m) := {} if {
	st.wildcard
} else := res if {
	count(m.keys) > 0
	res := object.union(st.fixed_res, {k: re | some k, _ in st.templated; re := key_regex(m.keys[k])})
	count(res) == count(m.keys)
}

# static_deny_key_regexes is deny_key_regexes(m) for m = compile_static(st, traits).
static_deny_key_regexes(st, m) := {} if {
	st.wildcard
} else := res if {
	count(m.keys) > 0
	res := object.union(st.fixed_deny_res, {k: re | some k, _ in st.templated; re := deny_key_regex(m.keys[k])})
	count(res) == count(m.keys)
}

value_matcher(ts, traits) := matcher(literal_matcher(ts), traits)

# matcher completes a key's literal part with the trait values its templates give.
matcher(lm, traits) := {
	"any": lm.any,
	"exact": {v: true | some v in ({x | some x in lm.exact} | templates.expand_all(lm.templates, traits))},
	"regex": lm.regex,
	"invalid": lm.invalid,
}

# literal_matcher is the part of a key's matcher that depends only on what the role's
# author wrote, not on the certificate: '*', the exact literals (sorted), the patterns
# joined into one regex, whether one is not a valid regex, and the templates left to
# expand. bundles.Shape evaluates it once per selector key at build time and stores it as
# "literal" beside "values" (the engine refuses a bundle where the two disagree,
# identity.derived_stale); key_literals computes it when a bundle does not carry it.
literal_matcher(ts) := {
	"any": "*" in lits,
	"exact": sort([v | some v in lits; not is_pattern(v)]),
	"regex": join_patterns({p | some v in lits; is_pattern(v); v != "*"; p := pattern(v); regex.is_valid(p)}),
	"invalid": count({v | some v in lits; is_pattern(v); not regex.is_valid(pattern(v))}) > 0,
	"templates": [t | some t in ts; not is_string(object.get(t, "lit", null))],
} if {
	lits := {l | some t in ts; l := object.get(t, "lit", null); is_string(l)}
}

key_literals(s) := s.literal if {
	is_object(s.literal)
} else := literal_matcher(object.get(s, "values", []))

is_regex(v) if {
	startswith(v, "^")
	endswith(v, "$")
}

is_pattern(v) if is_regex(v)

is_pattern(v) if contains(v, "*")

# pattern turns a value into a regex body; the caller anchors it for a full match.
pattern(v) := v if is_regex(v)

pattern(v) := concat(".*", [quote(p) | some p in split(v, "*")]) if {
	not is_regex(v)
	contains(v, "*")
}

quote(s) := regex.replace(s, `([\\.+*?()|\[\]{}^$])`, `\$1`)

join_patterns(ps) := "" if count(ps) == 0

join_patterns(ps) := concat("", ["^(?:", concat("|", [concat("", ["(?:", p, ")"]) | some p in ps]), ")$"]) if {
	count(ps) > 0
}

# matches reports whether a compiled matcher selects a resource with these labels.
matches(m, _) if m.wildcard

matches(m, labels) if {
	not m.wildcard
	count(m.keys) > 0
	every k, vm in m.keys {
		value_ok(vm, labels[k])
	}
}

value_ok(vm, _) if vm.any

value_ok(vm, v) if vm.exact[v]

value_ok(vm, v) if {
	vm.regex != ""
	regex.match(vm.regex, v)
}

# matches_deny is matches for deny selectors: a literal value whose pattern is not a valid
# regex (role validation refuses one; a bundle built otherwise may hold one) counts as a
# match, so a broken deny fails closed.
matches_deny(m, labels) if matches(m, labels)

matches_deny(m, labels) if {
	not m.wildcard
	count(m.keys) > 0
	every k, vm in m.keys {
		deny_value_ok(vm, labels[k])
	}
}

deny_value_ok(vm, v) if value_ok(vm, v)

deny_value_ok(vm, _) if vm.invalid

# empty reports whether a shaped selector selects nothing at all (no keys, no wildcard).
empty(sel) if {
	not sel.wildcard
	count(object.get(sel, "keys", {})) == 0
}

# selects is true when a shaped selector selects anything at all.
selects(sel) := false if empty(sel)

selects(sel) if not empty(sel)

# selects_compiled is true when a compiled matcher can select anything.
selects_compiled(m) if m.wildcard

selects_compiled(m) if count(m.keys) > 0

# key_regexes turns a compiled matcher into one full-match regex per key,
# {KEY: "^(?:...)$"}, so a request checks a selector with one regex per key and no
# function calls: every key must exist and its value match its regex. {} is the
# wildcard. Undefined when the selector can match nothing (no keys, or a key that no
# value can satisfy). A value pattern that is not a valid regex is dropped (allow).
key_regexes(m) := {} if m.wildcard

key_regexes(m) := res if {
	not m.wildcard
	count(m.keys) > 0
	res := {k: re | some k, vm in m.keys; re := key_regex(vm)}
	count(res) == count(m.keys)
}

key_regex(vm) := `^(?s:.*)$` if {
	vm.any
} else := concat("", ["^(?:", concat("|", alts), ")$"]) if {
	alts := array.concat(
		sort([quote(v) | some v, _ in vm.exact]),
		[concat("", ["(?:", vm.regex, ")"]) | vm.regex != ""],
	)
	count(alts) > 0
}

# deny_key_regexes is key_regexes for deny selectors: a value pattern that is not a valid
# regex matches any value, so a broken deny fails closed.
deny_key_regexes(m) := {} if m.wildcard

deny_key_regexes(m) := res if {
	not m.wildcard
	count(m.keys) > 0
	res := {k: re | some k, vm in m.keys; re := deny_key_regex(vm)}
	count(res) == count(m.keys)
}

deny_key_regex(vm) := `^(?s:.*)$` if {
	vm.invalid
} else := key_regex(vm)

# matches_keys: the request-time check of key_regexes / deny_key_regexes.
matches_keys(res, labels) if count([1 | some k, re in res; regex.match(re, labels[k])]) == count(res)
