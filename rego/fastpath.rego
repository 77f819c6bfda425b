# The allowed-session path in a form partial evaluation can specialise.
#
# The engine partially evaluates data.tether.fastpath.result once per certificate, with
# the identity known (at data.tether.stage.identity) and the request unknown. What comes
# out is a handful of small rules OPA's rule index picks by login, and requests are then
# answered from that residual. When the residual is undefined (anything but a plain
# allow) the engine asks access.request_decision. result is exactly what
# access.session_decision returns for the same request when it is defined; the engine's
# differential test holds them equal.
# METADATA
# title: Allowed-session fast path
# description: >-
#   The allowed-session rules in the form partial evaluation specialises per certificate; equal to tether.access by a differential test.
package tether.fastpath

import data.tether.stage.identity as id

# grants: the roles that allow the requested login on the requested node.
grants contains g.role if {
	some g in id.login_grants[input.login]
	every k, re in g.node {
		regex.match(re, input.node.labels[k])
	}
}

# denied: some role's deny.node_labels select the node.
denied if {
	some d in id.deny_nodes
	every k, re in d.node {
		regex.match(re, input.node.labels[k])
	}
}

# reason: what each granting role allows (a partial set, so partial evaluation keeps it).
reason contains sprintf("role %q allows login %q on node %q", [r, input.login, input.node.name]) if {
	some r in grants
}

result := {
	"allow": true,
	"roles": id.roles,
	"reasons": array.concat(sort(reason), id.notes),
	"expires_at": id.valid_before,
} if {
	input.action == "ssh.session"
	id.plain == true
	now := time.parse_rfc3339_ns(input.now)
	now >= id.not_before_ns
	now < id.valid_before_ns
	count(grants) > 0
	not denied
	count(data.tether.custom.deny) == 0
}
