# Certificate checks that are rules rather than cryptography.
#
# Go verifies the signature before Rego runs and reports the fingerprint of the key that
# signed (input.cert.signing_ca.fingerprint). These rules decide whether that key is a CA
# this cluster trusts for user certificates right now, and whether the certificate is
# inside its validity window.
# METADATA
# title: Certificate rules
# description: >-
#   Whether the certificate signer is a CA this cluster trusts for user certificates now, and whether the certificate is inside its validity window.
package tether.certs

# trust_problems lists why a certificate's signer is not trusted here (empty when trusted).
# The order is fixed so reasons read the same every time.
trust_problems(cert) := array.concat(type_problems(cert), signer_problems(cert))

type_problems(cert) := [] if cert.type == "user"

type_problems(cert) := [sprintf("certificate is a %s certificate, not a user certificate", [object.get(cert, "type", "untyped")])] if {
	object.get(cert, "type", "") != "user"
}

signer_problems(cert) := [sprintf("certificate is signed by an unknown certificate authority %s claiming cluster %q", [fp, claimed])] if {
	fp := object.get(cert, ["signing_ca", "fingerprint"], "")
	claimed := object.get(cert, ["signing_ca", "cluster"], "")
	not data.tether.cas[fp]
}

signer_problems(cert) := ca_problems(ca, object.get(cert, ["signing_ca", "cluster"], "")) if {
	ca := data.tether.cas[cert.signing_ca.fingerprint]
}

ca_problems(ca, claimed) := array.concat(
	array.concat(st.type_problems, [sprintf("certificate claims cluster %q but its certificate authority belongs to %q", [claimed, ca.cluster]) | ca.cluster != claimed]),
	st.state_problems,
) if {
	st := ca_static(ca)
}

# ca_static is what ca_problems says of a CA whatever the certificate: ca_derived, which
# bundles.Shape evaluates at build time and stores as the CA's "derived"; computed here
# when a bundle does not carry it. The engine refuses a bundle whose stored value is not
# what ca_derived gives (identity.derived_stale).
ca_static(ca) := ca.derived if is_object(ca.derived)

else := ca_derived(ca)

# ca_derived: the problems of a CA that do not depend on the certificate it signed, in
# ca_problems' order: before the cluster claim, its type; after it, its trust state.
ca_derived(ca) := {
	"type_problems": [sprintf("certificate is signed by the %s certificate authority of %s, not its user certificate authority", [ca.type, ca.cluster]) | ca.type != "user"],
	"state_problems": array.concat(
		[sprintf("the certificate authority of %s is not active here (trust disabled or key rotated out)", [ca.cluster]) | not_active(ca)],
		array.concat(
			[sprintf("cluster %s is not a trusted cluster of this one", [ca.cluster]) | untrusted(ca.cluster)],
			[sprintf("trust with cluster %s is disabled", [ca.cluster]) | trust_disabled(ca.cluster)],
		),
	),
}

not_active(ca) if not ca.active

not_active(ca) := false if ca.active

# trust_disabled: a CA of another cluster is only trusted while the trust is enabled.
trust_disabled(cluster) := false if cluster == data.tether.cluster.name

trust_disabled(cluster) := false if {
	cluster != data.tether.cluster.name
	data.tether.trusted_clusters[cluster].enabled == true
}

trust_disabled(cluster) if {
	cluster != data.tether.cluster.name
	data.tether.trusted_clusters[cluster]
	not data.tether.trusted_clusters[cluster].enabled
}

trust_disabled(cluster) := false if {
	cluster != data.tether.cluster.name
	not data.tether.trusted_clusters[cluster]
}

# untrusted: a CA of a cluster that is neither this one nor a trusted cluster.
untrusted(cluster) := false if cluster == data.tether.cluster.name

untrusted(cluster) := false if data.tether.trusted_clusters[cluster]

untrusted(cluster) if {
	cluster != data.tether.cluster.name
	not data.tether.trusted_clusters[cluster]
}

# max_clock_skew_ns is how early a certificate may be used: the cluster's explicit
# max_clock_skew, zero unless configured. A certificate is not valid before its valid_after
# (Teleport and OpenSSH apply no tolerance there; Tether's issuers backdate valid_after by
# a minute instead).
max_clock_skew_ns := object.get(data.tether.cluster, "max_clock_skew_ns", 0)

# time_problems lists why a certificate is not valid at now_ns. valid_after is inclusive
# (minus the cluster's explicit skew, zero by default); valid_before is exclusive and gets
# no skew.
time_problems(after_ns, before_ns, now_ns) := array.concat(
	[msg | now_ns + max_clock_skew_ns < after_ns; msg := sprintf("certificate is not valid before %s", [time.format(after_ns)])],
	[msg | now_ns >= before_ns; msg := sprintf("certificate expired at %s", [time.format(before_ns)])],
)
