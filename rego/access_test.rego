# The access stage (DESIGN §3a "Access to a node", "Labels", §5): per-request rules on top
# of an identity — logins, node labels, cluster labels, locks, requirements, operator denies.
# Decisions are asked through the public query, data.tether.authz.decision.
package tether.access_test

import data.tether.fixtures_test as fx

leaf_decision(inp) := fx.decision(fx.leaf_world, inp)

root_decision(inp) := fx.decision(fx.root_world, inp)

# ---- ssh.session: the seed guide -----------------------------------------------------------

test_seed_access_maps_to_visitor_allowed_as_visitor if {
	d := leaf_decision(fx.ssh(fx.alice(["access"]), "visitor", fx.seed_node))
	d.allow
	d.roles == ["visitor"]
	d.reasons == [`role "visitor" allows login "visitor" on node "ip-172-3-2-205"`]
}

test_seed_visitor_allowed_on_every_node if {
	every n in [fx.seed_node, fx.prod_node, fx.node("bare", {})] {
		leaf_decision(fx.ssh(fx.alice(["access"]), "visitor", n)).allow
	}
}

test_seed_alice_stage_access_allowed_on_stage if {
	d := leaf_decision(fx.ssh(fx.alice(["full-access"]), "visitor", fx.stage_node))
	d.allow
	d.roles == ["stage-access"]
}

test_seed_alice_stage_access_denied_on_prod if {
	d := leaf_decision(fx.ssh(fx.alice(["full-access"]), "visitor", fx.prod_node))
	not d.allow
	d.roles == ["stage-access"]
	every r in d.reasons {
		startswith(r, sprintf("user alice@%s is not authorized to login as visitor@%s: ", [fx.root, fx.leaf]))
	}
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `no role's node_labels match node "mongodb.prod.example.com"`)]
}

test_login_not_in_principals_is_denied if {
	# bob's admin role allows root everywhere, but his certificate names only bob.
	d := leaf_decision(fx.ssh(fx.put(fx.bob_cert, "principals", ["bob"]), "root", fx.prod_node))
	not d.allow
	d.reasons == [fx.denied_as("bob", fx.leaf, "root", `login "root" is not a principal of the certificate`)]
}

test_login_principal_of_a_local_certificate_is_allowed if {
	leaf_decision(fx.ssh(fx.bob_cert, "root", fx.prod_node)).allow
	leaf_decision(fx.ssh(fx.bob_cert, "bob", fx.prod_node)).allow
}

test_login_must_be_allowed_by_a_role if {
	d := leaf_decision(fx.ssh(fx.put(fx.alice(["access"]), "principals", ["visitor", "ubuntu"]), "ubuntu", fx.stage_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "ubuntu", `no role allows login "ubuntu" on node "mongodb.stage.example.com" (roles ["visitor"])`)]
}

test_login_and_node_labels_must_come_from_the_same_role if {
	# visitor selects every node but only for visitor; stage-access allows ubuntu on stage only.
	cert := fx.put(fx.alice(["access", "full-access"]), "principals", ["visitor", "ubuntu"])
	d := leaf_decision(fx.ssh(cert, "ubuntu", fx.prod_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "ubuntu", `no role allows login "ubuntu" on node "mongodb.prod.example.com" (roles ["visitor", "stage-access"])`)]
	leaf_decision(fx.ssh(cert, "ubuntu", fx.stage_node)).allow
}

test_deny_logins_beat_allow if {
	d := leaf_decision(fx.ssh(fx.alice(["access", "deny-visitor"]), "visitor", fx.stage_node))
	not d.allow
	d.roles == ["visitor", "no-visitor"]
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `login "visitor" is denied by role "no-visitor"`)]
}

test_deny_logins_apply_on_every_node if {
	every n in [fx.stage_node, fx.prod_node, fx.node("bare", {})] {
		not leaf_decision(fx.ssh(fx.alice(["access", "deny-visitor"]), "visitor", n)).allow
	}
}

