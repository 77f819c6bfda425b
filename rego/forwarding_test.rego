# Port and agent forwarding (forwarding.rego): every rule of ssh.session applies, then the
# leaf's mapped roles' port_forwarding and forward_agent options.
package tether.forwarding_test

import data.tether.fixtures_test as fx

# Roles the root's "^team-(.*)$" rule maps to by name.
roles := {
	"no-forward": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "options": {"port_forwarding": false}}),
	"forward": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "options": {"port_forwarding": true}}),
	"agent": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.wildcard, "options": {"forward_agent": true}}),
	"no-agent": fx.role({"options": {"forward_agent": false}}),
}

world := fx.with_roles(fx.leaf_world, roles)

fwd(cert, login, n) := fx.put(fx.ssh(cert, login, n), "action", "ssh.port_forward")

agent(cert, login, n) := fx.put(fx.ssh(cert, login, n), "action", "ssh.agent_forward")

decision(inp) := fx.decision(world, inp)

# ---- port forwarding --------------------------------------------------------------------

test_port_forwarding_unset_is_allowed_teleport_default if {
	d := decision(fwd(fx.alice(["access"]), "visitor", fx.seed_node))
	d.allow
	d.reasons == [
		`role "visitor" allows login "visitor" on node "ip-172-3-2-205"`,
		`no role forbids port forwarding (roles ["visitor"])`,
	]
}

test_port_forwarding_true_is_allowed if {
	decision(fwd(fx.alice(["team-forward"]), "visitor", fx.seed_node)).allow
}

test_port_forwarding_false_on_a_leaf_role_denies_whatever_else_allows if {
	# access → visitor allows everything; team-no-forward → no-forward says false.
	d := decision(fwd(fx.alice(["access", "team-no-forward"]), "visitor", fx.seed_node))
	not d.allow
	d.reasons == [`port forwarding is forbidden by role "no-forward" (options.port_forwarding: false)`]
}

test_port_forwarding_false_does_not_deny_the_session if {
	decision(fx.ssh(fx.alice(["access", "team-no-forward"]), "visitor", fx.seed_node)).allow
}

test_port_forwarding_needs_the_session_rules if {
	# A login the roles lack is denied for forwarding as for a session.
	d := decision(fwd(fx.alice(["full-access"]), "visitor", fx.prod_node))
	not d.allow
	d.reasons == [fx.denied_as("alice", fx.root, "visitor", `no role's node_labels match node "mongodb.prod.example.com"`)]
}

test_port_forwarding_needs_mfa_when_a_role_requires_it if {
	d := decision(fwd(fx.alice(["mfa"]), "visitor", fx.seed_node))
	not d.allow
	d.reasons == [`role "mfa-required" requires MFA: the certificate was not issued with MFA`]
}

test_port_forwarding_is_locked_like_a_session if {
	w := fx.with_locks(world, [fx.lock("l1", {"user": "alice"}, "", 0)])
	not fx.decision(w, fwd(fx.alice(["access"]), "visitor", fx.seed_node)).allow
}

test_port_forwarding_operator_denies_see_the_action if {
	d := decision(fwd(fx.alice(["access"]), "visitor", fx.seed_node)) with data.tether.custom.deny as {"no tunnels"}
	not d.allow
	d.reasons == ["denied by operator policy: no tunnels"]
}

test_port_forwarding_without_roles_is_denied if {
	not decision(fwd(fx.alice(["nothing-maps"]), "visitor", fx.seed_node)).allow
}

# ---- agent forwarding -------------------------------------------------------------------

test_agent_forwarding_unset_is_denied_teleport_default if {
	d := decision(agent(fx.alice(["access"]), "visitor", fx.seed_node))
	not d.allow
	d.reasons == [`no role allows agent forwarding (roles ["visitor"]; it needs options.forward_agent: true)`]
}

test_agent_forwarding_true_is_allowed if {
	d := decision(agent(fx.alice(["team-agent"]), "visitor", fx.seed_node))
	d.allow
	d.reasons == [
		`role "agent" allows login "visitor" on node "ip-172-3-2-205"`,
		`role "agent" allows agent forwarding`,
	]
}

test_agent_forwarding_true_and_unset_is_allowed if {
	decision(agent(fx.alice(["access", "team-agent"]), "visitor", fx.seed_node)).allow
}

test_agent_forwarding_false_beats_true if {
	d := decision(agent(fx.alice(["team-agent", "team-no-agent"]), "visitor", fx.seed_node))
	not d.allow
	d.reasons == [`agent forwarding is forbidden by role "no-agent" (options.forward_agent: false)`]
}

test_agent_forwarding_needs_the_session_rules if {
	d := decision(agent(fx.put(fx.alice(["team-agent"]), "principals", ["ubuntu"]), "visitor", fx.seed_node))
	not d.allow
	fx.denied_as("alice", fx.root, "visitor", `login "visitor" is not a principal of the certificate`) in d.reasons
}

# ---- the public query, the engine's stages and the reasons agree ---------------------------

inputs := [
	fwd(fx.alice(["access"]), "visitor", fx.seed_node),
	fwd(fx.alice(["access", "team-no-forward"]), "visitor", fx.seed_node),
	fwd(fx.alice(["full-access"]), "visitor", fx.prod_node),
	agent(fx.alice(["access"]), "visitor", fx.seed_node),
	agent(fx.alice(["team-agent"]), "visitor", fx.seed_node),
	agent(fx.alice(["team-agent", "team-no-agent"]), "visitor", fx.seed_node),
]

test_forwarding_decisions_agree if {
	every inp in inputs {
		d := decision(inp)
		d == fx.decide_full(world, inp)
		d == fx.staged(world, inp)
		ps := fx.problems(world, inp)

		# Not d.allow == (count(ps) == 0): opa fmt drops those parentheses, and the
		# chained form compares d.allow with count(ps) first.
		no_problems := count(ps) == 0
		d.allow == no_problems
		reasons_are_problems(d, ps)
	}
}

test_forwarding_tables_hold_both_verdicts if {
	{decision(inp).allow | some inp in inputs} == {true, false}
}

reasons_are_problems(d, _) if d.allow

reasons_are_problems(d, ps) if {
	not d.allow
	d.reasons == ps
}
