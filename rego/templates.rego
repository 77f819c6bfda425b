# Role templates: {{internal.x}}, {{external.x}}, email.local(...), regexp.replace(...).
#
# Templates are parsed in Go when a role is created (a malformed template is rejected
# there), and shipped in the bundle as objects: {"lit": "visitor"} for a literal, or
# {"prefix", "suffix", "ns", "trait", "fn", "re", "repl"} for one expression. This package
# expands them with a user's traits. Both namespaces read the same trait map (Teleport).
# METADATA
# title: Role templates
# description: >-
#   Expansion of internal, external, email.local and regexp.replace templates with a user traits.
package tether.templates

# expand returns the set of strings a template value gives for the traits.
# A literal gives itself. A trait expression gives one string per trait value that its
# function accepts; a missing trait gives nothing.
expand(t, _) := {t.lit} if is_string(t.lit)

expand(t, traits) := {v |
	some raw in object.get(traits, t.trait, [])
	x := apply(t, raw)
	v := concat("", [t.prefix, x, t.suffix])
} if not t.lit

# apply runs a template's function on one trait value; undefined drops the value.
apply(t, raw) := raw if t.fn == ""

# email.local keeps the local part of an address; values that are not addresses are dropped.
apply(t, raw) := parts[0] if {
	t.fn == "email_local"
	parts := split(raw, "@")
	count(parts) == 2
	parts[0] != ""
	parts[1] != ""
}

# regexp.replace rewrites matching values; values that do not match are dropped.
apply(t, raw) := regex.replace(raw, t.re, t.repl) if {
	t.fn == "regexp_replace"
	regex.match(t.re, raw)
}

# expand_all expands a list of templates into one set.
expand_all(ts, traits) := {v | some t in ts; some v in expand(t, traits)}
