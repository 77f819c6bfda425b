# The access stage: the per-request rules, given an identity from tether.identity.
#
# decide(id, inp) returns the decision document {allow, roles, reasons, expires_at}.
# Deny is checked before allow and is greedy; locks and operators' deny rules beat every
# allow. A denial always carries at least one reason a person can act on.
#
# The rules are stated once in decide_full: `allowed` is the verdict, and `problems` lists
# every rule a request breaks, in words (evaluated only for denials); a request is allowed
# exactly when it has no problems. session_fast is the one other form, the engine's path
# for ssh.session; differential tests hold it equal to decide_full.
# METADATA
# title: Per-request access rules
# description: >-
#   The access stage: given an identity from tether.identity, decides a request (deny first and greedy; locks and operator denies beat every allow) and says why in words.
package tether.access

import data.tether.certs
import data.tether.forwarding
import data.tether.identity
import data.tether.labels

# decide decides the request document inp for the identity id.
decide(id, inp) := d if {
	d := request_decision(id) with input as inp
}

# request_decision decides the request that is the input document: the public query and
# the engine's generic stage.
request_decision(id) := decide_full(id, input)

# ---- the engine's fast form of ssh.session ---------------------------------------------
#
# decide_full is the statement of the rules; session_fast is the one other form, the one the
# engine asks for every ssh.session it has not cached. It reads the request from input, the
# identity the engine cached for the certificate (id), and the clock as integer nanoseconds
# (now: the engine passes data.tether.stage.now_ns, which it resolves, so no per-request
# time.parse; as an argument it is resolved once, not again by the rule index). It is
# true when the session is allowed, and otherwise the reasons of the denial, built from the
# identity's precomputed messages. An allow's reasons (which roles grant it) are left to
# allow_reasons, which the engine evaluates when the decision log encodes the event. The
# body reads input.node.labels directly (no object.get on the hot path), so a session with
# no node gets an empty denial, which the engine answers with decide_full.
# Differential tests (policy.TestStagedEqualsPublicQuery, rego fast_agrees) hold it equal
# to decide_full, reasons and expiry included.
session_fast(id, now) if {
	now >= id.not_before_ns
	now < id.session_until_ns
	node_labels := input.node.labels
	session_granted(id, input.login, node_labels)
	not session_node_denied(id, node_labels)
	not session_locked(id, input, now)
	count(data.tether.custom.deny) == 0
} else := session_denial(id, now)

# session_granted: some role allows the login on a node with these labels.
session_granted(id, login, node_labels) if {
	some g in id.login_grants[login]
	every k, re in g.node {
		regex.match(re, node_labels[k])
	}
}

# session_node_denied: some role's deny.node_labels select a node with these labels.
session_node_denied(id, node_labels) if {
	some d in id.deny_nodes
	every k, re in d.node {
		regex.match(re, node_labels[k])
	}
}

session_locked(id, inp, now) if {
	some l in id.locks
	lock_applies(l, inp, now)
}

# allow_reasons: the reasons of an allowed request, as decide_full gives them.
allow_reasons(id) := reasons(true, granted_by(id, input), id, input, 0)

# session_denial: every rule the ssh.session in input breaks, in decide_full's words and
# order, from the identity's precomputed messages.
session_denial(id, now) := session_request_problems(id, now) if {
	# Inside the certificate's window (session_until_ns folds validity, max_cert_age,
	# static problems and unmet requirements), the certificate's own part is empty.
	now >= id.not_before_ns
	now < id.session_until_ns
} else := array.concat(
	array.concat(
		array.concat(id.static_problems, array.concat([id.not_yet_valid_msg | now < id.not_before_ns], [id.expired_msg | now >= id.valid_before_ns])),
		array.concat(
			id.requirement_problems,
			[sprintf("role %q accepts certificates at most %ds old; this one is %ds old", [r, ns / 1000000000, (now - id.valid_after_ns) / 1000000000]) |
				now > id.age_deadline_ns
				some req in id.requirements.max_age
				[r, ns] := req
				now - id.valid_after_ns > ns
			],
		),
	),
	session_request_problems(id, now),
)

