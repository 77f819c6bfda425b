// Package identity is the admin identity tetherctl uses against a running cluster: an
// X.509 client certificate from the cluster's TLS CA (common name AdminCommonName and the
// URI tether://cluster/<name>/admin), its private key, the TLS CA certificate the client
// verifies the server with, and the address of the auth server. tetherd writes it to
// <data_dir>/admin-identity.pem (0600) at start; tetherctl reads it with --data-dir or -i.
package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tetherproject/tether/ca"
)

// FileName is the admin identity's name in the data directory.
const FileName = "admin-identity.pem"

// AdminCommonName is the common name of admin certificates.
const AdminCommonName = "tether-admin"

// authServerHeader is the line in an identity file naming the auth server.
const authServerHeader = "tether-auth-server: "

// AdminURI marks a certificate of cluster as an admin's.
func AdminURI(cluster string) *url.URL {
	u := ca.ClusterURI(cluster)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/admin"
	return u
}

// Identity is a loaded admin identity.
type Identity struct {
	// Cert is the client certificate and key.
	Cert tls.Certificate
	// Leaf is the parsed client certificate.
	Leaf *x509.Certificate
	// RootCAs verifies the auth server.
	RootCAs *x509.CertPool
	// AuthServer is host:port of the auth server's web API, if the file names one.
	AuthServer string
}

// Issue makes an admin identity file's content: a fresh key, a client certificate from
// the cluster's TLS CA valid for ttl (capped by ca.MaxTLSTTL), the CA certificates and the
// auth server's address.
func Issue(c *ca.Cluster, authServer string, ttl time.Duration) ([]byte, error) {
	key, err := ca.GenerateKey(ca.Ed25519)
	if err != nil {
		return nil, err
	}
	cert, err := c.TLS.IssueTLS(ca.TLSCertRequest{
		PublicKey:  key.Public(),
		CommonName: AdminCommonName,
		URIs:       []*url.URL{AdminURI(c.Name)},
		Client:     true,
		TTL:        ttl,
	})
	if err != nil {
		return nil, fmt.Errorf("issuing the admin identity: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Tether admin identity for cluster %s, valid until %s. Keep it secret.\n", c.Name, cert.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(&buf, "%s%s\n", authServerHeader, authServer)
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, caCert := range c.TLS.CACerts() {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	}
	return buf.Bytes(), nil
}

// WriteFile writes an identity atomically with mode 0600.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Parse reads an identity file: the first CERTIFICATE is the client's, the PRIVATE KEY its
// key, the later CERTIFICATEs the CAs the server is verified with.
func Parse(data []byte) (*Identity, error) {
	id := &Identity{RootCAs: x509.NewCertPool()}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), authServerHeader); ok {
			id.AuthServer = strings.TrimSpace(v)
			break
		}
	}
	var certPEM, keyPEM []byte
	nCA := 0
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE" && certPEM == nil:
			certPEM = pem.EncodeToMemory(b)
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("identity: CA certificate: %w", err)
			}
			id.RootCAs.AddCert(c)
			nCA++
		case b.Type == "PRIVATE KEY":
			keyPEM = pem.EncodeToMemory(b)
		}
	}
	if certPEM == nil || keyPEM == nil || nCA == 0 {
		return nil, errors.New("identity: want a client certificate, its private key and the cluster's CA certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id.Cert = cert
	id.Leaf = cert.Leaf
	if id.Leaf == nil {
		if id.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// Load reads and parses an identity file.
func Load(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	id, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// IsAdmin reports whether a client certificate, already verified against cluster's TLS
// CA, is an admin's.
func IsAdmin(cert *x509.Certificate, cluster string) bool {
	if cert.Subject.CommonName != AdminCommonName {
		return false
	}
	want := AdminURI(cluster).String()
	for _, u := range cert.URIs {
		if u.String() == want {
			return true
		}
	}
	return false
}

// NeedsRenewal reports whether the identity at path is missing, unreadable or expires
// within margin.
func NeedsRenewal(path string, margin time.Duration, now time.Time) bool {
	id, err := Load(path)
	if err != nil {
		return true
	}
	return now.Add(margin).After(id.Leaf.NotAfter)
}
