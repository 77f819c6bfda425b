// Package trust is the wire side of the trust handshake of DESIGN §4 step 2: the request a
// leaf sends to a root's POST /webapi/trustedclusters/validate (the invitation token and
// the leaf's host CA, public keys only), the root's answer (its host and user CAs, public
// keys only), a strict decoder for both, and the leaf's HTTP client for the call.
//
// What the root does with a valid request (check the token, store the CA, create the
// remote_cluster) and what the leaf does with the answer belong to package auth; this
// package only guarantees that whatever it hands over is well formed: known fields only,
// at most MaxBodySize bytes, a token of sane size, CAs of the expected type whose keys
// parse and can be CA keys, named by a DNS cluster name (resource.CheckClusterName; the
// returned resources carry it normalised). Whether a key is already someone else's is the
// auth service's question: only it knows every key of its cluster.
package trust

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
)

// ValidatePath is the root's handshake endpoint.
const ValidatePath = "/webapi/trustedclusters/validate"

// MaxBodySize bounds a handshake request or answer: 1 MiB.
const MaxBodySize = 1 << 20

// MaxTokenSize bounds an invitation token.
const MaxTokenSize = 512

// maxKeys bounds the keys of one CA (a rotation has two; leave room).
const maxKeys = 8

// RejectedTokenMessage is what a root answers (HTTP 403) for a wrong or expired token.
const RejectedTokenMessage = "access denied: the cluster token has been rejected"

// CA is one certificate authority's public keys on the wire.
type CA struct {
	// Type is "host" or "user".
	Type string `json:"type"`
	// ClusterName is the cluster that owns the CA.
	ClusterName string `json:"cluster_name"`
	// SSHPublicKeys are authorized_keys lines; the first one signs.
	SSHPublicKeys []string `json:"ssh_public_keys"`
	// TLSCerts are PEM certificates (optional).
	TLSCerts []string `json:"tls_certs,omitempty"`
}

// ValidateRequest is what a leaf sends: the token, its host CA and its TLS CA (the X.509
// CA whose certificates the leaf's tunnel agent presents; a leaf of an older version
// sends none, and its tunnel is then refused until it joins again).
type ValidateRequest struct {
	Token string `json:"token"`
	CAs   []CA   `json:"certificate_authorities"`

	tlsCA *resource.CertAuthority // checked by DecodeValidateRequest
}

// TLSCA is the leaf's TLS CA as DecodeValidateRequest checked it, or nil when the leaf
// sent none.
func (r *ValidateRequest) TLSCA() *resource.CertAuthority { return r.tlsCA }

// ValidateResponse is what a root answers: its host, user and TLS CAs.
type ValidateResponse struct {
	CAs []CA `json:"certificate_authorities"`
}

// ErrorResponse is the body of every non-2xx answer of the web API.
type ErrorResponse struct {
	Error string `json:"error"`
}

// FromResource takes the public parts of a cert_authority resource.
func FromResource(r *resource.CertAuthority) CA {
	c := CA{Type: r.Spec.Type, ClusterName: r.Spec.ClusterName}
	for _, set := range []resource.CAKeySet{r.Spec.ActiveKeys, r.Spec.AdditionalTrustedKeys} {
		for _, k := range set.SSH {
			c.SSHPublicKeys = append(c.SSHPublicKeys, k.PublicKey)
		}
		for _, k := range set.TLS {
			c.TLSCerts = append(c.TLSCerts, k.Cert)
		}
	}
	return c
}

