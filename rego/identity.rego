# The identity stage: everything about a decision that depends only on the certificate
# (and the bundle), not on the request: is the signer trusted, which local roles the
# certificate gets, its traits, and the role conditions expanded with those traits.
#
# The engine evaluates it once per certificate and bundle revision and reuses it for every
# request that certificate makes; the public query data.tether.authz.decision computes it
# inline. Both call the same functions, so they cannot disagree.
# METADATA
# title: Per-certificate identity
# description: >-
#   Everything about a decision that depends only on the certificate and the bundle - trust, local roles, traits, expanded role conditions.
package tether.identity

import data.tether.certs
import data.tether.labels
import data.tether.rolemap
import data.tether.templates

# of(inp) builds the identity of inp.cert as seen by this cluster: what the certificate
# is (base) plus the same facts arranged for the per-request stage to look up.
of(inp) := object.union(b, lookups(b)) if b := base(inp)

base(inp) := {
	"user": object.get(cert, "username", ""),
	"origin": origin,
	"local": origin == data.tether.cluster.name,
	"problems": problems,
	"cluster_problems": cluster_problems(inp),
	"cert_roles": object.get(cert, "roles", []),
	"roles": roles,
	"notes": array.concat(mapped.notes, missing_notes(mapped.roles)),
	"traits": tr,
	"principals": {p: true | some p in object.get(cert, "principals", [])},
	"mfa_verified": object.get(cert, "mfa_verified", false) == true,
	"issued_via": object.get(cert, "issued_via", ""),
	"valid_after_ns": parse_time(object.get(cert, "valid_after", "")),
	"valid_before_ns": parse_time(object.get(cert, "valid_before", "")),
	"allow": [grant(r, sts[i].allow, tr) | some i, r in roles],
	"deny": [restriction(r, sts[i].deny, tr) | some i, r in roles],
	"requirements": requirements(roles, sts),
	"locks": identity_locks(object.get(cert, "username", ""), origin, roles, object.get(cert, "roles", [])),
} if {
	cert := object.get(inp, "cert", {})
	origin := object.get(cert, ["signing_ca", "cluster"], "")
	problems := array.concat(cluster_problems(inp), certs.trust_problems(cert))
	mapped := mapped_roles(cert, origin)
	roles := with_grants(existing(mapped.roles), inp)
	sts := [role_static(r) | some r in roles]
	tr := traits(cert, origin)
}

# lookups arranges an identity for per-request checks that are lookups, not loops:
# the usable logins (principals ∩ roles' logins − denied logins) with the node selectors
# of the roles that allow each, the deny selectors that select anything, the problems that
# do not depend on the request, and the instants at which a time-based rule flips.
# Every value is computed once, in the body, from b's fields (a function given the whole
# identity costs a cache key and a lookup per call).
lookups(b) := {
	"login_grants": {login: gs |
		some login, _ in b.principals
		not denials[login]
		gs := [{"role": b.allow[i].role, "node": allow_res[i]} | some i in object.get(by_login, login, []); allow_res[i]]
		count(gs) > 0
	},
	"deny_nodes": [{"role": d.role, "node": res} | some d in b.deny; res := labels.static_deny_key_regexes(role_static(d.role).deny.node, d.node)],
	"allow_nodes": [res | some res in allow_res],
	# (each login once, not once per role that names it)
	"login_nodes": {login: [allow_res[i] | some i in is; allow_res[i]] | some login, is in by_login},
	"login_denials": denials,
	"session_prefix": sprintf("user %s@%s is not authorized to login as ", [b.user, b.origin]),
	"not_yet_valid_msg": sprintf("certificate is not valid before %s", [time.format(b.valid_after_ns)]),
	"expired_msg": sprintf("certificate expired at %s", [time.format(b.valid_before_ns)]),
	"valid_before": time.format(b.valid_before_ns),
	# session_until_ns: a session is possible from not_before_ns until (exclusive) this
	# instant, as far as the certificate itself goes: its validity and max_cert_age; never
	# when a static problem or an unmet requirement stands in the way whatever the time.
	"session_until_ns": session_until(static, requirement_problems, b.valid_before_ns, age),
	"age_deadline_ns": age,
	"not_before_ns": not_before,
	"role_problems": rp,
	"static_problems": static,
	"requirement_problems": requirement_problems,
	"max_age_deadline_ns": max_age,
	"bounds": sort({t |
		some t in array.concat(
			[not_before, b.valid_before_ns],
			array.concat(
				# max_cert_age allows a certificate exactly that old: it flips 1ns later.
				[d | some req in b.requirements.max_age; d := (b.valid_after_ns + req[1]) + 1],
				[l.expires_ns | some l in b.locks; l.expires_ns > 0],
			),
		)
	}),
} if {
	# Each allow selector as one full-match regex per key, computed once: the lookups
	# below share it (index i is b.allow[i]; a selector that can match nothing is absent).
	allow_res := {i: res | some i, g in b.allow; res := labels.static_key_regexes(role_static(g.role).allow.node, g.node)}

	# by_login: for each login some role allows, the indexes of the roles that allow it.
	by_login := {login: [i | some i, g in b.allow; g.logins[login]] | some login in {l | some g in b.allow; some l, _ in g.logins}}
	denials := {login: [d.role | some d in b.deny; d.logins[login]] |
		some login in {l | some d in b.deny; some l, _ in d.logins}
	}
	rp := role_problems(b.roles, b.notes)
	static := array.concat(b.problems, rp)
	requirement_problems := static_requirement_problems(b.requirements, b.mfa_verified, b.issued_via)
	max_age := max_age_deadline(b.requirements.max_age, b.valid_after_ns)
	age := age_deadline(max_age)
	not_before := b.valid_after_ns - certs.max_clock_skew_ns
}

