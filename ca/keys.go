package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Algorithm is the kind of key a certificate authority signs with.
type Algorithm string

// Supported algorithms. The zero value means Ed25519.
const (
	Ed25519   Algorithm = "ed25519"
	ECDSAP256 Algorithm = "ecdsa-p256"
)

func (a Algorithm) orDefault() Algorithm {
	if a == "" {
		return Ed25519
	}
	return a
}

// GenerateKey returns a new private key of the given algorithm ("" means Ed25519). The
// result is an ed25519.PrivateKey or an *ecdsa.PrivateKey; both work with
// ssh.NewSignerFromKey and crypto/x509.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg.orDefault() {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key algorithm %q; use %q or %q", alg, Ed25519, ECDSAP256)
	}
}

// algorithmOf names the algorithm of a key this package can use.
func algorithmOf(key crypto.Signer) (Algorithm, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return Ed25519, nil
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return ECDSAP256, nil
		}
		return "", fmt.Errorf("ECDSA key on curve %s; only P-256 is supported", k.Curve.Params().Name)
	default:
		return "", fmt.Errorf("unsupported %T key; use Ed25519 or ECDSA P-256", key)
	}
}

// marshalSSHPrivateKey encodes key in OpenSSH's private key format (PEM).
func marshalSSHPrivateKey(key crypto.Signer, comment string) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(block), nil
}

// parseSSHPrivateKey reads an OpenSSH (or PKCS#8) private key.
func parseSSHPrivateKey(data []byte) (crypto.Signer, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, err
	}
	return asSigner(raw)
}

// marshalPKCS8 encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func marshalPKCS8(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parsePKCS8 reads a PKCS#8 "PRIVATE KEY" PEM block.
func parsePKCS8(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("not a PEM \"PRIVATE KEY\" (PKCS#8) block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM block")
	}
	raw, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return asSigner(raw)
}

// asSigner normalizes what the parsers return (ssh returns *ed25519.PrivateKey) and
// refuses algorithms this package does not use.
func asSigner(raw any) (crypto.Signer, error) {
	var key crypto.Signer
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		key = *k
	case ed25519.PrivateKey:
		key = k
	case *ecdsa.PrivateKey:
		key = k
	default:
		return nil, fmt.Errorf("unsupported %T key; use Ed25519 or ECDSA P-256", raw)
	}
	if _, err := algorithmOf(key); err != nil {
		return nil, err
	}
	return key, nil
}

// parseCertPEM reads exactly one PEM "CERTIFICATE" block.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("not a PEM \"CERTIFICATE\" block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Fingerprint is the SHA256 fingerprint of an SSH public key as OpenSSH prints it
// ("SHA256:" and unpadded base64). The policy's data.tether.cas is keyed by it.
func Fingerprint(key ssh.PublicKey) string { return ssh.FingerprintSHA256(key) }

// AuthorizedKey formats key as one authorized_keys line without the trailing newline.
func AuthorizedKey(key ssh.PublicKey) string {
	b := ssh.MarshalAuthorizedKey(key)
	return string(b[:len(b)-1])
}
