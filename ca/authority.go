package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/resource"
)

// Type is the kind of certificate authority. Its values are the cert_authority
// resource's spec.type.
type Type string

// The four certificate authorities of a cluster.
const (
	UserCA Type = resource.CATypeUser // signs users' SSH login certificates
	HostCA Type = resource.CATypeHost // signs SSH host certificates
	TLSCA  Type = resource.CATypeTLS  // signs X.509 certificates for the tunnel's mutual TLS
	// OpenSSHCA signs only the enforcement point's per-connection SSH user certificates
	// for nodes (OpenSSH servers trust it as TrustedUserCAKeys, node agents learn it at
	// join and heartbeat). It is local: never sent in the trust handshake, so no other
	// cluster holds it, and no login certificate is ever signed by it.
	OpenSSHCA Type = resource.CATypeOpenSSH
)

func (t Type) valid() bool { return t == UserCA || t == HostCA || t == TLSCA || t == OpenSSHCA }

func (t Type) ssh() bool { return t == UserCA || t == HostCA || t == OpenSSHCA }

// Authority is one certificate authority of one cluster: the key that signs and, during a
// rotation, one more key that is trusted but does not sign. It is safe for concurrent
// use; issuing takes a read lock, rotating a write lock.
type Authority struct {
	// Clock, when set, replaces time.Now for issuing certificates. Set it before use.
	Clock func() time.Time

	cluster string
	typ     Type
	alg     Algorithm

	mu      sync.RWMutex
	phase   RotationPhase
	signing *caKey
	other   *caKey // trusted besides signing while a rotation is under way, else nil
	lastGen int    // generation of the newest key, for file names
}

// caKey is one key of an authority.
type caKey struct {
	gen    int // 1 for the first key, +1 for each rotation
	priv   crypto.Signer
	signer ssh.Signer        // SSH authorities
	cert   *x509.Certificate // the self-signed CA certificate of a TLS authority
}

// NewAuthority generates a certificate authority of type typ for cluster with a new key
// of algorithm alg ("" means Ed25519).
func NewAuthority(cluster string, typ Type, alg Algorithm) (*Authority, error) {
	if err := checkClusterName(cluster); err != nil {
		return nil, err
	}
	if !typ.valid() {
		return nil, fmt.Errorf("unknown certificate authority type %q; use user, host, tls or openssh", typ)
	}
	a := &Authority{cluster: cluster, typ: typ, alg: alg.orDefault(), phase: Standby}
	k, err := a.newKey(1)
	if err != nil {
		return nil, err
	}
	a.signing, a.lastGen = k, 1
	return a, nil
}

// checkClusterName refuses names that cannot be a cluster's: empty, overlong, or with
// whitespace, control characters or a slash (names become paths and URIs).
func checkClusterName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("cluster name is empty")
	case len(name) > 253 || !utf8.ValidString(name):
		return fmt.Errorf("cluster name %q is not a valid name (at most 253 bytes of UTF-8)", name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '\\' }):
		return fmt.Errorf("cluster name %q contains whitespace, a control character or a slash", name)
	}
	return nil
}

// newKey generates a key of the authority's algorithm with generation gen.
func (a *Authority) newKey(gen int) (*caKey, error) {
	priv, err := GenerateKey(a.alg)
	if err != nil {
		return nil, fmt.Errorf("generating %s key for the %s: %w", a.alg, a, err)
	}
	return a.wrapKey(gen, priv, nil)
}

// wrapKey makes a caKey of priv; for a TLS authority cert is its CA certificate, or nil
// to create one.
func (a *Authority) wrapKey(gen int, priv crypto.Signer, cert *x509.Certificate) (*caKey, error) {
	k := &caKey{gen: gen, priv: priv}
	if a.typ.ssh() {
		s, err := ssh.NewSignerFromSigner(priv)
		if err != nil {
			return nil, fmt.Errorf("using key %d of the %s: %w", gen, a, err)
		}
		k.signer = s
		return k, nil
	}
	if cert == nil {
		var err error
		if cert, err = a.selfSign(priv, a.now()); err != nil {
			return nil, fmt.Errorf("creating the certificate of the %s: %w", a, err)
		}
	}
	k.cert = cert
	return k, nil
}

// String names the authority for messages: "user CA of root.example.com".
func (a *Authority) String() string { return fmt.Sprintf("%s CA of %s", a.typ, a.cluster) }

// Cluster is the name of the cluster the authority belongs to.
func (a *Authority) Cluster() string { return a.cluster }

// Type is the authority's type.
func (a *Authority) Type() Type { return a.typ }

