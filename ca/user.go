package ca

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// Extensions of a Tether user certificate. They are extensions, not critical options:
// OpenSSH refuses a certificate with a critical option it does not know, while it ignores
// unknown extensions, so a Tether certificate still logs in to a plain OpenSSH server.
const (
	// ExtUser is the Tether user name the certificate was issued to.
	ExtUser = "tether-user@tether.dev"
	// ExtRoles is the user's roles on the issuing cluster, a JSON array of strings.
	ExtRoles = "tether-roles@tether.dev"
	// ExtTraits is the user's traits, a JSON object of string arrays.
	ExtTraits = "tether-traits@tether.dev"
	// ExtRouteToCluster is the cluster the certificate is meant for (empty: the issuer).
	ExtRouteToCluster = "tether-route-to-cluster@tether.dev"
	// ExtIssuedVia is how the user logged in: "local" or "<connector kind>/<name>".
	ExtIssuedVia = "tether-issued-via@tether.dev"
	// ExtMFAVerified, present with an empty value, says the user passed MFA at issuance.
	ExtMFAVerified = "tether-mfa-verified@tether.dev"
	// ExtNodeAccess, present with an empty value, marks a certificate the cluster's
	// enforcement point issued for one connection to a node, after its ssh.session
	// decision. Tether node agents accept only such certificates, so a user's login
	// certificate (of the same user CA) cannot reach a node around the decision.
	ExtNodeAccess = "tether-node-access@tether.dev"
)

// openSSHPermits are the permissions ssh-keygen grants a user certificate by default.
var openSSHPermits = []string{
	"permit-X11-forwarding",
	"permit-agent-forwarding",
	"permit-port-forwarding",
	"permit-pty",
	"permit-user-rc",
}

// BackdateBy is how far before the moment of issue a certificate's validity starts, so
// that a server whose clock is a little behind accepts it.
const BackdateBy = time.Minute

// UserCertRequest is what goes into a user certificate. The policy has already decided
// that the user may have it (action cert.issue) and how long it may live (MaxTTL).
type UserCertRequest struct {
	// PublicKey is the user's key, which the certificate certifies. Required.
	PublicKey ssh.PublicKey
	// Username is the Tether user. Required.
	Username string
	// KeyID is the certificate's key id, which OpenSSH logs; empty means Username.
	KeyID string
	// Logins are the certificate's principals: the Unix logins it may be used for.
	// At least one is required, because OpenSSH and x/crypto/ssh treat a user
	// certificate without principals as valid for every login.
	Logins []string
	// Roles are the user's roles on the issuing cluster.
	Roles []string
	// Traits are the user's traits (logins, groups, ...).
	Traits map[string][]string
	// RouteToCluster names the cluster the certificate is for, when not the issuer.
	RouteToCluster string
	// IssuedVia is how the user logged in ("local", "oidc/okta").
	IssuedVia string
	// MFAVerified records that the user passed MFA to get this certificate.
	MFAVerified bool
	// TTL is the lifetime asked for. Required.
	TTL time.Duration
	// MaxTTL caps TTL; the policy computes it from the roles' max_session_ttl. Required,
	// so that forgetting it cannot issue an uncapped certificate.
	MaxTTL time.Duration
	// Withhold lists OpenSSH permits ("permit-port-forwarding", "permit-agent-forwarding",
	// ...) the certificate must not carry; the zero value grants ssh-keygen's defaults.
	// The enforcement point withholds what the policy denied, so the node refuses it too.
	Withhold []string
	// NodeAccess marks the certificate as the enforcement point's, for a node connection
	// it decided (ExtNodeAccess). Only the openssh CA issues it, and only with it set;
	// never set for a user's login certificate.
	NodeAccess bool
}

// IssueUser signs a user certificate for req with the authority's signing key, which
// must be a user CA (login certificates) or an openssh CA (the enforcement point's node
// certificates, req.NodeAccess set). valid_after is BackdateBy before now; valid_before
// is now plus the smaller of TTL and MaxTTL.
func (a *Authority) IssueUser(req UserCertRequest) (*ssh.Certificate, error) {
	switch {
	case a.typ == OpenSSHCA && !req.NodeAccess:
		return nil, fmt.Errorf("issuing a user certificate: the %s signs only the enforcement point's node certificates (NodeAccess); sign login certificates with the user CA", a)
	case a.typ == UserCA && req.NodeAccess:
		return nil, fmt.Errorf("issuing a user certificate: node certificates (NodeAccess) are the openssh CA's; the %s signs login certificates, which nodes must not accept", a)
	case a.typ != UserCA && a.typ != OpenSSHCA:
		return nil, fmt.Errorf("issuing a user certificate: the %s does not sign user certificates; use the user CA", a)
	}
	cert, err := userCert(req)
	if err != nil {
		return nil, fmt.Errorf("issuing a user certificate for %q: %w", req.Username, err)
	}
	if err := a.sign(cert, req.TTL, req.MaxTTL); err != nil {
		return nil, fmt.Errorf("issuing a user certificate for %q: %w", req.Username, err)
	}
	return cert, nil
}