test_deny_logins_of_the_same_role_beat_its_allow if {
	# stage-access allows {{internal.logins}} but denies root.
	cert := fx.put(fx.alice(["full-access"]), "principals", ["visitor", "root"])
	d := leaf_decision(fx.ssh(cert, "root", fx.stage_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "root", `login "root" is denied by role "stage-access"`)]
}

test_deny_node_labels_beat_allow if {
	d := leaf_decision(fx.ssh(fx.alice(["access", "no-prod"]), "visitor", fx.prod_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `node "mongodb.prod.example.com" is denied by role "no-prod" (deny.node_labels)`)]
	leaf_decision(fx.ssh(fx.alice(["access", "no-prod"]), "visitor", fx.stage_node)).allow
}

test_deny_node_labels_wildcard_denies_every_node if {
	w := fx.with_roles(fx.leaf_world, {"no-prod": fx.role({"deny_node_labels": fx.wildcard})})
	every n in [fx.stage_node, fx.node("bare", {})] {
		d := fx.decision(w, fx.ssh(fx.alice(["access", "no-prod"]), "visitor", n))
		not d.allow
		d.reasons == [fx.denied_as("alice", fx.root, "visitor", sprintf("node %q is denied by role \"no-prod\" (deny.node_labels)", [n.name]))]
	}
}

test_star_node_label_value_needs_the_key if {
	w := fx.with_roles(fx.leaf_world, {"visitor": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.sel({"env": ["*"]})})})
	fx.decision(w, fx.ssh(fx.alice(["access"]), "visitor", fx.prod_node)).allow
	d := fx.decision(w, fx.ssh(fx.alice(["access"]), "visitor", fx.node("bare", {})))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `no role's node_labels match node "bare"`)]
}

test_deny_node_labels_deny_every_login if {
	w := fx.with_roles(fx.leaf_world, {"no-prod": fx.role({"deny_node_labels": fx.sel({"env": ["prod"]}), "logins": [fx.lit("ubuntu")], "node_labels": fx.wildcard})})
	cert := fx.put(fx.alice(["access", "no-prod"]), "principals", ["visitor", "ubuntu"])
	every login in ["visitor", "ubuntu"] {
		not fx.decision(w, fx.ssh(cert, login, fx.prod_node)).allow
	}
}

test_deny_node_labels_with_a_broken_regex_fail_closed if {
	w := fx.with_roles(fx.leaf_world, {"no-prod": fx.role({"deny_node_labels": fx.tsel({"env": [fx.lit("^($")]})})})
	d := fx.decision(w, fx.ssh(fx.alice(["access", "no-prod"]), "visitor", fx.stage_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `node "mongodb.stage.example.com" is denied by role "no-prod" (deny.node_labels)`)]
}

test_every_problem_is_a_reason if {
	cert := fx.alice(["access", "deny-visitor", "no-prod"])
	d := leaf_decision(fx.ssh(cert, "ubuntu", fx.prod_node))
	d.reasons == [
		fx.denied_as("alice", fx.root, "ubuntu", `login "ubuntu" is not a principal of the certificate`),
		fx.denied_as("alice", fx.root, "ubuntu", `node "mongodb.prod.example.com" is denied by role "no-prod" (deny.node_labels)`),
	]
}

test_root_role_no_rule_maps_grants_nothing if {
	d := leaf_decision(fx.ssh(fx.alice(["editor"]), "visitor", fx.stage_node))
	not d.allow
	d.roles == []
	d.reasons[0] == `no roles mapped for user with remote roles ["editor"]`
	fx.denied_as("alice", fx.root, "visitor", `no role's node_labels match node "mongodb.stage.example.com"`) in d.reasons
}

test_local_certificate_without_roles_is_denied if {
	d := leaf_decision(fx.ssh(fx.put(fx.bob_cert, "roles", []), "bob", fx.stage_node))
	not d.allow
	d.reasons[0] == "the certificate grants no roles on this cluster"
}

test_invalid_role_map_denies_with_the_validation_message if {
	cert := fx.signed_by(fx.alice(["access"]), fx.broken_root, "SHA256:broken-root-user")
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.reasons[0] == sprintf(`role_map of trusted cluster %s is invalid: role_map[0]: local[0] must not be "*": a wildcard would grant every local role`, [fx.broken_root])
}

