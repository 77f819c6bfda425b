# The identity stage (docs/ARCHITECTURE.md "Evaluation stages"): what a certificate is on
# this cluster — its local roles, traits, role conditions and the locks it may meet.
package tether.identity_test

import data.tether.certs
import data.tether.fixtures_test as fx
import data.tether.identity
import data.tether.labels
import data.tether.rolemap

# id is the identity of cert on the leaf of the seed guide.
id(cert) := fx.identity_of(fx.leaf_world, {"action": "ssh.session", "cluster": fx.leaf, "now": fx.now, "cert": cert})

test_local_certificate_keeps_its_roles if {
	i := id(fx.bob_cert)
	i.local
	i.origin == fx.leaf
	i.roles == ["admin"]
	i.notes == []
	i.problems == []
}

test_local_certificate_roles_are_not_mapped if {
	# "access" is a root role name; a leaf-signed certificate carries leaf role names.
	i := id(fx.put(fx.bob_cert, "roles", ["access", "admin"]))
	i.roles == ["admin"]
}

test_remote_certificate_roles_are_mapped if {
	i := id(fx.alice(["access"]))
	not i.local
	i.origin == fx.root
	i.cert_roles == ["access"]
	i.roles == ["visitor"]
	id(fx.alice(["full-access"])).roles == ["stage-access"]
	id(fx.alice(["team-auditor"])).roles == ["auditor"]
}

test_remote_roles_map_in_role_map_order if {
	id(fx.alice(["full-access", "access"])).roles == ["visitor", "stage-access"]
}

test_remote_role_no_rule_maps_grants_nothing if {
	i := id(fx.alice(["editor"]))
	i.roles == []
	i.notes == [`no roles mapped for user with remote roles ["editor"]`]
}

test_certificate_without_roles_maps_as_the_empty_role if {
	i := id(fx.alice([]))
	i.roles == []
	i.notes == [`no roles mapped for user with remote roles [""]`]
}

# Tether (Teleport issue #7356): a mapped role missing here is skipped, not fatal.
test_missing_mapped_role_is_skipped_with_a_note if {
	i := id(fx.alice(["access", "ghost"]))
	i.roles == ["visitor"]
	i.notes == [sprintf("role \"ghost-role\" does not exist on cluster %s; skipped", [fx.leaf])]
}

test_only_missing_mapped_roles_leave_no_roles if {
	i := id(fx.alice(["ghost"]))
	i.roles == []
	i.notes == [sprintf("role \"ghost-role\" does not exist on cluster %s; skipped", [fx.leaf])]
}

test_invalid_role_map_maps_nothing_and_says_why if {
	i := id(fx.signed_by(fx.alice(["access"]), fx.broken_root, "SHA256:broken-root-user"))
	i.roles == []
	i.notes == [
		sprintf(`role_map of trusted cluster %s is invalid: role_map[0]: local[0] must not be "*": a wildcard would grant every local role`, [fx.broken_root]),
		`no roles mapped for user with remote roles ["access"]`,
	]
}

# bundles.Shape stores rolemap.errors of each trusted cluster's rules (role_map_errors), so
# that a certificate does not pay for the validation; the answer is the same either way.
with_stored_errors(world) := object.union(world, {"trusted_clusters": {name: object.union(tc, {"role_map_errors": [e | some e in rolemap.errors(tc.role_map_rules)]}) |
	some name, tc in world.trusted_clusters
}})

test_stored_role_map_errors_give_the_same_identity if {
	stored := with_stored_errors(fx.leaf_world)
	some cert in [fx.alice(["access"]), fx.alice(["full-access", "access"]), fx.signed_by(fx.alice(["access"]), fx.broken_root, "SHA256:broken-root-user")]
	inp := {"action": "ssh.session", "cluster": fx.leaf, "now": fx.now, "cert": cert}
	fx.identity_of(stored, inp) == fx.identity_of(fx.leaf_world, inp)
}

test_stored_role_map_errors_are_read if {
	# A stored answer is what the identity uses (the engine checks it at load).
	w := object.union(fx.leaf_world, {"trusted_clusters": {fx.root: object.union(fx.leaf_world.trusted_clusters[fx.root], {"role_map_errors": ["stored"]})}})
	i := fx.identity_of(w, {"action": "ssh.session", "cluster": fx.leaf, "now": fx.now, "cert": fx.alice(["access"])})
	i.roles == []
	i.notes[0] == sprintf("role_map of trusted cluster %s is invalid: stored", [fx.root])
}