# session_request_problems: what is wrong with the login, the node, the locks and the
# operator policy, in decide_full's words and order.
session_request_problems(id, now) := array.concat(
	[concat("", [id.session_prefix, login, "@", data.tether.cluster.name, ": ", d]) | some d in session_denial_details(id, login, name, node_labels)],
	array.concat(
		[lock_message(l) | some l in id.locks; lock_applies(l, input, now)],
		[sprintf("denied by operator policy: %s", [m]) | some m in data.tether.custom.deny],
	),
) if {
	login := object.get(input, "login", "")
	name := object.get(input, ["node", "name"], "")
	node_labels := object.get(input, ["node", "labels"], {})
}

# What is wrong with the login and the node; with a grant, only a deny selector can be.
session_denial_details(id, login, name, node_labels) := session_node_denials(id, name, node_labels) if {
	session_granted(id, login, node_labels)
} else := array.concat(
	array.concat(
		[sprintf("login %q is not a principal of the certificate", [login]) | not id.principals[login]],
		[sprintf("login %q is denied by role %q", [login, r]) | some r in object.get(id.login_denials, login, [])],
	),
	array.concat(
		array.concat(node_denials, invisible),
		[sprintf("no role allows login %q on node %q (roles %v)", [login, name, id.roles]) |
			count(node_denials) == 0
			count(invisible) == 0
			not login_node_selected(id, login, node_labels)
		],
	),
) if {
	node_denials := session_node_denials(id, name, node_labels)
	invisible := [sprintf("no role's node_labels match node %q", [name]) | not node_selected(id, node_labels)]
}

# session_node_denials: the roles whose deny.node_labels select the node.
session_node_denials(id, name, node_labels) := [sprintf("node %q is denied by role %q (deny.node_labels)", [name, d.role]) |
	some d in id.deny_nodes
	every k, re in d.node {
		regex.match(re, node_labels[k])
	}
]

node_selected(id, node_labels) if {
	some n in id.allow_nodes
	every k, re in n {
		regex.match(re, node_labels[k])
	}
}

login_node_selected(id, login, node_labels) if {
	some n in object.get(id.login_nodes, login, [])
	every k, re in n {
		regex.match(re, node_labels[k])
	}
}

# node_logins: for one identity and many nodes, in one evaluation, the logins the identity
# may use on each node: exactly the logins for which session_fast allows an ssh.session with
# the request in input and that node (tether ls, the web node list). Entry i is for nodes[i];
# every node is {"name", "labels"}, as the engine builds it; now is the clock as integer
# nanoseconds (data.tether.stage.now_ns).
# The grant and deny selectors see only labels, so they are evaluated once per distinct
# label set; so are the operator denies when the engine proved they cannot read the node's
# name (name_free: data.tether.stage.deny_ignores_node_name, bundles.CheckOperatorRules).
# Locks and the other operator denies are checked per node.
node_logins(id, nodes, now, name_free) := [by_labels[n.labels] | some n in nodes] if {
	identity_open(id, now)
	count(id.locks) == 0
	name_free == true
	by_labels := {node_labels: labels_logins(id, node_labels, name_free) | some node_labels in {n.labels | some n in nodes}}
} else := [node_open_logins(id, node, by_labels[node.labels], now) | some node in nodes] if {
	identity_open(id, now)
	by_labels := {node_labels: labels_logins(id, node_labels, name_free) | some node_labels in {n.labels | some n in nodes}}
} else := [[] | some _ in nodes]

# identity_open: nothing about the certificate itself stands in the way at now.
identity_open(id, now) if {
	now >= id.not_before_ns
	now < id.session_until_ns
}

