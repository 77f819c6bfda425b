# Shared fixtures for the library's tests: two clusters of the seed guide, shaped the way
# bundles.Shape ships them (docs/ARCHITECTURE.md, "The bundle data document"), input
# builders in the shape of DESIGN §3, and helpers that evaluate the library against a world.
#
# A world is the value of data.tether. It cannot be swapped in with `with data.tether as`
# (the library and these tests live under data.tether, so that would replace them too), so
# the helpers below replace each base document of data.tether one by one. Operators'
# modules (data.tether.custom) are left to the caller: `... with data.tether.custom.deny as`.
package tether.fixtures_test

import data.tether.access
import data.tether.authz
import data.tether.certs
import data.tether.identity

# ---- clusters, names and time ------------------------------------------------------------

root := "msp-root.example.com"

leaf := "leaf-east.example.com"

# A root whose trust the leaf has disabled, and one whose role_map is invalid.
off_root := "off-root.example.com"

broken_root := "broken-root.example.com"

# A cluster the leaf has a CA of but no trusted_cluster for.
stranger := "stranger.example.com"

second := 1000000000

minute := 60 * second

hour := 60 * minute

now := "2026-11-23T19:45:35Z"

now_ns := time.parse_rfc3339_ns(now)

# at returns the RFC 3339 time offset_ns away from now.
at(offset_ns) := time.format(now_ns + offset_ns)

# ---- templates and selectors (ARCHITECTURE.md: T and S) -------------------------------

lit(s) := {"lit": s}

expr(ns, trait) := {"prefix": "", "suffix": "", "ns": ns, "trait": trait, "fn": "", "re": "", "repl": ""}

internal(trait) := expr("internal", trait)

external(trait) := expr("external", trait)

# sel shapes a label selector {key: [value...]} whose values are literals.
sel(m) := {"wildcard": false, "keys": {k: {"values": [lit(v) | some v in vs]} | some k, vs in m}}

# tsel shapes a selector {key: [template...]} whose values are already shaped templates.
tsel(m) := {"wildcard": false, "keys": {k: {"values": ts} | some k, ts in m}}

wildcard := {"wildcard": true, "keys": {}}

nothing := {"wildcard": false, "keys": {}}

# ---- roles -------------------------------------------------------------------------------

default_options := {"max_session_ttl_ns": 0, "require_session_mfa": false, "max_cert_age_ns": 0, "require_connectors": []}

# role shapes a role from a compact spec: logins, node_labels, cluster_labels, deny_logins,
# deny_node_labels, deny_cluster_labels (shaped values) and options (merged over defaults).
role(spec) := {
	"allow": {
		"logins": object.get(spec, "logins", []),
		"node_labels": object.get(spec, "node_labels", nothing),
		"cluster_labels": object.get(spec, "cluster_labels", nothing),
	},
	"deny": {
		"logins": object.get(spec, "deny_logins", []),
		"node_labels": object.get(spec, "deny_node_labels", nothing),
		"cluster_labels": object.get(spec, "deny_cluster_labels", nothing),
	},
	"options": object.union(default_options, object.get(spec, "options", {})),
}

leaf_roles := {
	# The seed guide's role: the visitor login on every node.
	"visitor": role({"logins": [lit("visitor")], "node_labels": wildcard}),
	# The seed guide's Alice: full-access on the root maps to stage-access here.
	"stage-access": role({
		"logins": [internal("logins")],
		"node_labels": sel({"env": ["stage"]}),
		"deny_logins": [lit("root")],
	}),
	"no-visitor": role({"deny_logins": [lit("visitor")]}),
	"no-prod": role({"deny_node_labels": sel({"env": ["prod"]})}),
	"mfa-required": role({"logins": [lit("visitor")], "node_labels": wildcard, "options": {"require_session_mfa": true}}),
	"short-lived": role({"logins": [lit("visitor")], "node_labels": wildcard, "options": {"max_cert_age_ns": hour}}),
	"okta-only": role({"logins": [lit("visitor")], "node_labels": wildcard, "options": {"require_connectors": ["oidc/okta"]}}),
	"auditor": role({"logins": [lit("auditor")], "node_labels": wildcard}),
	# A local administrator of the leaf.
	"admin": role({"logins": [lit("root"), internal("logins")], "node_labels": wildcard}),
}