test_stale_role_map_errors_are_named if {
	count(identity.derived_stale) == 0 with data.tether.trusted_clusters as with_stored_errors(fx.leaf_world).trusted_clusters
	count(identity.derived_stale) == 0 with data.tether.trusted_clusters as fx.leaf_world.trusted_clusters
	w := object.union(fx.leaf_world, {"trusted_clusters": {fx.broken_root: object.union(fx.leaf_world.trusted_clusters[fx.broken_root], {"role_map_errors": []})}})
	identity.derived_stale == {sprintf("trusted_clusters.%s.role_map_errors", [fx.broken_root])} with data.tether.trusted_clusters as w.trusted_clusters
}

# bundles.Shape also stores each selector key's literal matcher (labels.literal_matcher of
# its values), so a certificate only expands the templates.
with_literals(sel) := sel if sel.wildcard

with_literals(sel) := object.union(sel, {"keys": {k: object.union(s, {"literal": labels.literal_matcher(s.values)}) | some k, s in sel.keys}}) if {
	not sel.wildcard
}

stored_literal_roles(roles) := {name: object.union(role, {c: object.union(role[c], {f: with_literals(role[c][f]) | some f in ["node_labels", "cluster_labels"]; role[c][f]}) |
	some c in ["allow", "deny"]
	role[c]
}) |
	some name, role in roles
}

test_stored_literals_give_the_same_identity if {
	stored := object.union(fx.leaf_world, {"roles": stored_literal_roles(fx.leaf_world.roles)})
	stored.roles != fx.leaf_world.roles
	some cert in [fx.alice(["access"]), fx.alice(["full-access", "access"]), fx.alice(["team-auditor"]), fx.bob_cert]
	inp := {"action": "ssh.session", "cluster": fx.leaf, "now": fx.now, "cert": cert}
	fx.identity_of(stored, inp) == fx.identity_of(fx.leaf_world, inp)
}

test_stale_literals_are_named if {
	roles := stored_literal_roles(fx.leaf_world.roles)
	count(identity.derived_stale) == 0 with data.tether.roles as roles
	some name, role in roles
	some k, s in role.allow.node_labels.keys
	edited := object.union(roles, {name: {"allow": {"node_labels": {"keys": {k: {"literal": object.union(s.literal, {"any": true})}}}}}})
	identity.derived_stale == {sprintf("roles.%s.allow.node_labels.keys.%s.literal", [name, k])} with data.tether.roles as edited
}

# bundles.Shape also stores each role's static part (identity.role_derived: literal logins,
# login templates, selectors' static parts) as the role's "derived", and each role_map's
# one regex of all its patterns (rolemap.any_pattern_of) as role_map.any_pattern.
stored_derived_world(w) := object.union(w, {
	"cas": stored_cas(w),
	"roles": {name: object.union(role, {"derived": identity.role_derived(role)}) | some name, role in w.roles},
	"trusted_clusters": {name: object.union(tc, {"role_map": {"any_pattern": rolemap.any_pattern_of(tc.role_map.patterns)}}) |
		some name, tc in w.trusted_clusters
		tc.role_map
	},
})

stored_cas(w) := cas if {
	cas := {fp: object.union(ca, {"derived": certs.ca_derived(ca)}) | some fp, ca in w.cas} with data.tether.cluster as w.cluster
		with data.tether.trusted_clusters as w.trusted_clusters
}

derived_certs := [
	fx.alice(["access"]), fx.alice(["full-access", "access"]), fx.alice(["team-auditor"]), fx.bob_cert,
	fx.signed_by(fx.alice(["access"]), fx.leaf, "SHA256:leaf-host"), fx.signed_by(fx.alice(["access"]), fx.stranger, "SHA256:stranger-user"),
	fx.signed_by(fx.alice(["access"]), fx.broken_root, "SHA256:broken-root-user"),
	fx.put(fx.alice(["full-access"]), "principals", ["visitor", "ubuntu", "bad login"]),
]

test_stored_role_derived_gives_the_same_identity if {
	stored := stored_derived_world(fx.leaf_world)
	stored.roles != fx.leaf_world.roles
	every cert in derived_certs {
		inp := {"action": "ssh.session", "cluster": fx.leaf, "now": fx.now, "cert": cert}
		fx.identity_of(stored, inp) == fx.identity_of(fx.leaf_world, inp)
	}
}