// Resource checks the CA and turns it into a cert_authority resource (public keys only):
// the first SSH key (or, for a TLS CA, the first certificate) active, the others
// additionally trusted.
func (c CA) Resource() (*resource.CertAuthority, error) {
	if c.Type == resource.CATypeTLS {
		return c.tlsResource()
	}
	if len(c.SSHPublicKeys) == 0 {
		return nil, fmt.Errorf("%s CA of %q: no SSH public keys", c.Type, c.ClusterName)
	}
	if len(c.SSHPublicKeys) > maxKeys || len(c.TLSCerts) > maxKeys {
		return nil, fmt.Errorf("%s CA of %q: more than %d keys", c.Type, c.ClusterName, maxKeys)
	}
	r := &resource.CertAuthority{
		Kind:     resource.KindCertAuthority,
		Version:  "v2",
		Metadata: resource.Metadata{Name: c.ClusterName},
		Spec:     resource.CertAuthoritySpec{Type: c.Type, ClusterName: c.ClusterName},
	}
	for i, k := range c.SSHPublicKeys {
		p := resource.SSHKeyPair{PublicKey: strings.TrimSpace(k)}
		if i == 0 {
			r.Spec.ActiveKeys.SSH = append(r.Spec.ActiveKeys.SSH, p)
		} else {
			r.Spec.AdditionalTrustedKeys.SSH = append(r.Spec.AdditionalTrustedKeys.SSH, p)
		}
	}
	for i, pemCert := range c.TLSCerts {
		if err := checkCACert(pemCert, c.ClusterName); err != nil {
			return nil, fmt.Errorf("%s CA of %q: tls_certs[%d]: %w", c.Type, c.ClusterName, i, err)
		}
		r.Spec.ActiveKeys.TLS = append(r.Spec.ActiveKeys.TLS, resource.TLSKeyPair{Cert: pemCert})
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	// TrustedKeysOf parses every key, refuses non-CA keys and checks the cluster name.
	if _, err := ca.TrustedKeysOf(r); err != nil {
		return nil, err
	}
	return r, nil
}

// tlsResource checks a TLS CA: one to maxKeys X.509 CA certificates of the cluster (CN
// and the tether://cluster/NAME URI both name it), no SSH keys.
func (c CA) tlsResource() (*resource.CertAuthority, error) {
	if len(c.SSHPublicKeys) != 0 {
		return nil, fmt.Errorf("tls CA of %q: carries SSH public keys", c.ClusterName)
	}
	if len(c.TLSCerts) == 0 {
		return nil, fmt.Errorf("tls CA of %q: no certificates", c.ClusterName)
	}
	if len(c.TLSCerts) > maxKeys {
		return nil, fmt.Errorf("tls CA of %q: more than %d certificates", c.ClusterName, maxKeys)
	}
	if err := resource.CheckClusterName(c.ClusterName); err != nil {
		return nil, fmt.Errorf("tls CA: cluster name: %w", err)
	}
	name := resource.NormalizeClusterName(c.ClusterName)
	r := &resource.CertAuthority{
		Kind:     resource.KindCertAuthority,
		Version:  "v2",
		Metadata: resource.Metadata{Name: name},
		Spec:     resource.CertAuthoritySpec{Type: c.Type, ClusterName: name},
	}
	for i, pemCert := range c.TLSCerts {
		if err := checkCACert(pemCert, name); err != nil {
			return nil, fmt.Errorf("tls CA of %q: tls_certs[%d]: %w", c.ClusterName, i, err)
		}
		p := resource.TLSKeyPair{Cert: pemCert}
		if i == 0 {
			r.Spec.ActiveKeys.TLS = append(r.Spec.ActiveKeys.TLS, p)
		} else {
			r.Spec.AdditionalTrustedKeys.TLS = append(r.Spec.AdditionalTrustedKeys.TLS, p)
		}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func checkCACert(s, cluster string) error {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return errors.New("want exactly one PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if !cert.IsCA {
		return errors.New("not a CA certificate")
	}
	if !resource.SameCluster(cert.Subject.CommonName, cluster) {
		return fmt.Errorf("certificate is for %q, not %q", cert.Subject.CommonName, cluster)
	}
	return nil
}

// decodeStrict reads one JSON value of at most MaxBodySize bytes from r into v: unknown
// fields, trailing data and truncated input are errors.
func decodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if len(data) > MaxBodySize {
		return fmt.Errorf("body is larger than %d bytes", MaxBodySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("body is empty or truncated")
		}
		return fmt.Errorf("decoding body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("decoding body: data after the JSON value")
	}
	return nil
}

// DecodeValidateRequest reads and checks a leaf's request: a token of 1..MaxTokenSize
// printable ASCII bytes, the leaf's host CA and, optionally (an older leaf sends none),
// its TLS CA of the same cluster, whose keys parse. The returned resource is the leaf's
// host CA; req.TLSCA() is the TLS CA.
func DecodeValidateRequest(r io.Reader) (*ValidateRequest, *resource.CertAuthority, error) {
	var req ValidateRequest
	if err := decodeStrict(r, &req); err != nil {
		return nil, nil, err
	}
	if err := checkToken(req.Token); err != nil {
		return nil, nil, err
	}
	if len(req.CAs) != 1 && len(req.CAs) != 2 {
		return nil, nil, fmt.Errorf("want exactly one host certificate authority and at most one tls one, got %d CAs", len(req.CAs))
	}
	if req.CAs[0].Type != resource.CATypeHost {
		return nil, nil, fmt.Errorf("want the leaf's host CA first, got a CA of type %q", req.CAs[0].Type)
	}
	hostCA, err := req.CAs[0].Resource()
	if err != nil {
		return nil, nil, fmt.Errorf("leaf host CA: %w", err)
	}
	if len(req.CAs) == 2 {
		if req.CAs[1].Type != resource.CATypeTLS {
			return nil, nil, fmt.Errorf("want exactly one host certificate authority and at most one tls one; the second is of type %q", req.CAs[1].Type)
		}
		tlsCA, err := req.CAs[1].Resource()
		if err != nil {
			return nil, nil, fmt.Errorf("leaf tls CA: %w", err)
		}
		if tlsCA.Spec.ClusterName != hostCA.Spec.ClusterName {
			return nil, nil, fmt.Errorf("the leaf's tls CA is of cluster %q, its host CA of %q", tlsCA.Spec.ClusterName, hostCA.Spec.ClusterName)
		}
		req.tlsCA = tlsCA
	}
	return &req, hostCA, nil
}

func checkToken(t string) error {
	if t == "" {
		return errors.New("token is required")
	}
	if len(t) > MaxTokenSize {
		return fmt.Errorf("token is longer than %d bytes", MaxTokenSize)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return errors.New("token contains characters other than printable ASCII")
		}
	}
	return nil
}

// DecodeValidateResponse reads and checks a root's answer: its host and user CAs and,
// from roots that run the tunnel, its TLS CA, all of cluster root, and nothing else.
func DecodeValidateResponse(r io.Reader, root string) ([]*resource.CertAuthority, error) {
	var resp ValidateResponse
	if err := decodeStrict(r, &resp); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*resource.CertAuthority
	for _, c := range resp.CAs {
		if !resource.SameCluster(c.ClusterName, root) {
			return nil, fmt.Errorf("the root answered with a CA of cluster %q; the trusted_cluster is named %q: name the trusted_cluster after the root's cluster_name (see its /webapi/ping)", c.ClusterName, root)
		}
		if c.Type != resource.CATypeHost && c.Type != resource.CATypeUser && c.Type != resource.CATypeTLS {
			return nil, fmt.Errorf("the root answered with a CA of type %q; want host, user and tls", c.Type)
		}
		if seen[c.Type] {
			return nil, fmt.Errorf("the root answered with two %s CAs", c.Type)
		}
		seen[c.Type] = true
		r, err := c.Resource()
		if err != nil {
			return nil, fmt.Errorf("root CA: %w", err)
		}
		out = append(out, r)
	}
	if !seen[resource.CATypeHost] || !seen[resource.CATypeUser] {
		return nil, errors.New("the root's answer lacks its host or user CA")
	}
	return out, nil
}