// userCert builds the unsigned certificate, refusing anything ReadUserCert would refuse, so
// every certificate Tether issues reads back.
func userCert(req UserCertRequest) (*ssh.Certificate, error) {
	if req.PublicKey == nil {
		return nil, fmt.Errorf("no public key to certify")
	}
	if _, ok := req.PublicKey.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("the key to certify is itself a certificate; pass the plain public key")
	}
	if req.Username == "" {
		return nil, fmt.Errorf("username is required")
	}
	if len(req.Logins) == 0 {
		return nil, fmt.Errorf("at least one login is required: a certificate without principals is valid for every login")
	}
	if req.TTL <= 0 {
		return nil, fmt.Errorf("TTL %v must be positive", req.TTL)
	}
	if req.MaxTTL <= 0 {
		return nil, fmt.Errorf("MaxTTL %v must be positive; it is the cap the roles' max_session_ttl sets", req.MaxTTL)
	}
	keyID := req.KeyID
	if keyID == "" {
		keyID = req.Username
	}
	lim := &limits{}
	lim.text("username", req.Username)
	lim.text("key id", keyID)
	lim.text(ExtRouteToCluster, req.RouteToCluster)
	lim.text(ExtIssuedVia, req.IssuedVia)
	for _, l := range req.Logins {
		lim.name("login", l)
	}
	for _, r := range req.Roles {
		lim.name("role", r)
	}
	for k, vs := range req.Traits {
		lim.name("trait name", k)
		for _, v := range vs {
			lim.text("trait "+k, v)
		}
	}
	if lim.err != nil {
		return nil, lim.err
	}
	roles := req.Roles
	if roles == nil {
		roles = []string{}
	}
	// Written as {} and [] rather than null, which ReadUserCert refuses.
	traits := make(map[string][]string, len(req.Traits))
	for k, vs := range req.Traits {
		if vs == nil {
			vs = []string{}
		}
		traits[k] = vs
	}
	rolesJSON, err := json.Marshal(roles)
	if err != nil {
		return nil, err
	}
	traitsJSON, err := json.Marshal(traits)
	if err != nil {
		return nil, err
	}
	ext := map[string]string{
		ExtUser:   req.Username,
		ExtRoles:  string(rolesJSON),
		ExtTraits: string(traitsJSON),
	}
	if len(rolesJSON) > MaxExtensionBytes || len(traitsJSON) > MaxExtensionBytes {
		return nil, fmt.Errorf("roles or traits exceed %d bytes of JSON", MaxExtensionBytes)
	}
	if req.RouteToCluster != "" {
		ext[ExtRouteToCluster] = req.RouteToCluster
	}
	if req.IssuedVia != "" {
		ext[ExtIssuedVia] = req.IssuedVia
	}
	if req.MFAVerified {
		ext[ExtMFAVerified] = ""
	}
	if req.NodeAccess {
		ext[ExtNodeAccess] = ""
	}
	for _, p := range openSSHPermits {
		ext[p] = ""
	}
	for _, p := range req.Withhold {
		delete(ext, p)
	}
	return &ssh.Certificate{
		Key:             req.PublicKey,
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: append([]string(nil), req.Logins...),
		Permissions:     ssh.Permissions{Extensions: ext},
	}, nil
}

// sign sets the serial and validity window of cert and signs it with the signing key.
// ttl zero with maxTTL zero means a certificate that never expires (host certificates).
func (a *Authority) sign(cert *ssh.Certificate, ttl, maxTTL time.Duration) error {
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := a.now()
	cert.Serial = serial
	cert.ValidAfter = unixSeconds(now.Add(-BackdateBy))
	if ttl == 0 && maxTTL == 0 {
		cert.ValidBefore = ssh.CertTimeInfinity
	} else {
		cert.ValidBefore = unixSeconds(now.Add(min(ttl, maxTTL)))
	}
	a.mu.RLock()
	signer := a.signing.signer
	a.mu.RUnlock()
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return fmt.Errorf("signing with the %s: %w", a, err)
	}
	return nil
}

func unixSeconds(t time.Time) uint64 {
	if s := t.Unix(); s > 0 {
		return uint64(s)
	}
	return 0
}