test_missing_mapped_role_is_skipped_and_the_note_kept_in_an_allow if {
	d := leaf_decision(fx.ssh(fx.alice(["access", "ghost"]), "visitor", fx.stage_node))
	d.allow
	d.roles == ["visitor"]
	d.reasons == [
		`role "visitor" allows login "visitor" on node "mongodb.stage.example.com"`,
		sprintf(`role "ghost-role" does not exist on cluster %s; skipped`, [fx.leaf]),
	]
}

test_only_missing_mapped_roles_deny_with_the_note if {
	d := leaf_decision(fx.ssh(fx.alice(["ghost"]), "visitor", fx.stage_node))
	not d.allow
	d.reasons[0] == sprintf(`role "ghost-role" does not exist on cluster %s; skipped`, [fx.leaf])
}

test_custom_grants_can_allow if {
	d := leaf_decision(fx.ssh(fx.put(fx.alice(["editor"]), "principals", ["auditor"]), "auditor", fx.stage_node)) with data.tether.custom.grants as {"auditor"}
	d.allow
	d.roles == ["auditor"]
}

# ---- certificate checks in a decision ----------------------------------------------------

test_untrusted_signer_is_denied if {
	d := leaf_decision(fx.ssh(fx.signed_by(fx.alice(["access"]), fx.root, "SHA256:forged"), "visitor", fx.stage_node))
	not d.allow
	d.reasons == [sprintf("certificate is signed by an unknown certificate authority SHA256:forged claiming cluster %q", [fx.root])]
}

test_host_certificate_is_denied if {
	d := leaf_decision(fx.ssh(fx.put(fx.alice(["access"]), "type", "host"), "visitor", fx.stage_node))
	not d.allow
	d.reasons == ["certificate is a host certificate, not a user certificate"]
}

test_disabled_trust_denies_its_certificates if {
	cert := fx.signed_by(fx.alice(["access"]), fx.off_root, "SHA256:off-root-user")
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	sprintf("trust with cluster %s is disabled", [fx.off_root]) in d.reasons
}

test_expired_certificate_is_denied if {
	cert := fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.second))
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.reasons == [sprintf("certificate expired at %s", [fx.at(0 - fx.second)])]
}

test_not_yet_valid_certificate_is_denied if {
	cert := fx.put(fx.alice(["access"]), "valid_after", fx.at(2 * fx.minute))
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.reasons == [sprintf("certificate is not valid before %s", [fx.at(2 * fx.minute)])]
}

test_certificate_is_not_valid_before_valid_after if {
	cert := fx.put(fx.alice(["access"]), "valid_after", fx.at(1))
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.reasons == [sprintf("certificate is not valid before %s", [fx.at(1)])]
	d.expires_at == fx.at(1)
	leaf_decision(fx.ssh(fx.put(cert, "valid_after", fx.now), "visitor", fx.stage_node)).allow
}

test_certificate_valid_within_an_explicit_skew_is_allowed if {
	cert := fx.put(fx.alice(["access"]), "valid_after", fx.at(fx.minute))
	w := object.union(fx.leaf_world, {"cluster": {"max_clock_skew_ns": fx.minute}})
	fx.decision(w, fx.ssh(cert, "visitor", fx.stage_node)).allow
	fx.staged(w, fx.ssh(cert, "visitor", fx.stage_node)) == fx.decision(w, fx.ssh(cert, "visitor", fx.stage_node))
}

test_cluster_mismatch_is_denied if {
	inp := fx.put(fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node), "cluster", "leaf-west.example.com")
	d := leaf_decision(inp)
	not d.allow
	d.reasons == [sprintf("decision asked for cluster %q but this policy bundle belongs to %q", ["leaf-west.example.com", fx.leaf])]
}

test_missing_cluster_is_denied if {
	d := leaf_decision(object.remove(fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node), ["cluster"]))
	not d.allow
	d.reasons == [sprintf("decision asked for cluster \"\" but this policy bundle belongs to %q", [fx.leaf])]
}

# ---- locks -------------------------------------------------------------------------------