# labels_logins: the logins granted, and not denied by a deny selector, on a node with
# these labels (and not denied by an operator when the denies cannot read the node's name).
labels_logins(id, node_labels, name_free) := [login |
	some login in sort(object.keys(id.login_grants))
	session_granted(id, login, node_labels)
	not session_node_denied(id, node_labels)
	not name_free_denied(login, node_labels, name_free)
]

name_free_denied(login, node_labels, name_free) if {
	name_free == true
	count(custom_denies(object.union(input, {"action": "ssh.session", "login": login, "node": {"name": "", "labels": node_labels}}))) > 0
}

# node_open_logins: of the logins the node's labels allow, those no lock or operator deny
# takes away on this node.
node_open_logins(id, node, logins, now) := [login |
	some login in logins
	session_open(id, object.union(input, {"action": "ssh.session", "login": login, "node": node}), now)
]

# session_open: nothing but a grant is missing for the session inp to be allowed.
session_open(id, inp, now) if {
	not session_locked(id, inp, now)
	count(custom_denies(inp)) == 0
}

# decide_full decides any request and lists every rule a denied request breaks.
decide_full(id, inp) := {
	"allow": ok,
	"roles": id.roles,
	"reasons": reasons(ok, grants, id, inp, now),
	"expires_at": expires_at(id, inp, now),
} if {
	now := now_ns(inp)
	grants := granted_by(id, inp)
	ok := allowed(id, inp, now, grants)
}

# An input without a usable clock is denied rather than left undefined.
decide_full(id, inp) := invalid_now(id, inp) if not now_ns(inp)

invalid_now(id, inp) := {
	"allow": false,
	"roles": id.roles,
	"reasons": [sprintf("input.now must be an RFC 3339 time, got %v", [object.get(inp, "now", null)])],
	"expires_at": null,
}

now_ns(inp) := time.parse_rfc3339_ns(inp.now)

action(inp) := object.get(inp, "action", "")

# forwarding.actions (port and agent forwarding) are ssh.session requests with another action.
known_actions := {"ssh.session", "node.list", "cluster.route", "cluster.list", "cert.issue"} | forwarding.actions

# Actions whose verdict takes the lookup path; the others are decided from their problems.
lookup_actions := {"ssh.session", "node.list", "cluster.route", "cluster.list"}

node_labels(inp) := object.get(inp, ["node", "labels"], {})

node_name(inp) := object.get(inp, ["node", "name"], "")

# ---- the verdict -------------------------------------------------------------------------

allowed(id, inp, now, grants) if {
	action(inp) in lookup_actions
	count(id.static_problems) == 0
	now >= id.not_before_ns
	now < id.valid_before_ns
	count(grants) > 0
	not action_denied(id, inp)
	requirements_met(id, inp, now)
	not locked(id, inp, now)
	count(custom_denies(inp)) == 0
} else := false if {
	action(inp) in lookup_actions
} else := count(problems(id, inp, now)) == 0

# granted_by names what grants the action; empty when nothing does.
# The granting roles' reasons come sorted.
granted_by(id, inp) := session_granted_by(id, inp) if action(inp) == "ssh.session"

# session_granted_by: the roles that allow the login on the node (ssh.session, and the
# forwarding actions that ride on it).
session_granted_by(id, inp) := sort([sprintf("role %q allows login %q on node %q", [g.role, login, node_name(inp)]) |
	some g in object.get(id.login_grants, login, [])
	labels.matches_keys(g.node, node_labels(inp))
]) if {
	login := object.get(inp, "login", "")
}

granted_by(id, inp) := forwarding.granted(session_granted_by(id, inp), id, action(inp)) if action(inp) in forwarding.actions

granted_by(id, inp) := [sprintf("role %q selects node %q", [g.role, node_name(inp)]) |
	some g in id.allow
	labels.matches(g.node, node_labels(inp))
] if action(inp) == "node.list"

