package policy

import (
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

// CertFromSSH turns a user certificate ca.VerifyUser accepted, and the signer it returned,
// into the decision input's certificate: what ca.ReadUserCert reads of Tether's extensions
// (strictly; see there), signed by signer's cluster and key fingerprint. The mapping lives
// here, beside the engine, so that the CA code does not depend on the policy engine.
func CertFromSSH(cert *ssh.Certificate, signer ca.TrustedKey) (Cert, error) {
	c, err := ca.ReadUserCert(cert, signer)
	if err != nil {
		return Cert{}, err
	}
	return Cert{
		Type:           "user",
		SigningCA:      SigningCA{Cluster: signer.Cluster, Fingerprint: signer.Fingerprint()},
		Username:       c.Username,
		KeyID:          c.KeyID,
		Principals:     c.Principals,
		Roles:          c.Roles,
		Traits:         c.Traits,
		ValidAfter:     c.ValidAfter,
		ValidBefore:    c.ValidBefore,
		RouteToCluster: c.RouteToCluster,
		IssuedVia:      c.IssuedVia,
		MFAVerified:    c.MFAVerified,
	}, nil
}