locked(locks, inp) := fx.decision(fx.with_locks(fx.leaf_world, locks), inp)

alice_on_stage := fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node)

test_lock_on_the_user_denies if {
	d := locked([fx.lock("l-user", {"user": "alice"}, "compromised laptop", 0)], alice_on_stage)
	not d.allow
	d.reasons == [`locked by lock "l-user": compromised laptop`]
}

test_lock_on_another_user_does_not_deny if {
	locked([fx.lock("l-user", {"user": "bob"}, "", 0)], alice_on_stage).allow
}

test_lock_on_a_mapped_role_denies if {
	d := locked([fx.lock("l-role", {"role": "visitor"}, "", 0)], alice_on_stage)
	not d.allow
	d.reasons == [`locked by lock "l-role"`]
}

test_lock_on_a_remote_role_denies if {
	not locked([fx.lock("l-role", {"role": "access"}, "", 0)], alice_on_stage).allow
}

test_lock_on_the_login_denies_that_login_only if {
	locks := [fx.lock("l-login", {"login": "visitor"}, "", 0)]
	d := locked(locks, alice_on_stage)
	not d.allow
	d.reasons == [`locked by lock "l-login"`]
	locked(locks, fx.ssh(fx.bob_cert, "bob", fx.stage_node)).allow
}

test_lock_on_the_node_denies_that_node_only if {
	locks := [fx.lock("l-node", {"node": "mongodb.stage.example.com"}, "maintenance", 0)]
	d := locked(locks, alice_on_stage)
	not d.allow
	d.reasons == [`locked by lock "l-node": maintenance`]
	locked(locks, fx.ssh(fx.alice(["access"]), "visitor", fx.prod_node)).allow
	not locked(locks, fx.list_nodes(fx.alice(["access"]), fx.stage_node)).allow
}

# DESIGN §5.8: a leaf-local lock cuts a compromised root off without the root's help.
test_lock_on_the_remote_cluster_denies_its_certificates if {
	locks := [fx.lock("l-root", {"remote_cluster": fx.root}, "root compromised", 0)]
	d := locked(locks, alice_on_stage)
	not d.allow
	d.reasons == [`locked by lock "l-root": root compromised`]
	locked(locks, fx.ssh(fx.bob_cert, "bob", fx.stage_node)).allow
}

test_lock_targets_must_all_match if {
	locks := [fx.lock("l-both", {"user": "alice", "node": "mongodb.prod.example.com"}, "", 0)]
	locked(locks, alice_on_stage).allow
	not locked(locks, fx.ssh(fx.alice(["access"]), "visitor", fx.prod_node)).allow
}

test_locks_beat_every_allow if {
	d := locked([fx.lock("l-user", {"user": "bob"}, "", 0)], fx.ssh(fx.bob_cert, "root", fx.prod_node))
	not d.allow
	d.roles == ["admin"]
}

test_lock_until_a_future_time_denies if {
	not locked([fx.lock("l-user", {"user": "alice"}, "", fx.now_ns + fx.second)], alice_on_stage).allow
}

test_expired_lock_does_not_deny if {
	locked([fx.lock("l-user", {"user": "alice"}, "", fx.now_ns - fx.second)], alice_on_stage).allow
}

test_lock_expiring_now_no_longer_denies if {
	locked([fx.lock("l-user", {"user": "alice"}, "", fx.now_ns)], alice_on_stage).allow
}

test_lock_expiry_becomes_expires_at if {
	d := locked([fx.lock("l-user", {"user": "alice"}, "", fx.now_ns + (10 * fx.minute))], alice_on_stage)
	not d.allow
	d.expires_at == fx.at(10 * fx.minute)
}

# ---- per-role requirements (DESIGN §5.8) ---------------------------------------------------

test_mfa_required_by_a_role_denies_a_certificate_without_mfa if {
	d := leaf_decision(fx.ssh(fx.alice(["mfa"]), "visitor", fx.stage_node))
	not d.allow
	d.reasons == [`role "mfa-required" requires MFA: the certificate was not issued with MFA`]
}