# The leaf's role_map for the root, as written in its trusted_cluster.
root_rules := [
	{"remote": "access", "local": ["visitor"]},
	{"remote": "full-access", "local": ["stage-access"]},
	{"remote": "deny-visitor", "local": ["no-visitor"]},
	{"remote": "no-prod", "local": ["no-prod"]},
	{"remote": "mfa", "local": ["mfa-required"]},
	{"remote": "short-lived", "local": ["short-lived"]},
	{"remote": "okta", "local": ["okta-only"]},
	{"remote": "ghost", "local": ["ghost-role"]},
	{"remote": "^team-(.*)$", "local": ["$1"]},
]

# ---- role_map shaping, as bundles.Shape / resource.CompileRoleMapRemote do it -------------

is_regex(remote) if {
	startswith(remote, "^")
	endswith(remote, "$")
}

is_glob(remote) if {
	not is_regex(remote)
	contains(remote, "*")
}

is_literal(remote) if {
	not is_regex(remote)
	not contains(remote, "*")
}

# quote_meta is Go's regexp.QuoteMeta.
quote_meta(s) := regex.replace(s, `([\\.+*?()|\[\]{}^$])`, `\$1`)

remote_regex(remote) := concat("", ["^(?:", remote, ")$"]) if is_regex(remote)

remote_regex(remote) := concat("", ["^(?:", concat("(.*)", [quote_meta(p) | some p in split(remote, "*")]), ")$"]) if {
	is_glob(remote)
}

# expand_literal is resource.ExpandLiteralLocal: Regexp.Expand with only group 0.
expand_literal(remote, local) := regex.replace(remote, concat("", ["^", quote_meta(remote), "$"]), local)

# shape_role_map turns role_map rules into {"exact": ..., "patterns": [...]}.
shape_role_map(rules) := {
	"exact": {r.remote: {"rule": i, "local": [expand_literal(r.remote, l) | some l in r.local]} |
		some i, r in rules
		is_literal(r.remote)
	},
	"patterns": [{"rule": i, "regex": remote_regex(r.remote), "local": r.local} |
		some i, r in rules
		not is_literal(r.remote)
	],
}

trusted(enabled, rules) := {"enabled": enabled, "role_map_rules": rules, "role_map": shape_role_map(rules)}

# ---- worlds (data.tether) ------------------------------------------------------------------

ca(cluster, type, active) := {"cluster": cluster, "type": type, "active": active}

# The leaf of the seed guide: it trusts the root, and decides ssh.session and node.list.
leaf_world := {
	"cluster": {"name": leaf},
	"cas": {
		"SHA256:leaf-user": ca(leaf, "user", true),
		"SHA256:leaf-host": ca(leaf, "host", true),
		"SHA256:root-user": ca(root, "user", true),
		"SHA256:root-host": ca(root, "host", true),
		"SHA256:root-user-rotated": ca(root, "user", false),
		"SHA256:off-root-user": ca(off_root, "user", false),
		"SHA256:broken-root-user": ca(broken_root, "user", true),
		"SHA256:stranger-user": ca(stranger, "user", true),
	},
	"trusted_clusters": {
		root: trusted(true, root_rules),
		off_root: trusted(false, [{"remote": "access", "local": ["visitor"]}]),
		broken_root: trusted(true, [{"remote": "access", "local": ["*"]}]),
	},
	"roles": leaf_roles,
	"remote_clusters": {},
	"locks": [],
}

# The root of the seed guide: it decides cluster.list, cluster.route and cert.issue.
root_world := {
	"cluster": {"name": root},
	"cas": {
		"SHA256:root-user": ca(root, "user", true),
		"SHA256:root-host": ca(root, "host", true),
		"SHA256:leaf-host": ca(leaf, "host", true),
	},
	"trusted_clusters": {},
	"roles": {
		"access": role({"logins": [internal("logins")], "node_labels": wildcard}),
		"demo-cluster-access": role({"cluster_labels": sel({"env": ["demo"]})}),
		"all-clusters": role({"cluster_labels": wildcard}),
		"no-demo": role({"deny_cluster_labels": sel({"env": ["demo"]})}),
		"no-root": role({"deny_logins": [lit("root")]}),
		"root-login": role({"logins": [lit("root")], "node_labels": wildcard}),
		"mfa": role({"options": {"require_session_mfa": true}}),
		"ttl-8h": role({"options": {"max_session_ttl_ns": 8 * hour}}),
		"ttl-2h": role({"options": {"max_session_ttl_ns": 2 * hour}}),
	},
	"remote_clusters": {
		# tctl update rc/leaf-east.example.com --set-labels=env=demo
		leaf: {"labels": {"env": "demo"}},
		"leaf-west.example.com": {"labels": {}},
	},
	"locks": [],
}

