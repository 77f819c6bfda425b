# Certificate rules (DESIGN §3a "Certificate checks on the leaf"): a user certificate,
# signed by the leaf's own user CA or an active, trusted root user CA, used inside its
# validity window.
package tether.certs_test

import data.tether.certs
import data.tether.fixtures_test as fx

problems(cert) := fx.trust_problems(fx.leaf_world, cert)

test_root_user_ca_of_an_enabled_trust_is_trusted if {
	problems(fx.alice_cert) == []
}

test_local_user_ca_is_trusted_without_a_trusted_cluster if {
	problems(fx.bob_cert) == []
}

test_user_certificate_is_required if {
	problems(fx.put(fx.alice_cert, "type", "host")) == ["certificate is a host certificate, not a user certificate"]
}

test_certificate_without_a_type_is_not_a_user_certificate if {
	problems(object.remove(fx.alice_cert, ["type"])) == ["certificate is a untyped certificate, not a user certificate"]
}

test_unknown_ca_is_rejected if {
	problems(fx.signed_by(fx.alice_cert, fx.root, "SHA256:forged")) == [sprintf("certificate is signed by an unknown certificate authority SHA256:forged claiming cluster %q", [fx.root])]
}

test_certificate_without_a_signer_is_rejected if {
	problems(object.remove(fx.alice_cert, ["signing_ca"])) == [`certificate is signed by an unknown certificate authority  claiming cluster ""`]
}

test_host_ca_signing_a_user_certificate_is_rejected if {
	problems(fx.signed_by(fx.alice_cert, fx.root, "SHA256:root-host")) == [sprintf("certificate is signed by the host certificate authority of %s, not its user certificate authority", [fx.root])]
}

test_ca_must_belong_to_the_claimed_cluster if {
	# The leaf's own user CA cannot vouch for a certificate claiming to come from the root.
	problems(fx.signed_by(fx.alice_cert, fx.root, "SHA256:leaf-user")) == [sprintf("certificate claims cluster %q but its certificate authority belongs to %q", [fx.root, fx.leaf])]
}

test_inactive_ca_is_rejected if {
	problems(fx.signed_by(fx.alice_cert, fx.root, "SHA256:root-user-rotated")) == [sprintf("the certificate authority of %s is not active here (trust disabled or key rotated out)", [fx.root])]
}

test_disabled_trust_is_rejected if {
	problems(fx.signed_by(fx.alice_cert, fx.off_root, "SHA256:off-root-user")) == [
		sprintf("the certificate authority of %s is not active here (trust disabled or key rotated out)", [fx.off_root]),
		sprintf("trust with cluster %s is disabled", [fx.off_root]),
	]
}

# Even if a disabled trust's CA were shipped active, the trust itself decides.
test_disabled_trust_rejects_an_active_ca if {
	w := object.union(fx.leaf_world, {"cas": {"SHA256:off-root-user": fx.ca(fx.off_root, "user", true)}})
	fx.trust_problems(w, fx.signed_by(fx.alice_cert, fx.off_root, "SHA256:off-root-user")) == [sprintf("trust with cluster %s is disabled", [fx.off_root])]
}

test_ca_of_a_cluster_without_trust_is_rejected if {
	problems(fx.signed_by(fx.alice_cert, fx.stranger, "SHA256:stranger-user")) == [sprintf("cluster %s is not a trusted cluster of this one", [fx.stranger])]
}

test_type_problems_come_before_signer_problems if {
	problems(fx.signed_by(fx.put(fx.alice_cert, "type", "host"), fx.root, "SHA256:root-host")) == [
		"certificate is a host certificate, not a user certificate",
		sprintf("certificate is signed by the host certificate authority of %s, not its user certificate authority", [fx.root]),
	]
}

# ---- validity window -----------------------------------------------------------------------

after_ns := fx.now_ns - fx.hour

before_ns := fx.now_ns + fx.hour

test_certificate_inside_its_window_is_valid if {
	fx.time_problems(fx.leaf_world, after_ns, before_ns, fx.now_ns) == []
}

test_not_valid_before_valid_after if {
	after := fx.now_ns + 1
	fx.time_problems(fx.leaf_world, after, before_ns, fx.now_ns) == [sprintf("certificate is not valid before %s", [time.format(after)])]
}

test_valid_from_valid_after_inclusive if {
	fx.time_problems(fx.leaf_world, fx.now_ns, before_ns, fx.now_ns) == []
}

# With an explicit cluster max_clock_skew, valid_after may be that far in the future.
skewed_world := object.union(fx.leaf_world, {"cluster": {"max_clock_skew_ns": fx.minute}})

test_explicit_skew_accepts_valid_after_within_it if {
	fx.time_problems(skewed_world, fx.now_ns + fx.minute, before_ns, fx.now_ns) == []
	fx.time_problems(skewed_world, fx.now_ns + 1, before_ns, fx.now_ns) == []
}

test_explicit_skew_rejects_valid_after_beyond_it if {
	after := (fx.now_ns + fx.minute) + 1
	fx.time_problems(skewed_world, after, before_ns, fx.now_ns) == [sprintf("certificate is not valid before %s", [time.format(after)])]
}

test_expired_certificate_is_rejected if {
	fx.time_problems(fx.leaf_world, after_ns, fx.now_ns - fx.second, fx.now_ns) == [sprintf("certificate expired at %s", [fx.at(0 - fx.second)])]
}

test_valid_before_is_exclusive if {
	fx.time_problems(fx.leaf_world, after_ns, fx.now_ns, fx.now_ns) == [sprintf("certificate expired at %s", [fx.now])]
	fx.time_problems(fx.leaf_world, after_ns, fx.now_ns + 1, fx.now_ns) == []
}

test_expiry_gets_no_skew if {
	fx.time_problems(fx.leaf_world, after_ns, fx.now_ns - 1, fx.now_ns) != []
}

test_expiry_gets_no_skew_even_when_configured if {
	fx.time_problems(skewed_world, after_ns, fx.now_ns - 1, fx.now_ns) != []
}

test_default_skew_is_zero if {
	certs.max_clock_skew_ns == 0 with data.tether.cluster as {"name": fx.leaf}
}

test_a_certificate_can_be_both_early_and_expired if {
	count(fx.time_problems(fx.leaf_world, fx.now_ns + fx.hour, fx.now_ns, fx.now_ns)) == 2
}