test_mfa_required_by_a_role_allows_a_certificate_with_mfa if {
	leaf_decision(fx.ssh(fx.put(fx.alice(["mfa"]), "mfa_verified", true), "visitor", fx.stage_node)).allow
}

test_mfa_required_by_any_role_applies_to_every_login if {
	not leaf_decision(fx.ssh(fx.alice(["access", "mfa"]), "visitor", fx.stage_node)).allow
}

test_mfa_is_not_required_to_list_nodes if {
	leaf_decision(fx.list_nodes(fx.alice(["mfa"]), fx.stage_node)).allow
}

test_max_cert_age_denies_an_older_certificate if {
	cert := fx.put(fx.alice(["short-lived"]), "valid_after", fx.at(-2 * fx.hour))
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.reasons == [`role "short-lived" accepts certificates at most 3600s old; this one is 7200s old`]
}

test_max_cert_age_allows_a_younger_certificate if {
	d := leaf_decision(fx.ssh(fx.alice(["short-lived"]), "visitor", fx.stage_node))
	d.allow
}

test_max_cert_age_allows_a_certificate_exactly_that_old if {
	cert := fx.put(fx.alice(["short-lived"]), "valid_after", fx.at(0 - fx.hour))
	leaf_decision(fx.ssh(cert, "visitor", fx.stage_node)).allow
}

test_max_cert_age_becomes_expires_at if {
	# Alice's certificate is 45 minutes old: the 1h limit comes before valid_before.
	d := leaf_decision(fx.ssh(fx.alice(["short-lived"]), "visitor", fx.stage_node))

	# A certificate exactly an hour old is still accepted; the answer flips 1ns later.
	d.expires_at == fx.at((15 * fx.minute) + 1)
}

test_require_connectors_allows_a_listed_connector if {
	leaf_decision(fx.ssh(fx.alice(["okta"]), "visitor", fx.stage_node)).allow
}

test_require_connectors_denies_another_connector if {
	d := leaf_decision(fx.ssh(fx.put(fx.alice(["okta"]), "issued_via", "github/gh"), "visitor", fx.stage_node))
	not d.allow
	d.reasons == [`role "okta-only" requires a certificate issued via one of ["oidc/okta"]; this one was issued via "github/gh"`]
}

test_require_connectors_denies_an_unknown_connector if {
	not leaf_decision(fx.ssh(object.remove(fx.alice(["okta"]), ["issued_via"]), "visitor", fx.stage_node)).allow
}

# ---- operators' modules --------------------------------------------------------------------

test_operator_deny_beats_allow if {
	d := leaf_decision(alice_on_stage) with data.tether.custom.deny as {"no prod on fridays"}
	not d.allow
	d.roles == ["visitor"]
	d.reasons == ["denied by operator policy: no prod on fridays"]
}

test_no_operator_deny_keeps_the_allow if {
	leaf_decision(alice_on_stage).allow with data.tether.custom.deny as set()
}

# ---- actions and the clock ----------------------------------------------------------------

test_unknown_action_is_denied if {
	d := leaf_decision(fx.put(alice_on_stage, "action", "ssh.exec"))
	not d.allow
	d.reasons == [`unknown action "ssh.exec"`]
}

test_missing_action_is_denied if {
	d := leaf_decision(object.remove(alice_on_stage, ["action"]))
	not d.allow
	d.reasons == [`unknown action ""`]
}

test_missing_now_is_denied if {
	d := leaf_decision(object.remove(alice_on_stage, ["now"]))
	d == {
		"allow": false,
		"roles": ["visitor"],
		"reasons": ["input.now must be an RFC 3339 time, got null"],
		"expires_at": null,
	}
}

test_invalid_now_is_denied if {
	d := leaf_decision(fx.put(alice_on_stage, "now", "yesterday"))
	not d.allow
	d.reasons == ["input.now must be an RFC 3339 time, got yesterday"]
	d.expires_at == null
	not leaf_decision(fx.put(alice_on_stage, "now", 1764000000)).allow
}