# session_until is "never" (the smallest instant) when the certificate is refused whatever
# the time; otherwise the earlier of valid_before and the first instant max_cert_age
# refuses (age_deadline allows a certificate exactly that old).
session_until(static, requirement_problems, valid_before, age) := -9223372036854775808 if {
	count(array.concat(static, requirement_problems)) > 0
} else := min({valid_before, age + 1})

# A certificate that ends up with no local roles is denied, with the notes that explain why
# (nothing mapped, a role_map that is invalid, mapped roles missing here).
role_problems(roles, notes) := [] if {
	count(roles) > 0
} else := notes if {
	count(notes) > 0
} else := ["the certificate grants no roles on this cluster"]

# The per-role demands that need no clock: MFA and the issuing connector.
static_requirement_problems(reqs, mfa_verified, issued_via) := array.concat(
	[sprintf("role %q requires MFA: the certificate was not issued with MFA", [r]) | some r in reqs.mfa; not mfa_verified],
	[sprintf("role %q requires a certificate issued via one of %v; this one was issued via %q", [r, cs, issued_via]) |
		some req in reqs.connectors
		[r, cs] := req
		not issued_via in cs
	],
)

# age_deadline is max_age_deadline with "never" as a number a clock cannot reach.
age_deadline(max_age) := 9223372036854775807 if max_age == 0

else := max_age

# max_cert_age: the certificate is too old from the earliest deadline of its roles on.
max_age_deadline(max_ages, valid_after) := 0 if {
	count(max_ages) == 0
} else := min({d | some req in max_ages; d := valid_after + req[1]})

cluster_problems(inp) := [] if {
	object.get(inp, "cluster", "") == data.tether.cluster.name
} else := [sprintf("decision asked for cluster %q but this policy bundle belongs to %q", [object.get(inp, "cluster", ""), data.tether.cluster.name])]

parse_time(s) := 0 if s == ""

else := time.parse_rfc3339_ns(s)

# A certificate of this cluster carries local role names; one from a trusted cluster
# carries that cluster's role names, which role_map translates.
mapped_roles(cert, origin) := {"roles": object.get(cert, "roles", []), "notes": []} if {
	origin == data.tether.cluster.name
} else := {"roles": out, "notes": notes} if {
	tc := object.get(data.tether.trusted_clusters, origin, {})
	errs := role_map_errors(tc)
	remote := rolemap.remote_roles(object.get(cert, "roles", []))
	out := mapped_if_valid(tc, remote, errs)
	notes := array.concat(
		[sprintf("role_map of trusted cluster %s is invalid: %s", [origin, e]) | some e in errs],
		[sprintf("no roles mapped for user with remote roles %v", [remote]) | count(out) == 0],
	)
}

# role_map_errors is rolemap.errors of the trusted cluster's rules. They depend only on the
# bundle, so bundles.Shape evaluates this same function once at build time and stores the
# result beside the rules (role_map_errors); a bundle built otherwise (opa build, an older
# tetherctl) has it computed here, per certificate. The engine refuses a bundle whose
# stored errors differ from the rules' (derived_stale).
role_map_errors(tc) := {e | some e in tc.role_map_errors} if is_array(tc.role_map_errors)