empty_world := {"cluster": {}, "cas": {}, "trusted_clusters": {}, "roles": {}, "remote_clusters": {}, "locks": []}

# with_locks returns a world with these locks.
with_locks(world, locks) := object.union(world, {"locks": locks})

# with_roles returns a world with these roles added (or replaced).
with_roles(world, roles) := object.union(world, {"roles": roles})

# lock shapes a lock as bundles.Shape does; expires_ns 0 never expires.
lock(name, target, message, expires_ns) := {"name": name, "target": target, "message": message, "expires_ns": expires_ns}

# ---- inputs (DESIGN §3) --------------------------------------------------------------------

# Alice's certificate from the root: issued 44 minutes ago for 12 hours, valid_after
# backdated by a minute, as issuers do.
alice_cert := {
	"type": "user",
	"signing_ca": {"cluster": root, "fingerprint": "SHA256:root-user"},
	"username": "alice",
	"key_id": "alice",
	"principals": ["visitor"],
	"roles": ["access"],
	"traits": {"logins": ["visitor"], "groups": ["sre"]},
	"valid_after": at(-45 * minute),
	"valid_before": at((12 * hour) - (44 * minute)),
	"route_to_cluster": leaf,
	"issued_via": "oidc/okta",
	"mfa_verified": false,
}

# Bob's certificate from the leaf's own user CA.
bob_cert := {
	"type": "user",
	"signing_ca": {"cluster": leaf, "fingerprint": "SHA256:leaf-user"},
	"username": "bob",
	"key_id": "bob",
	"principals": ["bob", "root"],
	"roles": ["admin"],
	"traits": {"logins": ["bob"]},
	"valid_after": at(-10 * minute),
	"valid_before": at(8 * hour),
	"issued_via": "local",
	"mfa_verified": false,
}

# put returns obj with field k set to v (replacing, not merging, any old value).
put(obj, k, v) := object.union(object.remove(obj, [k]), {k: v})

# alice returns Alice's root certificate with these root roles.
alice(roles) := put(alice_cert, "roles", roles)

# signed_by returns cert as if signed by the CA with this fingerprint, claiming cluster.
signed_by(cert, cluster, fingerprint) := put(cert, "signing_ca", {"cluster": cluster, "fingerprint": fingerprint})

node(name, labels) := {"name": name, "labels": labels}

stage_node := node("mongodb.stage.example.com", {"env": "stage"})

prod_node := node("mongodb.prod.example.com", {"env": "prod"})

seed_node := node("ip-172-3-2-205", {"env": "stage"})

ssh(cert, login, n) := {"action": "ssh.session", "cluster": leaf, "now": now, "cert": cert, "login": login, "node": n}

list_nodes(cert, n) := {"action": "node.list", "cluster": leaf, "now": now, "cert": cert, "node": n}

# Requests on the root about one of its leaves.
route(cert, cluster) := {"action": "cluster.route", "cluster": root, "now": now, "cert": cert, "remote_cluster": {"name": cluster, "labels": object.get(root_world.remote_clusters, [cluster, "labels"], {})}}

list_clusters(cert, cluster) := put(route(cert, cluster), "action", "cluster.list")

# Alice's certificate as the root sees it: signed by the root's own user CA.
root_alice(roles) := put(alice(roles), "traits", {"logins": ["visitor", "ubuntu"]})

# issue asks the root to sign a certificate for Alice with these roles and principals.
issue(roles, principals) := {
	"action": "cert.issue",
	"cluster": root,
	"now": now,
	"cert": {
		"type": "user",
		"signing_ca": {"cluster": root, "fingerprint": "SHA256:root-user"},
		"username": "alice",
		"principals": principals,
		"roles": roles,
		"traits": {"logins": ["visitor", "ubuntu"]},
		"valid_before": at(12 * hour),
	},
}

# ---- evaluation helpers ----------------------------------------------------------------------

