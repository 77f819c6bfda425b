// Package ca owns a Tether cluster's certificate authorities: an SSH user CA, an SSH host
// CA, an X.509 CA and an SSH openssh CA per cluster. It generates and stores their keys,
// issues user, host and TLS certificates, verifies the signature on a user certificate
// against the set of trusted CA keys, and rotates a CA without cutting trust.
//
// # The model
//
// An [Authority] is one CA of one cluster ([UserCA], [HostCA], [TLSCA] or [OpenSSHCA]). It
// holds the key that signs and, during a rotation, one more key that is trusted but does
// not sign (see [RotationPhase]). [Cluster] groups a cluster's four authorities and stores
// them in a directory; private keys are written 0600 and a key file readable by anyone
// else is refused when loading, as is one key held by two authorities.
//
// The user CA signs users' login certificates; the openssh CA signs only the certificates
// a cluster's enforcement point issues for one node connection it decided
// ([UserCertRequest.NodeAccess]), and nodes trust only it ([VerifyNodeAccess]; OpenSSH's
// TrustedUserCAKeys). So a login certificate never opens a node around the decision. The
// openssh CA is local to its cluster: it is never part of a trust between clusters.
//
// Verification is split the way DESIGN.md §3 splits it: Go checks cryptography, Rego
// checks rules. [VerifyUser] answers only "which trusted key signed this user certificate,
// and is the signature good"; it deliberately ignores principals and validity times.
// [ReadUserCert] then reads the verified certificate's Tether extensions strictly into
// [UserClaims]; policy.CertFromSSH maps those to the decision input (this package does not
// depend on the policy engine). Whether that signer is trusted for
// this cluster right now, whether the certificate is inside its validity window and which
// logins it may use are decided by the policy.
//
// # Certificates
//
// User certificates carry logins as principals and Tether's facts as extensions (never
// critical options, which OpenSSH refuses when it does not know them): see [ExtUser],
// [ExtRoles], [ExtTraits], [ExtRouteToCluster], [ExtIssuedVia] and [ExtMFAVerified].
// valid_after is backdated one minute for clock skew. Host certificates name the
// host's names and addresses. The X.509 CA is self-signed with the cluster name as its
// common name, organization and URI SAN (tether://cluster/NAME, see [ClusterURI]) and
// issues short-lived leaf certificates for the tunnel's mutual TLS.
//
// Keys are Ed25519 unless [ECDSAP256] is asked for.
package ca
