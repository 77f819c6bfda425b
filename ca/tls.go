package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// Lifetimes of X.509 certificates.
const (
	// CACertTTL is the lifetime of a cluster's self-signed X.509 CA certificate; the CA
	// is rotated long before it ends.
	CACertTTL = 10 * 365 * 24 * time.Hour
	// DefaultTLSTTL is the lifetime of a leaf certificate when the request names none.
	DefaultTLSTTL = time.Hour
	// MaxTLSTTL caps a leaf certificate's lifetime: tunnel certificates are short-lived
	// and renewed, so a rotation never waits long for old ones to expire.
	MaxTLSTTL = 24 * time.Hour
)

// ClusterURI is the URI SAN naming a cluster in its X.509 CA certificate:
// tether://cluster/NAME.
func ClusterURI(cluster string) *url.URL {
	return &url.URL{Scheme: "tether", Host: "cluster", Path: "/" + cluster}
}

// selfSign makes the X.509 CA certificate of a TLS authority: CN and O are the cluster
// name, which is also in a URI SAN.
func (a *Authority) selfSign(priv crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial128()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: a.cluster, Organization: []string{a.cluster}},
		URIs:                  []*url.URL{ClusterURI(a.cluster)},
		NotBefore:             now.Add(-BackdateBy),
		NotAfter:              now.Add(CACertTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func randomSerial128() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// TLSCertRequest is what goes into an X.509 leaf certificate for the tunnel's mutual TLS.
type TLSCertRequest struct {
	// PublicKey is the key to certify (crypto.Signer.Public()). Required.
	PublicKey crypto.PublicKey
	// CommonName names the holder, for example a proxy replica or a leaf agent.
	CommonName string
	// DNSNames, IPAddresses and URIs are the subject alternative names. A server
	// certificate needs the names clients dial.
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []*url.URL
	// Server and Client select the extended key usages; neither means both, as the
	// tunnel's two ends each serve and dial.
	Server, Client bool
	// TTL is the lifetime; zero means DefaultTLSTTL, and it is capped at MaxTLSTTL and
	// at the CA certificate's own end.
	TTL time.Duration
}

// IssueTLS signs an X.509 leaf certificate with the authority's signing key, which must
// be a TLS CA. Its subject's O is the cluster name; NotBefore is backdated BackdateBy.
func (a *Authority) IssueTLS(req TLSCertRequest) (*x509.Certificate, error) {
	if a.typ != TLSCA {
		return nil, fmt.Errorf("issuing a TLS certificate: the %s does not sign X.509 certificates; use the tls CA", a)
	}
	if req.PublicKey == nil {
		return nil, fmt.Errorf("issuing a TLS certificate for %q: no public key to certify", req.CommonName)
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("issuing a TLS certificate for %q: TTL %v is negative", req.CommonName, req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTLSTTL
	}
	ttl = min(ttl, MaxTLSTTL)
	var usages []x509.ExtKeyUsage
	if req.Server || !req.Client {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if req.Client || !req.Server {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	serial, err := randomSerial128()
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	issuer, priv := a.signing.cert, a.signing.priv
	a.mu.RUnlock()
	now := a.now()
	notAfter := now.Add(ttl)
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: []string{a.cluster}},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		URIs:                  req.URIs,
		NotBefore:             now.Add(-BackdateBy),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, req.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("issuing a TLS certificate for %q with the %s: %w", req.CommonName, a, err)
	}
	return x509.ParseCertificate(der)
}