granted_by(id, inp) := ["cluster has no labels and no role restricts clusters by labels"] if {
	action(inp) in {"cluster.route", "cluster.list"}
	rc := data.tether.remote_clusters[object.get(inp, ["remote_cluster", "name"], "")]
	cluster_open(id, object.get(rc, "labels", {}))
}

granted_by(id, inp) := [sprintf("role %q selects cluster %q", [g.role, name]) |
	some g in id.allow
	labels.matches(g.cluster, rc_labels)
] if {
	action(inp) in {"cluster.route", "cluster.list"}
	name := object.get(inp, ["remote_cluster", "name"], "")
	rc_labels := object.get(data.tether.remote_clusters[name], "labels", {})
	not cluster_open(id, rc_labels)
}

granted_by(_, inp) := [] if {
	action(inp) in {"cluster.route", "cluster.list"}
	not data.tether.remote_clusters[object.get(inp, ["remote_cluster", "name"], "")]
}

granted_by(id, inp) := [sprintf("roles %v allow the certificate", [id.roles])] if action(inp) == "cert.issue"

granted_by(_, inp) := [] if not action(inp) in known_actions

# action_denied: a deny selector of some role selects the node or cluster.
action_denied(id, inp) if {
	action(inp) in {"ssh.session", "node.list"}
	some d in id.deny_nodes
	labels.matches_keys(d.node, node_labels(inp))
}

action_denied(id, inp) if {
	action(inp) in {"cluster.route", "cluster.list"}
	rc := data.tether.remote_clusters[object.get(inp, ["remote_cluster", "name"], "")]
	some d in id.deny
	labels.matches_deny(d.cluster, object.get(rc, "labels", {}))
}

requirements_met(_, inp, _) if not action(inp) in requirement_actions

requirements_met(id, inp, now) if {
	action(inp) in requirement_actions
	count(id.requirement_problems) == 0
	age_ok(id, now)
}

age_ok(id, _) if id.max_age_deadline_ns == 0

age_ok(id, now) if now <= id.max_age_deadline_ns

locked(id, inp, now) if {
	some l in id.locks
	lock_applies(l, inp, now)
}

# ---- the problems, in words ------------------------------------------------------------

problems(id, inp, now) := array.concat(
	array.concat(common_problems(id, inp, now), action_problems(id, inp)),
	array.concat(lock_problems(id, inp, now), custom_problems(inp)),
)

# Certificate trust, validity and role problems apply to every action but cert.issue,
# whose certificate does not exist yet.
common_problems(id, inp, now) := array.concat(
	id.static_problems,
	array.concat(
		certs.time_problems(id.valid_after_ns, id.valid_before_ns, now),
		requirement_problems(id, inp, now),
	),
) if action(inp) != "cert.issue"

common_problems(id, inp, _) := array.concat(id.cluster_problems, id.role_problems) if action(inp) == "cert.issue"

action_problems(_, inp) := [sprintf("unknown action %q", [action(inp)])] if not action(inp) in known_actions

action_problems(id, inp) := session_problems(id, inp) if action(inp) == "ssh.session"

# Port and agent forwarding: every rule of the session, then the roles' option.
action_problems(id, inp) := array.concat(session_problems(id, inp), forwarding.option_problems(id, action(inp))) if {
	action(inp) in forwarding.actions
}

action_problems(id, inp) := node_problems(id, object.get(inp, "node", {})) if action(inp) == "node.list"

action_problems(id, inp) := cluster_problems(id, inp) if action(inp) in {"cluster.route", "cluster.list"}

action_problems(id, inp) := issue_problems(id, inp) if action(inp) == "cert.issue"

# ssh.session: usable logins = cert principals ∩ roles' logins − denied logins, on a node
# that some role's node_labels select and no role's deny.node_labels select.
session_problems(id, inp) := [sprintf("user %s@%s is not authorized to login as %s@%s: %s", [id.user, id.origin, login, data.tether.cluster.name, p]) |
	some p in session_details(id, login, node)
] if {
	login := object.get(inp, "login", "")
	node := object.get(inp, "node", {})
}