role_map_errors(tc) := rolemap.errors(object.get(tc, "role_map_rules", [])) if {
	not is_array(object.get(tc, "role_map_errors", null))
}

# derived_stale names what bundles.Shape stored precomputed (a trusted cluster's
# role_map_errors, a selector key's literal matcher) that is not what the library's rule
# gives for the data beside it (a bundle edited by hand): the engine will not load such a
# bundle.
derived_stale contains sprintf("trusted_clusters.%s.role_map_errors", [name]) if {
	some name, tc in data.tether.trusted_clusters
	is_array(tc.role_map_errors)
	{e | some e in tc.role_map_errors} != rolemap.errors(object.get(tc, "role_map_rules", []))
}

derived_stale contains sprintf("roles.%s.%s.%s.keys.%s.literal", [name, c, f, k]) if {
	some name, role in data.tether.roles
	some c in ["allow", "deny"]
	some f in ["node_labels", "cluster_labels"]
	some k, s in object.get(role, [c, f, "keys"], {})
	is_object(s.literal)
	s.literal != labels.literal_matcher(object.get(s, "values", []))
}

derived_stale contains sprintf("trusted_clusters.%s.role_map.any_pattern", [name]) if {
	some name, tc in data.tether.trusted_clusters
	is_string(tc.role_map.any_pattern)
	tc.role_map.any_pattern != rolemap.any_pattern_of(object.get(tc.role_map, "patterns", []))
}

derived_stale contains sprintf("cas.%s.derived", [fp]) if {
	some fp, ca in data.tether.cas
	is_object(ca.derived)
	ca.derived != certs.ca_derived(ca)
}

derived_stale contains sprintf("roles.%s.derived", [name]) if {
	some name, role in data.tether.roles
	is_object(role.derived)
	role.derived != role_derived(role)
}

mapped_if_valid(tc, remote, errs) := rolemap.map_roles(tc.role_map, remote) if {
	count(errs) == 0
	tc.role_map
} else := [] if {
	count(errs) > 0
} else := [] if {
	not tc.role_map
}

existing(names) := [n | some n in names; data.tether.roles[n]]

# Tether: a mapped role that does not exist here is skipped with a note instead of
# failing every access (Teleport issue #7356).
missing_notes(names) := [sprintf("role %q does not exist on cluster %s; skipped", [n, data.tether.cluster.name]) |
	some n in names
	not data.tether.roles[n]
]

# Operators' modules may grant extra local roles (package tether.custom, rule grants).
# They see only the certificate and the cluster, in every evaluation path, so the identity
# can be cached per certificate.
with_grants(roles, inp) := array.concat(roles, sort([g |
	some g in custom_grants(inp)
	data.tether.roles[g]
	not g in roles
]))

custom_grants(inp) := g if {
	g := data.tether.custom.grants with input as {"cert": object.get(inp, "cert", {}), "cluster": object.get(inp, "cluster", "")}
}

# For a certificate from a trusted cluster, the logins trait is replaced by its principals.
traits(cert, origin) := object.get(cert, "traits", {}) if {
	origin == data.tether.cluster.name
} else := object.union(object.get(cert, "traits", {}), {"logins": object.get(cert, "principals", [])})

# grant: what a role allows, expanded with the traits (st is the role's static allow part,
# role_static).
grant(name, st, tr) := {
	"role": name,
	"logins": expanded_logins(st, tr, "allow"),
	"node": labels.compile_static(st.node, tr),
	"cluster": labels.compile_static(st.cluster, tr),
	"has_cluster_labels": st.has_cluster_labels,
}

# restriction: what a role denies, expanded with the traits.
restriction(name, st, tr) := {
	"role": name,
	"logins": expanded_logins(st, tr, "deny"),
	"node": labels.compile_static(st.node, tr),
	"cluster": labels.compile_static(st.cluster, tr),
	"has_cluster_labels": st.has_cluster_labels,
}

# expanded_logins: the role author's literal logins (already checked for an allow) and
# what the templates give for the traits (checked here for an allow).
expanded_logins(st, tr, c) := st.logins if {
	count(st.login_templates) == 0
} else := object.union(st.logins, {l: true | some l in templates.expand_all(st.login_templates, tr); login_ok(l, c)})

# role_static is what a role contributes to every identity that has it, whatever the
# certificate: role_derived, which bundles.Shape evaluates at build time and stores as the
# role's "derived"; computed here when a bundle does not carry it (opa build, an older
# tetherctl). The engine refuses a bundle whose stored value differs (derived_stale).
role_static(name) := data.tether.roles[name].derived if {
	is_object(data.tether.roles[name].derived)
} else := role_derived(data.tether.roles[name])