test_role_derived_splits_literals_from_templates if {
	d := identity.role_derived(fx.role({
		"logins": [fx.lit("visitor"), fx.lit("bad login"), fx.internal("logins")],
		"node_labels": fx.tsel({"env": [fx.lit("stage")], "team": [fx.lit("db"), fx.external("team")]}),
		"deny_logins": [fx.lit("bad login")],
	}))
	d.allow.logins == {"visitor": true}
	d.allow.login_templates == [fx.internal("logins")]
	d.allow.node.fixed == {"env": {"any": false, "exact": {"stage": true}, "regex": "", "invalid": false}}
	d.allow.node.fixed_res == {"env": "^(?:stage)$"}
	object.keys(d.allow.node.templated) == {"team"}
	d.deny.logins == {"bad login": true}
	not d.allow.has_cluster_labels
}

test_stale_role_derived_is_named if {
	stored := stored_derived_world(fx.leaf_world)
	count(identity.derived_stale) == 0 with data.tether.roles as stored.roles
	edited := object.union(stored.roles, {"visitor": {"derived": {"allow": {"logins": {"root": true}}}}})
	identity.derived_stale == {"roles.visitor.derived"} with data.tether.roles as edited
}

test_stale_ca_derived_is_named if {
	w := fx.leaf_world
	stored := stored_derived_world(w)
	count(identity.derived_stale) == 0 with data.tether.cas as stored.cas
		with data.tether.cluster as w.cluster
		with data.tether.trusted_clusters as w.trusted_clusters

	# The leaf's host CA made to look like a user CA.
	edited := object.union(stored.cas, {"SHA256:leaf-host": {"derived": {"type_problems": []}}})
	identity.derived_stale == {"cas.SHA256:leaf-host.derived"} with data.tether.cas as edited
		with data.tether.cluster as w.cluster
		with data.tether.trusted_clusters as w.trusted_clusters
}

test_stale_any_pattern_is_named if {
	stored := stored_derived_world(fx.leaf_world)
	count(identity.derived_stale) == 0 with data.tether.trusted_clusters as stored.trusted_clusters
	edited := object.union(stored.trusted_clusters, {fx.root: {"role_map": {"any_pattern": "^$"}}})
	identity.derived_stale == {sprintf("trusted_clusters.%s.role_map.any_pattern", [fx.root])} with data.tether.trusted_clusters as edited
}

test_certificate_of_an_unknown_cluster_maps_nothing if {
	i := id(fx.signed_by(fx.alice(["access"]), fx.stranger, "SHA256:stranger-user"))
	i.roles == []
}

# ---- traits ------------------------------------------------------------------------------

test_remote_certificate_logins_trait_is_its_principals if {
	cert := fx.put(fx.put(fx.alice_cert, "principals", ["visitor", "ubuntu"]), "traits", {"logins": ["root"], "groups": ["sre"]})
	id(cert).traits == {"logins": ["visitor", "ubuntu"], "groups": ["sre"]}
}

test_remote_certificate_gets_a_logins_trait_from_its_principals if {
	id(object.remove(fx.alice_cert, ["traits"])).traits == {"logins": ["visitor"]}
}

test_local_certificate_keeps_its_traits if {
	id(fx.put(fx.bob_cert, "traits", {"logins": ["bob", "deploy"]})).traits == {"logins": ["bob", "deploy"]}
}

test_templates_expand_with_the_replaced_traits if {
	i := id(fx.put(fx.alice(["full-access"]), "principals", ["visitor", "ubuntu"]))
	i.allow[0].logins == {"visitor": true, "ubuntu": true}
}

test_logins_that_are_not_unix_user_names_are_dropped if {
	cert := fx.put(fx.alice(["full-access"]), "principals", ["visitor", "bad login", "-dash", "x/y", concat("", ["a" | some _ in numbers.range(1, 33)])])
	id(cert).allow[0].logins == {"visitor": true}
}

# Tether (issue 7, point 9): a login that comes from a trait is a literal name. An identity
# provider asserting "*" (or a regex) as a login gets no wildcard login: it is not a valid
# Unix name, so it is dropped, and no other login matches it.
test_trait_login_star_is_no_wildcard_login if {
	cert := fx.put(fx.put(fx.bob_cert, "roles", ["admin-by-trait"]), "traits", {"logins": ["*", "^.*$", ".*"]})
	w := fx.with_roles(fx.leaf_world, {"admin-by-trait": fx.role({"logins": [fx.internal("logins")], "node_labels": fx.wildcard})})
	i := fx.identity_of(w, {"cluster": fx.leaf, "cert": fx.put(cert, "principals", ["*", "root", "bob"])})
	i.allow[0].logins == {}
	every login in ["*", "root", "bob", "^.*$"] {
		not fx.decision(w, fx.ssh(fx.put(cert, "principals", ["*", "root", "bob", "^.*$"]), login, fx.prod_node)).allow
	}
}