session_details(id, login, node) := array.concat(
	array.concat(
		[sprintf("login %q is not a principal of the certificate", [login]) | not id.principals[login]],
		[sprintf("login %q is denied by role %q", [login, d.role]) | some d in id.deny; d.logins[login]],
	),
	array.concat(
		node_problems(id, node),
		[sprintf("no role allows login %q on node %q (roles %v)", [login, object.get(node, "name", ""), id.roles]) |
			count(node_problems(id, node)) == 0
			not login_granted(id, login, node)
		],
	),
)

login_granted(id, login, node) if {
	some g in id.allow
	g.logins[login]
	labels.matches(g.node, object.get(node, "labels", {}))
}

# node.list (and the node part of ssh.session): deny.node_labels first, then allow.
node_problems(id, node) := array.concat(
	[sprintf("node %q is denied by role %q (deny.node_labels)", [object.get(node, "name", ""), d.role]) |
		some d in id.deny
		labels.matches_deny(d.node, object.get(node, "labels", {}))
	],
	[sprintf("no role's node_labels match node %q", [object.get(node, "name", "")]) | not node_visible(id, node)],
)

node_visible(id, node) if {
	some g in id.allow
	labels.matches(g.node, object.get(node, "labels", {}))
}

# cluster.route and cluster.list: cluster_labels of the roles against the labels the root's
# admins set on the remote_cluster (never what the leaf sends). A cluster the user may not
# see is reported as not found.
cluster_problems(_, inp) := [sprintf("cluster %q not found", [name])] if {
	name := object.get(inp, ["remote_cluster", "name"], "")
	not data.tether.remote_clusters[name]
}

cluster_problems(id, inp) := [sprintf("cluster %q not found: %s", [name, why]) | some why in cluster_hidden(id, rc_labels)] if {
	name := object.get(inp, ["remote_cluster", "name"], "")
	rc_labels := object.get(data.tether.remote_clusters[name], "labels", {})
}

cluster_hidden(id, rc_labels) := [] if cluster_open(id, rc_labels)

cluster_hidden(id, rc_labels) := array.concat(
	[sprintf("its labels are denied by role %q", [d.role]) | some d in id.deny; labels.matches_deny(d.cluster, rc_labels)],
	["no role's cluster_labels match its labels" | not cluster_allowed(id, rc_labels)],
) if {
	not cluster_open(id, rc_labels)
}

# If no role has any cluster_labels and the cluster has none, it is visible.
cluster_open(id, rc_labels) if {
	count(rc_labels) == 0
	not any_cluster_labels(id)
}

any_cluster_labels(id) if {
	some g in array.concat(id.allow, id.deny)
	g.has_cluster_labels
}

cluster_allowed(id, rc_labels) if {
	some g in id.allow
	labels.matches(g.cluster, rc_labels)
}

# cert.issue: every requested role must exist, every principal must be a login the roles
# allow (and none denies), and a route_to_cluster must name this cluster or a remote
# cluster the roles may see.
issue_problems(id, inp) := array.concat(
	array.concat(
		[sprintf("role %q does not exist", [r]) | some r in object.get(inp, ["cert", "roles"], []); not data.tether.roles[r]],
		[sprintf("roles %v do not allow login %q", [id.roles, p]) | some p in object.get(inp, ["cert", "principals"], []); not issuable(id, p)],
	),
	route_problems(id, object.get(inp, ["cert", "route_to_cluster"], "")),
)

# route_problems: a certificate routed to a cluster is issued only when that cluster is
# this one, or a remote cluster that exists and that the roles' cluster_labels let the user
# see (the rule of cluster.route). Missing and hidden read the same, byte for byte, so the
# answer never tells whether a hidden leaf exists.
route_problems(_, route) := [] if route == ""

route_problems(_, route) := [] if route == data.tether.cluster.name