# role_derived: the parts of grant and restriction that depend only on the role: the
# literal logins (an allow's checked against the login rule), the login templates left for
# the traits, the selectors' static parts (labels.static) and whether cluster_labels
# select anything.
role_derived(role) := {
	"allow": condition_derived(role, "allow"),
	"deny": condition_derived(role, "deny"),
	"requirements": role_requirements(role),
}

condition_derived(role, c) := {
	"logins": {l: true | some t in logins; l := t.lit; is_string(l); login_ok(l, c)},
	"login_templates": [t | some t in logins; not literal_template(t)],
	"node": labels.static(object.get(role, [c, "node_labels"], {})),
	"cluster": labels.static(object.get(role, [c, "cluster_labels"], {})),
	"has_cluster_labels": labels.selects(object.get(role, [c, "cluster_labels"], {})),
} if {
	logins := object.get(role, [c, "logins"], [])
}

literal_template(t) if is_string(t.lit)

login_ok(l, "allow") if valid_login(l)

login_ok(_, "deny")

# Logins must be valid Unix user names (the portable rule resource.IsValidLogin states);
# an expanded trait that is not one is dropped.
valid_login(l) if regex.match(`^[A-Za-z_](?:[A-Za-z0-9_.-]{0,31}|[A-Za-z0-9_.-]{0,30}[$])$`, l)

# requirements: per-role demands on the certificate (Tether hardening against a
# compromised identity provider).
# (sts[i] is role_static(roles[i]).)
requirements(roles, sts) := {
	"mfa": [r | some i, r in roles; sts[i].requirements.mfa],
	"max_age": [[r, ns] | some i, r in roles; ns := sts[i].requirements.max_age_ns; ns > 0],
	"connectors": [[r, cs] | some i, r in roles; cs := sts[i].requirements.connectors; count(cs) > 0],
	"max_session_ttl_ns": [sts[i].requirements.ttl_ns | some i, _ in roles],
	"max_connections": max_connections([object.get(sts[i].requirements, "max_connections", 0) | some i, _ in roles]),
}

# max_connections: Teleport's options.max_connections over the identity's roles: the
# smallest limit a role sets, 0 when none does (no limit). The enforcement point counts
# the user's open connections against it.
max_connections(ns) := min(limits) if {
	limits := [n | some n in ns; is_number(n); n > 0]
	count(limits) > 0
} else := 0

# role_requirements: a role's options as requirements reads them (part of role_derived).
role_requirements(role) := {
	"mfa": object.get(role, ["options", "require_session_mfa"], false) == true,
	"max_age_ns": object.get(role, ["options", "max_cert_age_ns"], 0),
	"connectors": object.get(role, ["options", "require_connectors"], []),
	"ttl_ns": role_ttl(role),
	"max_connections": object.get(role, ["options", "max_connections"], 0),
}

# role_ttl is a role's max_session_ttl, Teleport's 30 hours when it sets none.
role_ttl(role) := ns if {
	ns := object.get(role, ["options", "max_session_ttl_ns"], 0)
	ns > 0
} else := default_max_session_ttl_ns

default_max_session_ttl_ns := (30 * 3600) * 1000000000

# identity_locks: the locks whose user / role / remote_cluster targets this identity meets.
# The per-request stage checks their login and node targets and their expiry.
identity_locks(user, origin, roles, cert_roles) := [l |
	some l in all_locks
	every k, v in l.target {
		identity_target(k, v, user, origin, roles, cert_roles)
	}
]

# all_locks reads the locks base document; a bundle without locks has none.
default all_locks := []

all_locks := data.tether.locks

identity_target("user", v, user, _, _, _) if v == user

identity_target("role", v, _, _, roles, _) if v in roles

identity_target("role", v, _, _, _, cert_roles) if v in cert_roles

# root_role: a role of the root that replicated the lock (bundles ship a replicated lock's
# role target under this name); the root's users carry their root roles in the certificate.
identity_target("root_role", v, _, _, _, cert_roles) if v in cert_roles

identity_target("remote_cluster", v, _, origin, _, _) if v == origin

# root_node: a node of the root that replicated the lock (bundles ship a replicated lock's
# node target under this name unless it is written NODE.THIS_CLUSTER): no request here is
# for the root's nodes, so no identity holds such a lock (no rule for it, on purpose).

identity_target("login", _, _, _, _, _)

identity_target("node", _, _, _, _, _)