test_missing_now_is_denied_for_every_action if {
	every inp in [
		fx.list_nodes(fx.alice(["access"]), fx.stage_node),
		fx.issue(["access"], ["visitor"]),
		fx.route(fx.root_alice(["all-clusters"]), fx.leaf),
	] {
		d := fx.decision(fx.root_world, object.remove(inp, ["now"]))
		not d.allow
		d.reasons == ["input.now must be an RFC 3339 time, got null"]
		d.expires_at == null
	}
}

# ---- node.list --------------------------------------------------------------------------------

test_node_list_shows_a_node_a_role_selects if {
	d := leaf_decision(fx.list_nodes(fx.alice(["full-access"]), fx.stage_node))
	d.allow
	d.reasons == [`role "stage-access" selects node "mongodb.stage.example.com"`]
}

test_node_list_hides_a_node_no_role_selects if {
	d := leaf_decision(fx.list_nodes(fx.alice(["full-access"]), fx.prod_node))
	not d.allow
	d.reasons == [`no role's node_labels match node "mongodb.prod.example.com"`]
}

test_node_list_hides_a_denied_node if {
	d := leaf_decision(fx.list_nodes(fx.alice(["access", "no-prod"]), fx.prod_node))
	not d.allow
	d.reasons == [`node "mongodb.prod.example.com" is denied by role "no-prod" (deny.node_labels)`]
}

test_node_list_does_not_need_a_login if {
	leaf_decision(fx.list_nodes(fx.alice(["access", "deny-visitor"]), fx.prod_node)).allow
}

# ---- cluster.route and cluster.list (on the root) -----------------------------------------

west := "leaf-west.example.com"

test_unlabeled_cluster_is_visible_when_no_role_has_cluster_labels if {
	d := root_decision(fx.list_clusters(fx.root_alice(["access"]), west))
	d.allow
	d.reasons == ["cluster has no labels and no role restricts clusters by labels"]
	root_decision(fx.route(fx.root_alice(["access"]), west)).allow
}

test_labeled_cluster_needs_a_role_whose_cluster_labels_match if {
	d := root_decision(fx.list_clusters(fx.root_alice(["access"]), fx.leaf))
	not d.allow
	d.reasons == [sprintf("cluster %q not found: no role's cluster_labels match its labels", [fx.leaf])]
}

test_seed_demo_cluster_access_sees_the_env_demo_cluster if {
	d := root_decision(fx.route(fx.root_alice(["access", "demo-cluster-access"]), fx.leaf))
	d.allow
	d.reasons == [sprintf("role \"demo-cluster-access\" selects cluster %q", [fx.leaf])]
	root_decision(fx.list_clusters(fx.root_alice(["access", "demo-cluster-access"]), fx.leaf)).allow
}

test_unlabeled_cluster_is_hidden_once_a_role_has_cluster_labels if {
	d := root_decision(fx.list_clusters(fx.root_alice(["access", "demo-cluster-access"]), west))
	not d.allow
	d.reasons == [sprintf("cluster %q not found: no role's cluster_labels match its labels", [west])]
}

test_wildcard_cluster_labels_see_every_cluster if {
	every c in [fx.leaf, west] {
		root_decision(fx.list_clusters(fx.root_alice(["all-clusters"]), c)).allow
	}
}

test_deny_cluster_labels_beat_allow if {
	d := root_decision(fx.route(fx.root_alice(["demo-cluster-access", "no-demo"]), fx.leaf))
	not d.allow
	d.reasons == [sprintf("cluster %q not found: its labels are denied by role \"no-demo\"", [fx.leaf])]
}

test_deny_cluster_labels_alone_hide_an_unlabeled_cluster if {
	d := root_decision(fx.list_clusters(fx.root_alice(["access", "no-demo"]), west))
	not d.allow
	d.reasons == [sprintf("cluster %q not found: no role's cluster_labels match its labels", [west])]
}

test_unknown_cluster_is_not_found if {
	d := root_decision(fx.route(fx.root_alice(["all-clusters"]), "nowhere.example.com"))
	not d.allow
	d.reasons == [`cluster "nowhere.example.com" not found`]
}

test_cluster_labels_are_the_roots_not_the_requests if {
	inp := fx.put(fx.list_clusters(fx.root_alice(["access"]), fx.leaf), "remote_cluster", {"name": fx.leaf, "labels": {}})
	not root_decision(inp).allow
}