// Algorithm is the algorithm of the authority's keys.
func (a *Authority) Algorithm() Algorithm { return a.alg }

// Phase is the authority's rotation phase.
func (a *Authority) Phase() RotationPhase {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.phase
}

func (a *Authority) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// SigningKey is the public key that signs new SSH certificates (nil for a TLS authority).
func (a *Authority) SigningKey() ssh.PublicKey {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.signing.signer == nil {
		return nil
	}
	return a.signing.signer.PublicKey()
}

// TrustedKeys lists the SSH public keys that verify this authority's certificates: the
// signing key first, then the key kept trusted during a rotation. It is nil for a TLS
// authority.
func (a *Authority) TrustedKeys() []TrustedKey {
	if !a.typ.ssh() {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := []TrustedKey{{Cluster: a.cluster, Type: a.typ, Key: a.signing.signer.PublicKey()}}
	if a.other != nil {
		out = append(out, TrustedKey{Cluster: a.cluster, Type: a.typ, Key: a.other.signer.PublicKey()})
	}
	return out
}

// CACerts lists the X.509 CA certificates that verify this authority's certificates: the
// signing one first, then the one kept trusted during a rotation. It is nil for an SSH
// authority.
func (a *Authority) CACerts() []*x509.Certificate {
	if a.typ != TLSCA {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := []*x509.Certificate{a.signing.cert}
	if a.other != nil {
		out = append(out, a.other.cert)
	}
	return out
}

// IssuedBySigning reports whether cert was issued by this TLS authority's signing CA
// certificate (by its authority key id, or its signature when it has none): a
// certificate a running server presents is re-issued when it is not, so that a rotation
// reaches it without a restart. False for an SSH authority.
func (a *Authority) IssuedBySigning(cert *x509.Certificate) bool {
	if a.typ != TLSCA || cert == nil {
		return false
	}
	a.mu.RLock()
	signing := a.signing.cert
	a.mu.RUnlock()
	if len(cert.AuthorityKeyId) > 0 && len(signing.SubjectKeyId) > 0 {
		return bytes.Equal(cert.AuthorityKeyId, signing.SubjectKeyId)
	}
	return cert.CheckSignatureFrom(signing) == nil
}

// CertPool is a pool of CACerts, for tls.Config's RootCAs or ClientCAs.
func (a *Authority) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range a.CACerts() {
		p.AddCert(c)
	}
	return p
}

// Resource exports the authority as a cert_authority resource: SSH public keys in
// authorized_keys format, TLS certificates in PEM. Private keys (OpenSSH PEM for SSH,
// PKCS#8 PEM for TLS) are included only when withSecrets is set. The resource is named
// after the cluster, as Teleport names it; spec.type tells a cluster's four apart.
func (a *Authority) Resource(withSecrets bool) (*resource.CertAuthority, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	r := &resource.CertAuthority{
		Kind:     resource.KindCertAuthority,
		Version:  "v2",
		Metadata: resource.Metadata{Name: a.cluster},
		Spec:     resource.CertAuthoritySpec{Type: string(a.typ), ClusterName: a.cluster},
	}
	if err := a.exportKey(&r.Spec.ActiveKeys, a.signing, withSecrets); err != nil {
		return nil, err
	}
	if a.other != nil {
		if err := a.exportKey(&r.Spec.AdditionalTrustedKeys, a.other, withSecrets); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (a *Authority) exportKey(set *resource.CAKeySet, k *caKey, withSecrets bool) error {
	if a.typ.ssh() {
		p := resource.SSHKeyPair{PublicKey: AuthorizedKey(k.signer.PublicKey())}
		if withSecrets {
			pemBytes, err := marshalSSHPrivateKey(k.priv, a.keyComment(k))
			if err != nil {
				return fmt.Errorf("encoding key %d of the %s: %w", k.gen, a, err)
			}
			p.PrivateKey = string(pemBytes)
		}
		set.SSH = append(set.SSH, p)
		return nil
	}
	p := resource.TLSKeyPair{Cert: string(certPEM(k.cert))}
	if withSecrets {
		pemBytes, err := marshalPKCS8(k.priv)
		if err != nil {
			return fmt.Errorf("encoding key %d of the %s: %w", k.gen, a, err)
		}
		p.Key = string(pemBytes)
	}
	set.TLS = append(set.TLS, p)
	return nil
}

func (a *Authority) keyComment(k *caKey) string {
	return fmt.Sprintf("tether %s CA %s #%d", a.typ, a.cluster, k.gen)
}

// randomSerial is a certificate serial number: random, so that serials identify
// certificates in audit logs without a counter shared between gateway replicas.
func randomSerial() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}
