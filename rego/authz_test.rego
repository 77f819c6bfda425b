# The public entry point (DESIGN §3): data.tether.authz.decision is exactly the two stages
# the engine evaluates, identity then access, and allow is its verdict alone.
#
# The access stage decides every action with the plain rules (decide_full), whose verdict
# (allowed) and reasons (problems) are computed apart, and the engine decides ssh.session
# with its fast form (session_fast, allow_reasons); the tables below check that all of them agree on requests that take
# every branch: the same decision, allowed exactly when no rule is broken, and a denial's
# reasons are the broken rules. Tables are kept small so each test stays well inside opa test's timeout.
package tether.authz_test

import data.tether.fixtures_test as fx

# agree reports whether a decision is the one the plain statement of the rules gives
# (access.decide_full; the public query has its own path for ssh.session) and whether its
# verdict and reasons agree with the problems.
agree(w, inp) if {
	d := fx.decision(w, inp)
	d == fx.decide_full(w, inp)
	ps := fx.problems(w, inp)
	clean := count(ps) == 0
	d.allow == clean
	reasons_are_problems(d, ps)
	fx.fast_agrees(w, inp)
}

reasons_are_problems(d, _) if d.allow

reasons_are_problems(d, ps) if {
	not d.allow
	d.reasons == ps
}

west := "leaf-west.example.com"

session_inputs := [
	fx.ssh(fx.alice(["access"]), "visitor", fx.seed_node),
	fx.ssh(fx.alice(["full-access"]), "visitor", fx.prod_node),
	fx.ssh(fx.alice(["access", "deny-visitor"]), "visitor", fx.seed_node),
	fx.ssh(fx.alice(["access", "no-prod"]), "visitor", fx.prod_node),
	fx.ssh(fx.put(fx.alice(["access", "full-access"]), "principals", ["visitor", "ubuntu"]), "ubuntu", fx.prod_node),
	fx.ssh(fx.put(fx.bob_cert, "principals", ["bob"]), "root", fx.prod_node),
	fx.ssh(fx.bob_cert, "root", fx.prod_node),
]

certificate_inputs := [
	fx.ssh(fx.alice(["editor"]), "visitor", fx.prod_node),
	fx.ssh(fx.alice(["ghost"]), "visitor", fx.prod_node),
	fx.ssh(fx.put(fx.bob_cert, "roles", []), "bob", fx.prod_node),
	fx.ssh(fx.signed_by(fx.alice(["access"]), fx.root, "SHA256:forged"), "visitor", fx.seed_node),
	fx.ssh(fx.signed_by(fx.alice(["access"]), fx.broken_root, "SHA256:broken-root-user"), "visitor", fx.seed_node),
	fx.ssh(fx.put(fx.alice(["access"]), "valid_after", fx.at(fx.minute + 1)), "visitor", fx.seed_node),
	fx.ssh(fx.put(fx.alice(["access"]), "valid_before", fx.now), "visitor", fx.seed_node),
	fx.put(fx.ssh(fx.alice(["access"]), "visitor", fx.seed_node), "cluster", west),
]

requirement_inputs := [
	fx.ssh(fx.alice(["mfa"]), "visitor", fx.prod_node), fx.ssh(fx.put(fx.alice(["mfa"]), "mfa_verified", true), "visitor", fx.prod_node), fx.ssh(fx.put(fx.alice(["short-lived"]), "valid_after", fx.at(0 - fx.hour)), "visitor", fx.prod_node), fx.ssh(fx.put(fx.alice(["short-lived"]), "valid_after", fx.at((0 - fx.hour) - 1)), "visitor", fx.prod_node), fx.ssh(fx.put(fx.alice(["okta"]), "issued_via", "github/gh"), "visitor", fx.prod_node),
]

locks := [
	fx.lock("l-node", {"node": "mongodb.prod.example.com", "user": "alice"}, "", 0),
	fx.lock("l-login", {"login": "root"}, "", 0),
	fx.lock("l-expired", {"user": "alice"}, "", fx.now_ns - 1),
]

lock_inputs := [
	fx.ssh(fx.alice(["access"]), "visitor", fx.prod_node),
	fx.ssh(fx.alice(["access"]), "visitor", fx.seed_node),
	fx.ssh(fx.bob_cert, "root", fx.seed_node),
	fx.list_nodes(fx.alice(["access"]), fx.prod_node),
]

node_and_action_inputs := [
	fx.list_nodes(fx.alice(["full-access"]), fx.stage_node),
	fx.list_nodes(fx.alice(["full-access"]), fx.prod_node),
	fx.list_nodes(fx.alice(["access", "no-prod"]), fx.prod_node),
	fx.put(fx.ssh(fx.alice(["access"]), "visitor", fx.seed_node), "action", "ssh.exec"),
]

