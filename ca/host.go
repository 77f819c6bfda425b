package ca

import (
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostCertRequest is what goes into a host certificate for a gateway or a node.
type HostCertRequest struct {
	// PublicKey is the host's key, which the certificate certifies. Required.
	PublicKey ssh.PublicKey
	// Principals are the names and addresses clients reach the host by ("node1",
	// "node1.example.com", "10.0.0.5"). OpenSSH's client matches the name it was given
	// (without the port) against them. At least one is required.
	Principals []string
	// KeyID is the certificate's key id; empty means the first principal.
	KeyID string
	// TTL is the certificate's lifetime; zero means it never expires, as with ssh-keygen.
	// A host certificate is replaced in the update_servers phase of a rotation and stops
	// verifying when its CA key is dropped.
	TTL time.Duration
}

// IssueHost signs a host certificate with the authority's signing key, which must be a
// host CA.
func (a *Authority) IssueHost(req HostCertRequest) (*ssh.Certificate, error) {
	if a.typ != HostCA {
		return nil, fmt.Errorf("issuing a host certificate: the %s does not sign host certificates; use the host CA", a)
	}
	if err := checkHostRequest(req); err != nil {
		return nil, fmt.Errorf("issuing a host certificate for %v: %w", req.Principals, err)
	}
	keyID := req.KeyID
	if keyID == "" {
		keyID = req.Principals[0]
	}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		CertType:        ssh.HostCert,
		KeyId:           keyID,
		ValidPrincipals: append([]string(nil), req.Principals...),
	}
	if err := a.sign(cert, req.TTL, req.TTL); err != nil {
		return nil, fmt.Errorf("issuing a host certificate for %v: %w", req.Principals, err)
	}
	return cert, nil
}

func checkHostRequest(req HostCertRequest) error {
	if req.PublicKey == nil {
		return fmt.Errorf("no public key to certify")
	}
	if _, ok := req.PublicKey.(*ssh.Certificate); ok {
		return fmt.Errorf("the key to certify is itself a certificate; pass the plain public key")
	}
	if len(req.Principals) == 0 {
		return fmt.Errorf("at least one principal (host name or address) is required: a host certificate without principals is valid for every host")
	}
	if req.TTL < 0 {
		return fmt.Errorf("TTL %v is negative", req.TTL)
	}
	lim := &limits{}
	lim.text("key id", req.KeyID)
	for _, p := range req.Principals {
		lim.name("principal", p)
	}
	return lim.err
}