# decision evaluates the public query data.tether.authz.decision in world.
decision(world, inp) := d if {
	w := object.union(empty_world, world)
	d := authz.decision with input as inp
		with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# allowed evaluates data.tether.authz.allow in world.
allowed(world, inp) := a if {
	w := object.union(empty_world, world)
	a := authz.allow with input as inp
		with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# staged evaluates the engine's two stages, identity then access, in world.
staged(world, inp) := d if {
	w := object.union(empty_world, world)
	d := access.decide(identity.of(inp), inp) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# identity_of evaluates data.tether.identity.of(inp) in world.
identity_of(world, inp) := id if {
	w := object.union(empty_world, world)
	id := identity.of(inp) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# trust_problems evaluates data.tether.certs.trust_problems(cert) in world.
trust_problems(world, cert) := ps if {
	w := object.union(empty_world, world)
	ps := certs.trust_problems(cert) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
}

# time_problems evaluates data.tether.certs.time_problems in world.
time_problems(world, after_ns, before_ns, at_ns) := ps if {
	ps := certs.time_problems(after_ns, before_ns, at_ns) with data.tether.cluster as world.cluster
}

# denied_as prefixes a session denial detail the way ssh.session reasons read.
denied_as(user, origin, login, detail) := sprintf("user %s@%s is not authorized to login as %s@%s: %s", [user, origin, login, leaf, detail])

# problems evaluates the access stage's problem list (the reasons of a denial) in world.
problems(world, inp) := ps if {
	w := object.union(empty_world, world)
	ps := access.problems(identity.of(inp), inp, access.now_ns(inp)) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# decide_full evaluates the access stage's plain statement of the rules, access.decide_full,
# which the public query uses for every action but ssh.session.
decide_full(world, inp) := d if {
	w := object.union(empty_world, world)
	d := access.decide_full(identity.of(inp), inp) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# fast evaluates the engine's fast form, access.session_fast, in world, with the identity
# and the clock (integer nanoseconds) where the engine puts them.
fast(world, inp) := r if {
	w := object.union(empty_world, world)
	id := identity_of(world, inp)
	now := time.parse_rfc3339_ns(inp.now)
	r := access.session_fast(id, data.tether.stage.now_ns) with input as inp
		with data.tether.stage.now_ns as now
		with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# allow_reasons evaluates access.allow_reasons (an allow's reasons, made off the hot path).
allow_reasons(world, inp) := r if {
	w := object.union(empty_world, world)
	id := identity_of(world, inp)
	r := access.allow_reasons(id) with input as inp
		with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# node_logins_name_free is node_logins when the engine proved the operator denies cannot
# read the node's name.
node_logins_name_free(world, inp, nodes) := node_logins_with(world, inp, nodes, true)

# node_logins evaluates access.node_logins for the certificate of inp and nodes in world.
node_logins(world, inp, nodes) := node_logins_with(world, inp, nodes, false)

# node_logins_with evaluates access.node_logins with name_free as the engine's proof.
node_logins_with(world, inp, nodes, name_free) := r if {
	w := object.union(empty_world, world)
	id := identity_of(world, inp)
	now := time.parse_rfc3339_ns(inp.now)
	r := access.node_logins(id, nodes, now, name_free) with input as inp
		with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
		with data.tether.remote_clusters as w.remote_clusters
		with data.tether.locks as w.locks
}

# fast_agrees: for an ssh.session with a clock, the fast form says what the public query
# says: true and the same reasons (from allow_reasons) for an allow, the same reasons for a
# denial. An empty denial (a session without a node) means "ask decide_full", which the
# engine does. Other requests do not take the fast form.
fast_allows(true)

fast_allows([])

fast_agrees(_, inp) if {
	object.get(inp, "action", "") != "ssh.session"
}

fast_agrees(_, inp) if {
	not access.now_ns(inp)
}

fast_agrees(world, inp) if {
	object.get(inp, "action", "") == "ssh.session"
	access.now_ns(inp)
	d := decision(world, inp)
	d.allow
	fast_allows(fast(world, inp))
	allow_reasons(world, inp) == d.reasons
}

fast_agrees(world, inp) if {
	object.get(inp, "action", "") == "ssh.session"
	access.now_ns(inp)
	d := decision(world, inp)
	not d.allow
	fast(world, inp) == d.reasons
}