test_deny_logins_expand_with_the_traits if {
	w := fx.with_roles(fx.leaf_world, {"visitor": fx.role({"deny_logins": [fx.internal("groups")]})})
	i := fx.identity_of(w, {"cluster": fx.leaf, "cert": fx.alice(["access"])})
	i.deny[0].logins == {"sre": true}
}

# ---- what the identity carries -------------------------------------------------------------

test_identity_carries_the_certificate_facts if {
	i := id(fx.put(fx.alice_cert, "mfa_verified", true))
	i.user == "alice"
	i.principals == {"visitor": true}
	i.mfa_verified
	i.issued_via == "oidc/okta"
	i.valid_after_ns == fx.now_ns - (45 * fx.minute)
	i.valid_before_ns == (fx.now_ns + (12 * fx.hour)) - (44 * fx.minute)
}

test_identity_defaults_for_absent_fields if {
	i := id({"type": "user", "signing_ca": {"cluster": fx.leaf, "fingerprint": "SHA256:leaf-user"}})
	i.user == ""
	i.principals == {}
	not i.mfa_verified
	i.issued_via == ""
	i.valid_after_ns == 0
	i.valid_before_ns == 0
	i.roles == []
	i.notes == []
}

test_identity_problems_include_trust_problems if {
	id(fx.signed_by(fx.alice_cert, fx.root, "SHA256:forged")).problems == [sprintf("certificate is signed by an unknown certificate authority SHA256:forged claiming cluster %q", [fx.root])]
}

test_identity_problems_include_a_cluster_mismatch if {
	i := fx.identity_of(fx.leaf_world, {"cluster": "leaf-west.example.com", "cert": fx.alice_cert})
	i.problems == [sprintf("decision asked for cluster %q but this policy bundle belongs to %q", ["leaf-west.example.com", fx.leaf])]
}

test_grants_describe_each_roles_allow_conditions if {
	i := fx.identity_of(fx.root_world, {"cluster": fx.root, "cert": fx.root_alice(["access", "demo-cluster-access"])})
	[g.role | some g in i.allow] == ["access", "demo-cluster-access"]
	i.allow[0].logins == {"visitor": true, "ubuntu": true}
	i.allow[0].node.wildcard
	not i.allow[0].has_cluster_labels
	i.allow[1].has_cluster_labels
	i.allow[1].cluster.keys.env.exact == {"demo": true}
}

test_requirements_collect_each_roles_options if {
	cert := fx.alice(["access", "mfa", "short-lived", "okta"])
	i := id(cert)
	i.requirements.mfa == ["mfa-required"]
	i.requirements.max_age == [["short-lived", fx.hour]]
	i.requirements.connectors == [["okta-only", ["oidc/okta"]]]

	# One TTL per role: Teleport's 30 hours for roles that set none.
	count(i.requirements.max_session_ttl_ns) == count(i.roles)
	every ttl in i.requirements.max_session_ttl_ns {
		ttl == 30 * fx.hour
	}
}

test_requirements_collect_max_session_ttls if {
	i := fx.identity_of(fx.root_world, {"cluster": fx.root, "cert": fx.root_alice(["access", "ttl-8h", "ttl-2h"])})
	i.requirements.max_session_ttl_ns == [30 * fx.hour, 8 * fx.hour, 2 * fx.hour]
}

# Teleport's options.max_connections: the smallest limit among the identity's roles; 0 (no
# limit) when none sets one; a role without the option (a bundle shaped before it) sets none.
test_requirements_max_connections_is_the_smallest_limit if {
	roles := object.union(fx.root_world.roles, {
		"three": fx.role({"logins": [fx.lit("alice")], "options": {"max_connections": 3}}),
		"two": fx.role({"logins": [fx.lit("alice")], "options": {"max_connections": 2}}),
		"none": fx.role({"logins": [fx.lit("alice")]}),
	})
	w := fx.with_roles(fx.root_world, roles)
	i := fx.identity_of(w, {"cluster": fx.root, "cert": fx.root_alice(["three", "none", "two"])})
	i.requirements.max_connections == 2
	j := fx.identity_of(w, {"cluster": fx.root, "cert": fx.root_alice(["none", "access"])})
	j.requirements.max_connections == 0
}