route_problems(id, route) := [sprintf("remote cluster %q not found", [route])] if {
	route != ""
	route != data.tether.cluster.name
	not route_visible(id, route)
}

route_problems(id, route) := [] if {
	route != data.tether.cluster.name
	route_visible(id, route)
}

route_visible(id, name) if {
	rc := data.tether.remote_clusters[name]
	count(cluster_hidden(id, object.get(rc, "labels", {}))) == 0
}

# A certificate may name a login some role allows and no role denies; node labels decide
# access to a node, not what a certificate may carry.
issuable(id, login) if {
	some g in id.allow
	g.logins[login]
	not id.login_denials[login]
}

# ---- per-role requirements (ssh.session and cluster.route) ---------------------------

requirement_actions := {"ssh.session", "cluster.route"} | forwarding.actions

requirement_problems(id, inp, now) := array.concat(
	id.requirement_problems,
	[sprintf("role %q accepts certificates at most %ds old; this one is %ds old", [r, ns / 1000000000, (now - id.valid_after_ns) / 1000000000]) |
		some req in id.requirements.max_age
		[r, ns] := req
		now - id.valid_after_ns > ns
	],
) if action(inp) in requirement_actions

requirement_problems(_, inp, _) := [] if not action(inp) in requirement_actions

# ---- locks -----------------------------------------------------------------------------

lock_problems(id, inp, now) := [lock_message(l) | some l in id.locks; lock_applies(l, inp, now)]

# The identity holds the locks whose user / role / remote_cluster targets it meets; the
# request decides their login and node targets. Every target field must match.
lock_applies(l, inp, now) if {
	lock_live(l, now)
	every k, v in l.target {
		request_target(k, v, inp)
	}
}

lock_live(l, _) if object.get(l, "expires_ns", 0) == 0

lock_live(l, now) if object.get(l, "expires_ns", 0) > now

request_target("login", v, inp) if v == object.get(inp, "login", "")

request_target("node", v, inp) if v == node_name(inp)

request_target(k, _, _) if not k in {"login", "node"}

lock_message(l) := sprintf("locked by lock %q: %s", [l.name, l.message]) if l.message != ""

lock_message(l) := sprintf("locked by lock %q", [l.name]) if object.get(l, "message", "") == ""

# ---- operators' modules ------------------------------------------------------------------

custom_problems(inp) := [sprintf("denied by operator policy: %s", [m]) | some m in custom_denies(inp)]

custom_denies(inp) := d if {
	d := data.tether.custom.deny with input as inp
}

# ---- reasons and expiry ------------------------------------------------------------------

# An allow names what grants it and any notes (such as a mapped role skipped because it
# does not exist here); a denial lists every rule the request breaks.
reasons(true, grants, id, _, _) := array.concat(grants, id.notes)

reasons(false, _, id, inp, now) := problems(id, inp, now)

# expires_at is the next instant at which a time-based rule could change this decision
# (validity window, certificate age, a lock's expiry), or null when none can. A cached
# decision must not be served past it. For cert.issue it is the latest valid_before the
# roles' max_session_ttl permits.
expires_at(id, inp, now) := next_bound(id, now) if action(inp) != "cert.issue"

expires_at(id, inp, now) := time.format(min(issue_caps(id, now))) if action(inp) == "cert.issue"

next_bound(id, now) := time.format(later[0]) if {
	later := [b | some b in id.bounds; b > now]
	count(later) > 0
} else := null

# The certificate lives at most the shortest max_session_ttl of its roles (Teleport's 30
# hours for a role that sets none, and when there are no roles).
issue_caps(id, now) := {c |
	some c in array.concat(
		[b | b := id.valid_before_ns; b > 0],
		[t |
			some ns in array.concat(id.requirements.max_session_ttl_ns, [identity.default_max_session_ttl_ns | count(id.requirements.max_session_ttl_ns) == 0])
			t := now + ns
		],
	)
}