test_cluster_route_checks_requirements if {
	not root_decision(fx.route(fx.root_alice(["all-clusters", "mfa"]), fx.leaf)).allow
	root_decision(fx.route(fx.put(fx.root_alice(["all-clusters", "mfa"]), "mfa_verified", true), fx.leaf)).allow
}

test_cluster_route_checks_max_cert_age if {
	w := fx.with_roles(fx.root_world, {"young": fx.role({"cluster_labels": fx.wildcard, "options": {"max_cert_age_ns": fx.hour}})})
	fx.decision(w, fx.route(fx.root_alice(["young"]), fx.leaf)).allow
	old := fx.put(fx.root_alice(["young"]), "valid_after", fx.at(-2 * fx.hour))
	d := fx.decision(w, fx.route(old, fx.leaf))
	not d.allow
	d.reasons == [`role "young" accepts certificates at most 3600s old; this one is 7200s old`]
}

test_cluster_list_does_not_check_requirements if {
	root_decision(fx.list_clusters(fx.root_alice(["all-clusters", "mfa"]), fx.leaf)).allow
}

# ---- cert.issue (on the root) -------------------------------------------------------------

# ---- cert.issue with route_to_cluster (issue 7, point 8) ----------------------------------

routed(roles, cluster) := fx.put(fx.issue(roles, ["visitor"]), "cert", fx.put(fx.issue(roles, ["visitor"]).cert, "route_to_cluster", cluster))

# A leaf the roles may not see and a leaf that does not exist give the same answer, byte for
# byte: the reasons never tell whether a hidden leaf exists.
test_issue_routed_to_a_hidden_cluster_reads_as_missing if {
	# "access" has no cluster_labels and the leaf has env=demo: hidden.
	hidden := root_decision(routed(["access"], fx.leaf))
	not hidden.allow
	hidden.reasons == [sprintf("remote cluster %q not found", [fx.leaf])]
	w := object.union(fx.root_world, {"remote_clusters": {"leaf-west.example.com": {"labels": {}}}})
	missing := fx.decision(w, routed(["access"], fx.leaf))
	not missing.allow
	missing.reasons == hidden.reasons
	missing == hidden
}

test_issue_routed_to_a_cluster_denied_by_cluster_labels_reads_as_missing if {
	d := root_decision(routed(["demo-cluster-access", "access", "no-demo"], fx.leaf))
	not d.allow
	d.reasons == [sprintf("remote cluster %q not found", [fx.leaf])]
}

test_issue_routed_to_an_unknown_cluster_is_denied if {
	d := root_decision(routed(["all-clusters", "access"], "ghost.example.com"))
	not d.allow
	d.reasons == [`remote cluster "ghost.example.com" not found`]
}

test_issue_routed_to_a_visible_cluster_is_allowed if {
	root_decision(routed(["demo-cluster-access", "access"], fx.leaf)).allow
	root_decision(routed(["all-clusters", "access"], fx.leaf)).allow

	# No role restricts clusters by labels and the cluster has none: visible.
	root_decision(routed(["access"], "leaf-west.example.com")).allow
}

test_issue_routed_to_this_cluster_is_allowed if {
	root_decision(routed(["access"], fx.root)).allow
}

test_issue_without_route_is_not_checked_against_clusters if {
	root_decision(routed(["access"], "")).allow
}

test_issue_route_reasons_add_to_the_other_problems if {
	inp := fx.put(routed(["access"], "ghost.example.com"), "cert", fx.put(routed(["access"], "ghost.example.com").cert, "principals", ["root"]))
	d := root_decision(inp)
	d.reasons == [`roles ["access"] do not allow login "root"`, `remote cluster "ghost.example.com" not found`]
}

test_issue_with_existing_roles_and_allowed_logins_is_allowed if {
	d := root_decision(fx.issue(["access"], ["visitor", "ubuntu"]))
	d.allow
	d.roles == ["access"]
	d.reasons == [`roles ["access"] allow the certificate`]
}