cluster_inputs := [
	fx.route(fx.root_alice(["access"]), west),
	fx.route(fx.root_alice(["access"]), fx.leaf),
	fx.route(fx.root_alice(["access", "demo-cluster-access"]), fx.leaf),
	fx.list_clusters(fx.root_alice(["access", "demo-cluster-access"]), west),
	fx.route(fx.root_alice(["demo-cluster-access", "no-demo"]), fx.leaf),
	fx.route(fx.root_alice(["all-clusters", "mfa"]), fx.leaf),
	fx.route(fx.root_alice(["all-clusters"]), "nowhere.example.com"),
]

issue_inputs := [
	fx.issue(["access", "ttl-2h"], ["visitor"]),
	fx.issue(["access", "ghost"], ["visitor"]),
	fx.issue(["access", "root-login", "no-root"], ["root"]),
]

test_decision_is_access_decide_of_identity_of_input if {
	every inp in array.concat(array.slice(session_inputs, 0, 4), array.slice(certificate_inputs, 0, 4)) {
		fx.decision(fx.leaf_world, inp) == fx.staged(fx.leaf_world, inp)
	}
}

test_decision_is_access_decide_of_identity_of_input_on_the_root if {
	every inp in array.concat(cluster_inputs, issue_inputs) {
		fx.decision(fx.root_world, inp) == fx.staged(fx.root_world, inp)
	}
}

test_decision_is_access_decide_of_identity_of_input_without_a_clock if {
	inp := object.remove(session_inputs[0], ["now"])
	fx.decision(fx.leaf_world, inp) == fx.staged(fx.leaf_world, inp)
}

test_decision_is_access_decide_of_identity_of_input_with_operator_modules if {
	every inp in [session_inputs[0], certificate_inputs[0], session_inputs[1]] {
		fx.decision(fx.leaf_world, inp) == fx.staged(fx.leaf_world, inp) with data.tether.custom.grants as {"auditor"}
	}
}

test_verdict_agrees_with_reasons_for_sessions if {
	every inp in session_inputs {
		agree(fx.leaf_world, inp)
	}
}

test_verdict_agrees_with_reasons_for_certificates if {
	every inp in certificate_inputs {
		agree(fx.leaf_world, inp)
	}
}

test_verdict_agrees_with_reasons_for_requirements if {
	every inp in requirement_inputs {
		agree(fx.leaf_world, inp)
	}
}

test_verdict_agrees_with_reasons_for_locks if {
	every inp in lock_inputs {
		agree(fx.with_locks(fx.leaf_world, locks), inp)
	}
}

test_verdict_agrees_with_reasons_for_nodes_and_unknown_actions if {
	every inp in node_and_action_inputs {
		agree(fx.leaf_world, inp)
	}
}

test_verdict_agrees_with_reasons_for_clusters if {
	every inp in cluster_inputs {
		agree(fx.root_world, inp)
	}
}

test_verdict_agrees_with_reasons_for_cert_issue if {
	every inp in issue_inputs {
		agree(fx.root_world, inp)
	}
}

test_verdict_agrees_with_reasons_with_operator_denies if {
	every wi in [[fx.leaf_world, session_inputs[0]], [fx.root_world, cluster_inputs[0]]] {
		[w, inp] := wi
		not fx.decision(w, inp).allow
		agree(w, inp)
	} with data.tether.custom.deny as {"no"}
}

# The tables are only worth something if they hold both verdicts.
test_tables_hold_allows_and_denials if {
	verdicts := {fx.decision(fx.leaf_world, inp).allow | some inp in array.concat(session_inputs, requirement_inputs)}
	verdicts == {true, false}
}

test_allow_mirrors_decision_allow if {
	fx.allowed(fx.leaf_world, session_inputs[0]) == true
	fx.decision(fx.leaf_world, session_inputs[0]).allow == true
	fx.allowed(fx.leaf_world, session_inputs[1]) == false
	fx.decision(fx.leaf_world, session_inputs[1]).allow == false
}

# A certificate whose times are not RFC 3339 (Go never sends one) leaves no decision; the
# verdict is still a denial.
test_allow_is_false_when_there_is_no_decision if {
	inp := fx.ssh(fx.put(fx.alice(["access"]), "valid_before", "tomorrow"), "visitor", fx.seed_node)
	not fx.decision(fx.leaf_world, inp)
	fx.allowed(fx.leaf_world, inp) == false
}
