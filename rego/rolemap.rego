# role_map: which local roles a certificate from a trusted cluster gets on this cluster.
#
# Validation first (errors); any error rejects the whole map. Then every rule is applied
# to every remote role (no first match wins); the output keeps the first occurrence of each
# local role in the order rule -> remote role -> local entry.
#
# Bundles carry each map twice: the rules verbatim (role_map_rules, for validation and
# explanations) and shaped (role_map): literal remotes as object keys with their local
# entries already expanded, and globs / ^regex$ remotes as full-match regexes.
# METADATA
# title: Trusted cluster role_map
# description: >-
#   role_map validation and expansion - which local roles a certificate from a trusted cluster gets here.
package tether.rolemap

# The role every Teleport user implicitly has; it is never mapped.
implicit_role := "default-implicit-role"

# errors returns the validation errors of a list of rules (empty when the map is valid).
errors(rules) := ((((empty_remote(rules) | empty_local(rules)) | empty_local_entry(rules)) | star_local(rules)) | duplicate_remote(rules)) | bad_regex(rules)

empty_remote(rules) := {sprintf("role_map[%d]: remote must not be empty", [i]) |
	some i, r in rules
	trim_space(object.get(r, "remote", "")) == ""
}

empty_local(rules) := {sprintf("role_map[%d]: local must list at least one role", [i]) |
	some i, r in rules
	count(object.get(r, "local", [])) == 0
}

empty_local_entry(rules) := {sprintf("role_map[%d]: local[%d] must not be empty", [i, j]) |
	some i, r in rules
	some j, l in object.get(r, "local", [])
	trim_space(l) == ""
}

star_local(rules) := {sprintf("role_map[%d]: local[%d] must not be \"*\": a wildcard would grant every local role", [i, j]) |
	some i, r in rules
	some j, l in object.get(r, "local", [])
	l == "*"
}

duplicate_remote(rules) := {sprintf("role_map[%d]: remote %q is already mapped by role_map[%d]", [j, rules[j].remote, i]) |
	some i, j
	rules[i].remote == rules[j].remote
	i < j
}

bad_regex(rules) := {sprintf("role_map[%d]: remote %q is not a valid RE2 regular expression", [i, r.remote]) |
	some i, r in rules
	is_regex(r.remote)
	not valid_regex_remote(r.remote)
}

# A regex remote must compile as written and as Tether evaluates it, ^(?:remote)$: a
# remote such as ^a)|(b$ compiles only once wrapped, and would then match inside names.
valid_regex_remote(remote) if {
	regex.is_valid(remote)
	regex.is_valid(concat("", ["^(?:", remote, ")$"]))
}

# is_regex: a remote that starts with ^ and ends with $ is an RE2 regex; anything else is
# literal text in which * is a wildcard.
is_regex(remote) if {
	startswith(remote, "^")
	endswith(remote, "$")
}

# remote_roles is what the certificate's roles count as: a certificate with no roles maps as
# if it had the one role "".
remote_roles(roles) := roles if count(roles) > 0

remote_roles(roles) := [""] if count(roles) == 0

# map_roles applies a shaped map to the remote roles and returns the local roles in order.
map_roles(rm, roles) := [v |
	some i, m in ordered
	v := m[3]
	not seen_before(ordered, i, v)
] if {
	ordered := sort(exact_matches(rm, roles) | pattern_matches(rm, roles))
}

seen_before(ordered, i, v) if {
	some j
	j < i
	ordered[j][3] == v
}

exact_matches(rm, roles) := {[r.rule, ri, li, v] |
	some ri, role in roles
	role != implicit_role
	r := rm.exact[role]
	some li, v in r.local
	v != ""
}

# A pattern is anchored as ^(?:...)$, so regex.replace (Go's ReplaceAllString) on a role it
# matches is exactly Regexp.Expand of the local template: $1, ${1}, ${name}, $$.
pattern_matches(rm, roles) := {[p.rule, ri, li, v] |
	some ri, role in roles
	role != implicit_role
	regex.match(any_pattern(rm), role)
	some p in rm.patterns
	regex.match(p.regex, role)
	some li, tmpl in p.local
	v := regex.replace(role, p.regex, tmpl)
	v != ""
}

# any_pattern is one regex that matches a role exactly when some pattern of the map does,
# so a role that no pattern maps (most roles of a map with many literal remotes) costs one
# match instead of one per pattern. Each pattern is already anchored, ^(?:...)$, and keeps
# its own flags inside its group. bundles.Shape stores it as role_map.any_pattern at build
# time (the engine refuses a bundle where it is not what this rule gives,
# identity.derived_stale); it is computed here when a bundle does not carry it.
any_pattern(rm) := rm.any_pattern if is_string(rm.any_pattern)

else := any_pattern_of(object.get(rm, "patterns", []))

# any_pattern_of joins the patterns' regexes. With none it matches nothing; when one is
# not a valid regex (a hand-written role_map) it matches everything, so every pattern is
# tried and the invalid one fails the evaluation as it would without the shortcut.
any_pattern_of(patterns) := `^\b\B$` if count(patterns) == 0

any_pattern_of(patterns) := `(?s:.*)` if {
	count(patterns) > 0
	some p in patterns
	not valid_pattern(p)
}

any_pattern_of(patterns) := concat("|", [concat("", ["(?:", p.regex, ")"]) | some p in patterns]) if {
	count(patterns) > 0
	every p in patterns {
		valid_pattern(p)
	}
}

valid_pattern(p) if regex.is_valid(p.regex)
