# Port and agent forwarding: Teleport's role options port_forwarding and forward_agent,
# decided on the cluster that owns the node (the leaf), with the leaf's mapped roles.
#
# ssh.port_forward (tether ssh -L/-R/-D, ssh -L/-R/-D through tether proxy ssh) and
# ssh.agent_forward (tether ssh -A, ssh -A) are ssh.session requests with another action:
# the same login, node, locks, requirements and operator denies apply, so a forwarded port
# is never a way around a denied session. Then the option:
#   - port_forwarding: a role that sets it false forbids port forwarding (Teleport's
#     meaning of false); unset means allowed, Teleport's default in roles v5 to v7;
#   - forward_agent: some role must set it true (unset means false, Teleport's default),
#     and a role that sets it false forbids it (Tether: false is read as a prohibition
#     for both options, so one restrictive role is enough to say no).
# bundles.Shape ships an option only when the role sets it.
# METADATA
# title: Port and agent forwarding
# description: >-
#   ssh.port_forward and ssh.agent_forward: every rule of ssh.session, then the roles' port_forwarding and forward_agent options.
package tether.forwarding

# actions are the forwarding requests; tether.access counts them among the known actions
# and the actions with per-role requirements, states their session part, and asks this
# package for the option's part.
actions := {"ssh.port_forward", "ssh.agent_forward"}

# granted: what grants a forwarding request, given what grants its session (empty: nothing).
granted(session_grants, _, _) := [] if count(session_grants) == 0

granted(session_grants, id, action) := array.concat(session_grants, option_grants(id, action)) if {
	count(session_grants) > 0
}

# role_option is what role r sets for option o: true, false, or "unset".
role_option(r, o) := object.get(data.tether.roles, [r, "options", o], "unset")

forbidding_roles(id, o) := [r | some r in id.roles; role_option(r, o) == false]

permitting_roles(id, o) := [r | some r in id.roles; role_option(r, o) == true]

# option_problems: what the roles' options say against the forwarding action.
option_problems(id, "ssh.port_forward") := [sprintf("port forwarding is forbidden by role %q (options.port_forwarding: false)", [r]) |
	some r in forbidding_roles(id, "port_forwarding")
]

option_problems(id, "ssh.agent_forward") := array.concat(
	[sprintf("agent forwarding is forbidden by role %q (options.forward_agent: false)", [r]) |
		some r in forbidding_roles(id, "forward_agent")
	],
	[sprintf("no role allows agent forwarding (roles %v; it needs options.forward_agent: true)", [id.roles]) |
		count(permitting_roles(id, "forward_agent")) == 0
	],
)

option_grants(id, "ssh.port_forward") := [sprintf("no role forbids port forwarding (roles %v)", [id.roles])]

option_grants(id, "ssh.agent_forward") := [sprintf("role %q allows agent forwarding", [r]) | some r in permitting_roles(id, "forward_agent")]
