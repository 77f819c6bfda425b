# Role templates: {{internal.x}}, {{external.x}}, email.local(...), regexp.replace(...).
#
# Templates are parsed in Go when a role is created (a malformed template, an internal
# trait name that is not Teleport's, or an unknown namespace is rejected there), and
# shipped in the bundle as objects: {"lit": "visitor"} for a literal, or
# {"prefix", "suffix", "ns", "trait", "fn", "re", "repl"} for one expression. Expressions
# of a string literal ({{"x"}}, regexp.replace("x", ...)) do not depend on the user: Go
# folds them into literals. This package expands the rest with a user's traits. Both
# namespaces read the same trait map (Teleport).
# METADATA
# title: Role templates
# description: >-
#   Expansion of internal, external, email.local and regexp.replace templates with a user traits.
package tether.templates

# expand returns the set of strings a template value gives for the traits.
# A literal gives itself. A trait expression gives one string per trait value that its
# function accepts; a missing trait gives nothing. email.local gives nothing at all when
# one of the values is not an address (Teleport: the expression fails as a whole).
expand(t, _) := {t.lit} if is_string(t.lit)

expand(t, traits) := {v |
	some raw in values
	x := apply(t, raw)
	v := concat("", [t.prefix, x, t.suffix])
} if {
	not t.lit
	values := object.get(traits, t.trait, [])
	not voided(t, values)
}

expand(t, traits) := set() if {
	not t.lit
	voided(t, object.get(traits, t.trait, []))
}

# voided: one value that email.local cannot parse voids the whole expression.
voided(t, values) if {
	t.fn == "email_local"
	some raw in values
	not email_local_part(raw)
}

# apply runs a template's function on one trait value; undefined drops the value.
apply(t, raw) := raw if t.fn == ""

apply(t, raw) := email_local_part(raw) if t.fn == "email_local"

# regexp.replace rewrites matching values; values that do not match are dropped.
apply(t, raw) := regex.replace(raw, t.re, t.repl) if {
	t.fn == "regexp_replace"
	regex.match(t.re, raw)
}

# ---- email.local ---------------------------------------------------------------------------
#
# Teleport parses each value with Go's net/mail.ParseAddress and keeps the part of the
# address before the '@'. Rego has no address parser, so this is a strict subset of what
# net/mail accepts, and gives the same local part for everything it accepts (a
# differential test against net/mail holds it to that, rego/email_test.go). Accepted,
# with WSP = space or tab and nothing else around:
#
#   WSP* dot-atom "@" dot-atom WSP*                                     alice@example.com
#   WSP* (word WSP*)* "<" dot-atom "@" dot-atom ">" WSP*                 Alice <alice@example.com>
#
# where dot-atom is atext+ ("." atext+)*, atext is an ASCII letter, digit or one of
# !#$%&'*+-/=?^_`{|}~, and a display-name word is either a run of atext and '.' or a
# quoted string of printable ASCII, space and tab with backslash pairs ("Alice \"A\" S").
# Refused (the whole expression then gives nothing), though net/mail may accept them:
# non-ASCII, comments, quoted local parts, domain literals ([1.2.3.4]), whitespace inside
# the address or before '>', groups, and display names containing "=?" (RFC 2047 encoded
# words, which net/mail decodes and may reject by charset).

# The two forms as regexes. They are written out whole because a rule built with concat
# is built again in every evaluation that reads it (a new certificate's identity stage
# paid ≈ 180 allocations for them); test_address_regexes_are_built_from_their_parts holds
# them equal to the pieces below, which say what they are made of.
bare_address := `^[ \t]*([A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+)*)@[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+)*[ \t]*$`

named_address := `^[ \t]*((?:(?:[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~.-]+|"(?:[\t !#-\[\]-~]|\\[\t -~])*")[ \t]*)*)<([A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+)*)@[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~-]+)*>[ \t]*$`

# The pieces: atext, a dot-atom, a display-name word.
atext := "[A-Za-z0-9!#$%&'*+/=?^_\\x60{|}~-]"

dot_atom := concat("", [atext, `+(?:\.`, atext, `+)*`])

phrase_word := concat("", [
	"(?:[A-Za-z0-9!#$%&'*+/=?^_\\x60{|}~.-]+",
	`|"(?:[\t !#-\[\]-~]|\\[\t -~])*")`,
])

# email_local_part is the local part of an address in one of the forms above; undefined
# for anything else. (One else chain: an address has '<' only in the named form, so at
# most one form matches, and the named form's regex is not tried for a bare address.)
email_local_part(raw) := m[0][1] if {
	m := regex.find_all_string_submatch_n(bare_address, raw, 1)
	count(m) == 1
} else := m[0][2] if {
	m := regex.find_all_string_submatch_n(named_address, raw, 1)
	count(m) == 1
	not contains(m[0][1], "=?")
}

# expand_all expands a list of templates into one set.
expand_all(ts, traits) := {v | some t in ts; some v in expand(t, traits)}