test_issue_of_an_unknown_role_is_denied if {
	d := root_decision(fx.issue(["access", "ghost"], ["visitor"]))
	not d.allow
	d.reasons == [`role "ghost" does not exist`]
}

test_issue_principals_must_be_logins_the_roles_allow if {
	d := root_decision(fx.issue(["access"], ["visitor", "root"]))
	not d.allow
	d.reasons == [`roles ["access"] do not allow login "root"`]
}

test_issue_principals_must_not_be_denied_logins if {
	root_decision(fx.issue(["access", "root-login"], ["visitor", "root"])).allow
	d := root_decision(fx.issue(["access", "root-login", "no-root"], ["root"]))
	not d.allow
	d.reasons == [`roles ["access", "root-login", "no-root"] do not allow login "root"`]
}

test_issue_skips_the_validity_window_of_a_certificate_not_yet_issued if {
	inp := fx.issue(["access"], ["visitor"])
	root_decision(fx.put(inp, "cert", fx.put(inp.cert, "valid_after", fx.at(fx.hour)))).allow
}

test_issue_is_subject_to_locks if {
	d := fx.decision(fx.with_locks(fx.root_world, [fx.lock("l-user", {"user": "alice"}, "", 0)]), fx.issue(["access"], ["visitor"]))
	not d.allow
}

test_issue_expires_at_is_the_requested_valid_before_within_the_default_ttl if {
	root_decision(fx.issue(["access"], ["visitor"])).expires_at == fx.at(12 * fx.hour)
}

test_issue_expires_at_is_capped_by_max_session_ttl if {
	root_decision(fx.issue(["access", "ttl-8h"], ["visitor"])).expires_at == fx.at(8 * fx.hour)
}

test_issue_expires_at_is_capped_by_the_shortest_max_session_ttl if {
	root_decision(fx.issue(["ttl-8h", "access", "ttl-2h"], ["visitor"])).expires_at == fx.at(2 * fx.hour)
}

test_issue_expires_at_defaults_to_30_hours if {
	inp := fx.issue(["access"], ["visitor"])
	root_decision(fx.put(inp, "cert", object.remove(inp.cert, ["valid_before"]))).expires_at == fx.at(30 * fx.hour)
}

# ---- expires_at: the next instant a time-based rule could change the answer -------------------

test_expires_at_is_valid_before_when_nothing_comes_sooner if {
	leaf_decision(alice_on_stage).expires_at == fx.alice_cert.valid_before
}

test_expires_at_of_a_denial_is_also_bounded if {
	leaf_decision(fx.ssh(fx.alice(["full-access"]), "visitor", fx.prod_node)).expires_at == fx.alice_cert.valid_before
}

test_expires_at_of_a_not_yet_valid_certificate_is_when_it_becomes_valid if {
	cert := fx.put(fx.alice(["access"]), "valid_after", fx.at(5 * fx.minute))
	d := leaf_decision(fx.ssh(cert, "visitor", fx.stage_node))
	not d.allow
	d.expires_at == fx.at(5 * fx.minute)
}

test_expires_at_is_the_earliest_bound if {
	locks := [fx.lock("l-later", {"user": "alice"}, "", fx.now_ns + (20 * fx.minute)), fx.lock("l-sooner", {"user": "alice"}, "", fx.now_ns + (5 * fx.minute))]
	locked(locks, fx.ssh(fx.alice(["short-lived"]), "visitor", fx.stage_node)).expires_at == fx.at(5 * fx.minute)
}

test_expires_at_is_null_when_no_rule_can_change_the_answer if {
	cert := fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.second))
	leaf_decision(fx.ssh(cert, "visitor", fx.stage_node)).expires_at == null
	leaf_decision(fx.list_nodes(cert, fx.stage_node)).expires_at == null
}

test_expires_at_of_other_actions_is_the_next_bound_too if {
	leaf_decision(fx.list_nodes(fx.alice(["access"]), fx.stage_node)).expires_at == fx.alice_cert.valid_before
	root_decision(fx.route(fx.root_alice(["all-clusters"]), fx.leaf)).expires_at == fx.alice_cert.valid_before
}
