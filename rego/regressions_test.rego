# Regression tests for bugs found in review of the policy library (each was a failing
# test before its fix).
package tether.regressions_test

import data.tether.fixtures_test as fx
import data.tether.labels

# ---- labels ------------------------------------------------------------------------------

# BUG: an allow value whose pattern is no longer a valid regex once its template is expanded
# (trait "(" in "^{{internal.x}}$" gives "^($") leaves labels.join_patterns a non-empty set
# whose valid members are none, so the key's regex becomes "^(?:)$" — which matches a label
# whose value is "". An invalid allow pattern must match nothing (deny fails closed, allow
# must fail closed too). Traits come from the identity provider, so a compromised IdP can
# use this to reach nodes labelled env="".
# FIX (labels.rego, value_matcher): filter before joining, so no valid pattern means "":
#   "regex": join_patterns({p | some v in vals; is_pattern(v); v != "*"; p := pattern(v); regex.is_valid(p)}),
# (join_patterns may then drop its own regex.is_valid filter).
test_invalid_allow_pattern_matches_nothing if {
	s := fx.tsel({"env": [object.union(fx.internal("x"), {"prefix": "^", "suffix": "$"})]})
	not labels.matches(labels.compile(s, {"x": ["("]}), {"env": ""})
}

test_invalid_allow_pattern_grants_no_node if {
	broken := object.union(fx.internal("groups"), {"prefix": "^", "suffix": "$"})
	w := fx.with_roles(fx.leaf_world, {"visitor": fx.role({"logins": [fx.lit("visitor")], "node_labels": fx.tsel({"env": [broken]})})})
	cert := fx.put(fx.alice(["access"]), "traits", {"groups": ["("]})
	not fx.decision(w, fx.ssh(cert, "visitor", fx.node("unlabelled-env", {"env": ""}))).allow
}

# ---- access: cert.issue ------------------------------------------------------------------

# BUG: common_problems skips identity.problems for cert.issue (the certificate does not
# exist yet, so trust and validity do not apply) and with them the cluster check: a bundle
# of one cluster answers cert.issue for another. A decision for a cluster other than
# data.tether.cluster.name must be denied whatever the action.
# FIX: identity.base: add "cluster_problems": cluster_problems(inp);
#      access.rego:  common_problems(id, inp, _) := array.concat(id.cluster_problems, id.role_problems) if action(inp) == "cert.issue"
test_cluster_mismatch_is_denied_for_cert_issue if {
	inp := fx.put(fx.issue(["access"], ["visitor"]), "cluster", fx.leaf)
	d := fx.decision(fx.root_world, inp)
	not d.allow
	d.reasons == [sprintf("decision asked for cluster %q but this policy bundle belongs to %q", [fx.leaf, fx.root])]
}

# BUG (regression of the lookup refactor): issue_problems checks principals against
# id.login_grants, which only holds logins of roles whose node_labels can select some node.
# A role that allows a login but selects no node (its node_labels come from another role,
# or it is only for logins) then makes cert.issue refuse that principal. A principal is
# issuable when some role's allow.logins has it and no role's deny.logins does — node
# labels decide access to a node, not what a certificate may name (Teleport puts every
# role's logins in the certificate).
# FIX (access.rego): issue_problems: `not issuable(id, p)` with
#   issuable(id, login) if { some g in id.allow; g.logins[login]; not denied_login(id, login) }
#   denied_login(id, login) if { some d in id.deny; d.logins[login] }
# (or an identity lookup "issuable_logins" built the same way).
test_issue_principals_may_come_from_a_role_without_node_labels if {
	w := fx.with_roles(fx.root_world, {"logins-only": fx.role({"logins": [fx.lit("deploy")]})})
	d := fx.decision(w, fx.issue(["access", "logins-only"], ["visitor", "deploy"]))
	d.allow
}

# ---- access: expires_at ------------------------------------------------------------------

# BUG: max_cert_age allows a certificate exactly max_cert_age old (now - valid_after > max
# is the problem) so the answer flips at valid_after + max + 1ns, but identity.bounds holds
# valid_after + max. Evaluated at that exact instant, the decision is an allow whose
# expires_at skips the flip (here: valid_before), so the decision cache serves the allow
# after the certificate became too old. DESIGN §3: "A cache may only ever return what a
# fresh evaluation would return at that instant."
# FIX (identity.rego, lookups.bounds): [d | some req in b.requirements.max_age; d := (b.valid_after_ns + req[1]) + 1]
test_expires_at_is_the_first_instant_a_certificate_is_too_old if {
	cert := fx.put(fx.alice(["short-lived"]), "valid_after", fx.at(0 - fx.hour))
	d := fx.decision(fx.leaf_world, fx.ssh(cert, "visitor", fx.stage_node))
	d.allow
	d.expires_at == fx.at(1)
}

# BUG (Teleport compatibility — confirm): the 30h default max_session_ttl is always one of
# the caps, so a role with max_session_ttl 48h can never get a certificate longer than 30h.
# In Teleport the default applies to a role that does not set max_session_ttl, and the
# certificate TTL is the minimum over the roles (RoleSet.AdjustSessionTTL).
# FIX: identity.requirements: "max_session_ttl_ns": [role_ttl(r) | some r in roles] with
#        role_ttl(r) := ns if { ns := object.get(data.tether.roles[r], ["options", "max_session_ttl_ns"], 0); ns > 0 }
#        else := 30h;
#      access.issue_caps: the default only when that list is empty.
#      (identity_test.test_requirements_collect_* then expect one entry per role.)
test_issue_honours_a_max_session_ttl_longer_than_the_default if {
	w := fx.with_roles(fx.root_world, {"long": fx.role({"logins": [fx.internal("logins")], "node_labels": fx.wildcard, "options": {"max_session_ttl_ns": 48 * fx.hour}})})
	inp := fx.issue(["long"], ["visitor"])
	d := fx.decision(w, fx.put(inp, "cert", fx.put(inp.cert, "valid_before", fx.at(40 * fx.hour))))
	d.allow
	d.expires_at == fx.at(40 * fx.hour)
}