# ---- operators' grants ---------------------------------------------------------------------

test_custom_grants_add_existing_roles_only if {
	i := id(fx.alice(["access"])) with data.tether.custom.grants as {"auditor", "no-such-role", "visitor"}
	i.roles == ["visitor", "auditor"]
}

test_custom_grants_come_after_mapped_roles_in_order if {
	i := id(fx.alice(["access"])) with data.tether.custom.grants as {"okta-only", "auditor"}
	i.roles == ["visitor", "auditor", "okta-only"]
}

test_custom_grants_give_roles_to_a_certificate_nothing_maps if {
	i := id(fx.alice(["editor"])) with data.tether.custom.grants as {"auditor"}
	i.roles == ["auditor"]
}

test_no_custom_module_grants_nothing if {
	id(fx.alice(["access"])).roles == ["visitor"]
}

# ---- locks -------------------------------------------------------------------------------

test_identity_locks_are_those_its_user_roles_and_origin_meet if {
	locks := [
		fx.lock("user", {"user": "alice"}, "", 0),
		fx.lock("other-user", {"user": "bob"}, "", 0),
		fx.lock("local-role", {"role": "visitor"}, "", 0),
		fx.lock("remote-role", {"role": "access"}, "", 0),
		fx.lock("other-role", {"role": "auditor"}, "", 0),
		fx.lock("origin", {"remote_cluster": fx.root}, "", 0),
		fx.lock("other-origin", {"remote_cluster": fx.off_root}, "", 0),
		fx.lock("login", {"login": "visitor"}, "", 0),
		fx.lock("node", {"node": "mongodb.prod.example.com"}, "", 0),
		fx.lock("user-and-login", {"user": "alice", "login": "root"}, "", 0),
		fx.lock("other-user-and-login", {"user": "bob", "login": "root"}, "", 0),
	]
	i := fx.identity_of(fx.with_locks(fx.leaf_world, locks), {"cluster": fx.leaf, "cert": fx.alice(["access"])})
	[l.name | some l in i.locks] == ["user", "local-role", "remote-role", "origin", "login", "node", "user-and-login"]
}

# A root's lock on one of its roles, replicated to a leaf, reaches the root's users who hold
# that role at the root (their certificate's roles), not those the leaf maps to a leaf role
# of the same name (bundles ship its role target as root_role).
test_replicated_root_role_locks_read_the_certificates_roles if {
	locks := [
		fx.lock("root-access", {"remote_cluster": fx.root, "root_role": "access"}, "", 0),
		fx.lock("root-visitor", {"remote_cluster": fx.root, "root_role": "visitor"}, "", 0),
		fx.lock("other-root-access", {"remote_cluster": fx.off_root, "root_role": "access"}, "", 0),
	]
	i := fx.identity_of(fx.with_locks(fx.leaf_world, locks), {"cluster": fx.leaf, "cert": fx.alice(["access"])})
	i.roles == ["visitor"]
	[l.name | some l in i.locks] == ["root-access"]
}

# A root's lock on one of its own nodes, replicated to a leaf (bundles ship its node target
# as root_node), is held by no identity: no request at the leaf is for the root's nodes.
test_replicated_root_node_locks_lock_nothing_here if {
	locks := [
		fx.lock("root-db1", {"remote_cluster": fx.root, "root_node": "db1"}, "", 0),
		fx.lock("leaf-db1", {"remote_cluster": fx.root, "node": "db1"}, "", 0),
	]
	i := fx.identity_of(fx.with_locks(fx.leaf_world, locks), {"cluster": fx.leaf, "cert": fx.alice(["access"])})
	[l.name | some l in i.locks] == ["leaf-db1"]
}

test_identity_locks_are_empty_without_locks if {
	w := object.remove(fx.leaf_world, ["locks"])
	i := identity_without_locks(w)
	i.locks == []
}

identity_without_locks(w) := i if {
	i := data.tether.identity.of({"cluster": fx.leaf, "cert": fx.alice_cert}) with data.tether.cluster as w.cluster
		with data.tether.cas as w.cas
		with data.tether.trusted_clusters as w.trusted_clusters
		with data.tether.roles as w.roles
}
