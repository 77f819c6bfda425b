# The engine's fast form of ssh.session (access.session_fast, allow_reasons, node_logins):
# equal to the public query on every branch it has.
package tether.session_fast_test

import data.tether.fixtures_test as fx

alice_on_stage := fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node)

test_fast_form_allows_what_the_decision_allows_with_the_same_reasons if {
	every inp in [alice_on_stage, fx.ssh(fx.alice(["access", "full-access"]), "visitor", fx.stage_node)] {
		fx.decision(fx.leaf_world, inp).allow
		fx.fast(fx.leaf_world, inp) == true
		fx.fast_agrees(fx.leaf_world, inp)
	}
}

test_fast_form_denial_reasons_are_the_decisions if {
	every inp in [
		fx.ssh(fx.alice(["full-access"]), "visitor", fx.prod_node),
		fx.ssh(fx.alice(["access"]), "root", fx.stage_node),
		fx.ssh(fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.minute)), "visitor", fx.stage_node),
		fx.ssh(fx.put(fx.alice(["access"]), "valid_after", fx.at(fx.minute)), "visitor", fx.stage_node),
		fx.ssh(fx.alice(["ghost"]), "visitor", fx.stage_node),
		fx.ssh(fx.alice(["mfa"]), "visitor", fx.stage_node),
		object.remove(alice_on_stage, ["login"]),
	] {
		not fx.decision(fx.leaf_world, inp).allow
		fx.fast_agrees(fx.leaf_world, inp)
	}
}

# Outside the certificate's window the denial names the certificate's problems and then the
# request's (session_denial's second body); inside it, only the request's (its first).
test_fast_form_denial_names_certificate_and_request_problems_in_order if {
	expired := fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.minute))
	visitor := fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "deny_node_labels": fx.sel({"env": ["stage"]})})
	w := fx.with_roles(fx.leaf_world, object.union(fx.leaf_world.roles, {"visitor": visitor}))
	every inp in [fx.ssh(expired, "root", fx.stage_node), fx.ssh(expired, "visitor", fx.stage_node)] {
		r := fx.fast(w, inp)
		count(r) >= 2
		startswith(r[0], "certificate expired at ")
		fx.fast_agrees(w, inp)
	}
}

# A session without a node is left to decide_full (the engine asks it on an empty denial).
test_fast_form_defers_a_session_without_a_node if {
	inp := object.remove(alice_on_stage, ["node"])
	fx.decision(fx.leaf_world, inp).allow
	fx.fast(fx.leaf_world, inp) == []
	fx.fast_agrees(fx.leaf_world, inp)
}

test_fast_form_denies_when_an_operator_denies if {
	r := fx.fast(fx.leaf_world, alice_on_stage) with data.tether.custom.deny as {"maintenance window"}
	r == fx.decision(fx.leaf_world, alice_on_stage).reasons with data.tether.custom.deny as {"maintenance window"}
	"denied by operator policy: maintenance window" in r
}

test_fast_form_denies_when_a_deny_selector_matches if {
	visitor := fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "deny_node_labels": fx.sel({"env": ["stage"]})})
	w := fx.with_roles(fx.leaf_world, object.union(fx.leaf_world.roles, {"visitor": visitor}))
	not fx.decision(w, alice_on_stage).allow
	fx.fast_agrees(w, alice_on_stage)
}

test_fast_form_denies_a_locked_session if {
	w := fx.with_locks(fx.leaf_world, [fx.lock("l-node", {"node": "mongodb.stage.example.com"}, "maintenance", 0)])
	not fx.decision(w, alice_on_stage).allow
	fx.fast_agrees(w, alice_on_stage)
}

test_fast_form_reads_the_clock_from_the_engine_not_input if {
	# input.now says the certificate has expired; the engine's clock says it has not.
	inp := fx.put(alice_on_stage, "now", fx.at(24 * fx.hour))
	not fx.decision(fx.leaf_world, inp).allow
	r := fx.fast(fx.leaf_world, alice_on_stage) with data.tether.stage.now_ns as fx.now_ns
	r == true
}

nodes := [fx.stage_node, fx.prod_node, fx.node("bare", {}), fx.node("mongodb.qa", {"env": "qa"})]

# node_logins gives, in one evaluation, the logins N single ssh.session decisions allow.
test_node_logins_equal_single_decisions if {
	every cert in [fx.alice(["access"]), fx.alice(["full-access"]), fx.alice(["access", "no-prod"]), fx.alice(["ghost"])] {
		got := fx.node_logins(fx.leaf_world, fx.ssh(cert, "", {}), nodes)
		count(got) == count(nodes)
		got == fx.node_logins_name_free(fx.leaf_world, fx.ssh(cert, "", {}), nodes)
		every i, n in nodes {
			got[i] == sort([login |
				some login in object.get(cert, "principals", [])
				fx.decision(fx.leaf_world, fx.ssh(cert, login, n)).allow
			])
		}
	}
}

test_node_logins_leave_out_locked_nodes if {
	w := fx.with_locks(fx.leaf_world, [fx.lock("l-node", {"node": "mongodb.stage.example.com"}, "maintenance", 0)])
	got := fx.node_logins(w, fx.ssh(fx.alice(["access"]), "", {}), nodes)
	got[0] == []
	got[1] == ["visitor"]
}

test_node_logins_of_an_expired_certificate_are_empty if {
	cert := fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.minute))
	fx.node_logins(fx.leaf_world, fx.ssh(cert, "", {}), nodes) == [[], [], [], []]
}

test_node_logins_honour_operator_denies_per_node if {
	got := fx.node_logins(fx.leaf_world, fx.ssh(fx.alice(["access"]), "", {}), nodes) with data.tether.custom.deny as {"no"}
	got == [[], [], [], []]
	fx.node_logins_name_free(fx.leaf_world, fx.ssh(fx.alice(["access"]), "", {}), nodes) == got with data.tether.custom.deny as {"no"}
}

test_node_logins_leave_out_locked_nodes_when_denies_ignore_names if {
	w := fx.with_locks(fx.leaf_world, [fx.lock("l-node", {"node": "mongodb.stage.example.com"}, "maintenance", 0)])
	got := fx.node_logins_name_free(w, fx.ssh(fx.alice(["access"]), "", {}), nodes)
	got[0] == []
	got[1] == ["visitor"]
}
