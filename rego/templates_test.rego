# Role templates (DESIGN §3a "Templates"): prefix{{expr}}suffix with internal.x,
# external.x, email.local(expr) and regexp.replace(expr, "re", "repl").
package tether.templates_test

import data.tether.fixtures_test as fx
import data.tether.templates

traits := {
	"logins": ["visitor", "ubuntu"],
	"email": ["alice@example.com"],
	"groups": ["admin-ops", "dev", "admin-db"],
}

email_local(trait) := object.union(fx.internal(trait), {"fn": "email_local"})

regexp_replace(trait, re, repl) := object.union(fx.internal(trait), {"fn": "regexp_replace", "re": re, "repl": repl})

test_literal_gives_itself if {
	templates.expand(fx.lit("visitor"), traits) == {"visitor"}
}

test_literal_is_not_expanded_even_when_it_names_a_trait if {
	templates.expand(fx.lit("logins"), traits) == {"logins"}
}

test_internal_gives_every_value_of_the_trait if {
	templates.expand(fx.internal("logins"), traits) == {"visitor", "ubuntu"}
}

test_internal_and_external_read_the_same_traits if {
	templates.expand(fx.external("logins"), traits) == templates.expand(fx.internal("logins"), traits)
	templates.expand(fx.external("email"), traits) == {"alice@example.com"}
}

test_prefix_and_suffix_wrap_every_value if {
	t := object.union(fx.internal("logins"), {"prefix": "u-", "suffix": "-x"})
	templates.expand(t, traits) == {"u-visitor-x", "u-ubuntu-x"}
}

test_missing_trait_drops_the_value if {
	templates.expand(fx.internal("teams"), traits) == set()
	templates.expand(object.union(fx.internal("teams"), {"prefix": "p-"}), traits) == set()
}

test_empty_trait_gives_nothing if {
	templates.expand(fx.internal("logins"), {"logins": []}) == set()
}

test_email_local_keeps_the_local_part if {
	templates.expand(email_local("email"), traits) == {"alice"}
}

# Teleport: one value that does not parse as an address voids the whole expression.
test_email_local_one_value_that_is_not_an_address_voids_the_expression if {
	t := email_local("emails")
	every bad in ["bob", "a@b@c", "@example.com", "carol@", "", "Dave <dave@example.com", "a b@example.com"] {
		templates.expand(t, {"emails": ["dave@example.com", bad]}) == set()
	}
	templates.expand(t, {"emails": ["dave@example.com", "erin@example.com"]}) == {"dave", "erin"}
}

test_email_local_of_a_missing_trait_is_empty if {
	templates.expand(email_local("nosuch"), traits) == set()
}

# The forms email.local accepts (templates.rego documents the grammar), each with the local
# part net/mail gives.
test_email_local_accepted_forms if {
	every raw, want in {
		"alice@example.com": "alice",
		"alice.smith+tag@mail.example.com": "alice.smith+tag",
		"Alice <alice@example.com>": "alice",
		"Alice Smith <alice@example.com>": "alice",
		"Alice<alice@example.com>": "alice",
		"<alice@example.com>": "alice",
		`"Smith, Alice" <alice@example.com>`: "alice",
		`"Alice \"A\" Smith" <alice@example.com>`: "alice",
		"  alice@example.com \t": "alice",
		"*@example.com": "*",
		"^.*$@example.com": "^.*$",
		"J. R. Bob <bob@x>": "bob",
	} {
		templates.email_local_part(raw) == want
	}
}

# The address regexes are written out whole (a concat is built again in every evaluation);
# they are exactly what their pieces give.
test_address_regexes_are_built_from_their_parts if {
	templates.bare_address == concat("", [`^[ \t]*(`, templates.dot_atom, ")@", templates.dot_atom, `[ \t]*$`])
	templates.named_address == concat("", [
		`^[ \t]*((?:`, templates.phrase_word, `[ \t]*)*)<(`,
		templates.dot_atom, ")@", templates.dot_atom, `>[ \t]*$`,
	])
}

test_email_local_refused_forms if {
	every raw in [
		"", "alice", "alice@", "@example.com", "a@b@c", ".alice@example.com", "alice.@example.com",
		"al..ice@example.com", "alice@example..com", "alice@[127.0.0.1]", `"alice"@example.com`,
		"alice@example.com (Alice)", "Alice <alice@example.com", "Alice alice@example.com>",
		"Alice < alice@example.com>", "Alice <alice@example.com >", "a@b.c <x@y.z>", "Group: a@b.c;",
		"=?utf-8?q?Alice?= <alice@example.com>", "Al(ice) <alice@example.com>", "alice@example.com\n",
		"ålice@example.com", "Alice, Bob <bob@example.com>", "alice example.com",
	] {
		not templates.email_local_part(raw)
	}
}

test_email_local_keeps_prefix_and_suffix if {
	t := object.union(email_local("email"), {"prefix": "x-", "suffix": "-y"})
	templates.expand(t, traits) == {"x-alice-y"}
}

test_regexp_replace_rewrites_matching_values if {
	templates.expand(regexp_replace("groups", "^admin-(.*)$", "$1"), traits) == {"ops", "db"}
}

test_regexp_replace_drops_values_that_do_not_match if {
	templates.expand(regexp_replace("groups", "^admin-(.*)$", "$1"), {"groups": ["dev", "ops"]}) == set()
}

# Like Go's Regexp.ReplaceAllString: an unanchored expression rewrites what it matches.
test_regexp_replace_rewrites_the_matched_part_only if {
	templates.expand(regexp_replace("groups", "-db$", "-database"), traits) == {"admin-database"}
}

test_regexp_replace_keeps_prefix_and_suffix if {
	t := object.union(regexp_replace("groups", "^admin-(.*)$", "$1"), {"prefix": "team-", "suffix": "s"})
	templates.expand(t, traits) == {"team-opss", "team-dbs"}
}

test_expand_all_unions_every_template if {
	ts := [fx.lit("visitor"), fx.internal("logins"), fx.internal("missing"), email_local("email")]
	templates.expand_all(ts, traits) == {"visitor", "ubuntu", "alice"}
}

test_expand_all_of_no_templates_is_empty if {
	templates.expand_all([], traits) == set()
}
