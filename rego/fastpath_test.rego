package tether.fastpath_test

import data.tether.fixtures_test as fx

# The fast path answers exactly what the public query answers for a plain allowed session.
test_fast_path_equals_the_decision_for_an_allowed_session if {
	inp := fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node)
	r := fx.fastpath(fx.leaf_world, inp)
	r.allow
	r == fx.decision(fx.leaf_world, inp)
}

test_fast_path_names_every_granting_role_sorted if {
	inp := fx.ssh(fx.alice(["access", "full-access"]), "visitor", fx.stage_node)
	r := fx.fastpath(fx.leaf_world, inp)
	r == fx.decision(fx.leaf_world, inp)
	count(r.reasons) >= 1
	r.reasons == sort(r.reasons)
}

# Anything but a plain allow is left to the generic stage: the fast path is undefined.
test_fast_path_is_undefined_for_a_denial if {
	not fx.fastpath(fx.leaf_world, fx.ssh(fx.alice(["full-access"]), "visitor", fx.prod_node))
}

test_fast_path_is_undefined_for_a_login_not_granted if {
	not fx.fastpath(fx.leaf_world, fx.ssh(fx.alice(["access"]), "root", fx.stage_node))
}

test_fast_path_is_undefined_for_an_expired_certificate if {
	cert := fx.put(fx.alice(["access"]), "valid_before", fx.at(0 - fx.minute))
	not fx.fastpath(fx.leaf_world, fx.ssh(cert, "visitor", fx.stage_node))
}

test_fast_path_is_undefined_when_an_operator_denies if {
	inp := fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node)
	not fx.fastpath(fx.leaf_world, inp) with data.tether.custom.deny as {"maintenance window"}
}

test_fast_path_is_undefined_when_a_deny_selector_matches if {
	visitor := fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "deny_node_labels": fx.sel({"env": ["stage"]})})
	w := fx.with_roles(fx.leaf_world, object.union(fx.leaf_world.roles, {"visitor": visitor}))
	inp := fx.ssh(fx.alice(["access"]), "visitor", fx.stage_node)
	not fx.fastpath(w, inp)
	not fx.decision(w, inp).allow
}

test_fast_path_is_undefined_for_other_actions if {
	not fx.fastpath(fx.leaf_world, fx.list_nodes(fx.alice(["access"]), fx.stage_node))
}
