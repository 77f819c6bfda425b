package ca

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/resource"
)

// Errors VerifyUser and VerifyHost wrap, for callers that branch on the cause.
var (
	// ErrWrongCertType: a host certificate presented as a user certificate, or the reverse.
	ErrWrongCertType = errors.New("wrong certificate type")
	// ErrUnknownAuthority: the signing key is not a trusted CA key of the right type.
	ErrUnknownAuthority = errors.New("unknown certificate authority")
	// ErrBadSignature: the signature does not verify with the key the certificate names.
	ErrBadSignature = errors.New("bad certificate signature")
	// ErrCriticalOption: the certificate carries a critical option Tether does not enforce.
	ErrCriticalOption = errors.New("unsupported critical option")
)

// TrustedKey is an SSH CA public key this cluster trusts, and whose it is.
type TrustedKey struct {
	Cluster string
	Type    Type // UserCA, HostCA or OpenSSHCA
	Key     ssh.PublicKey
}

// Fingerprint is Fingerprint(k.Key), the key's name in the policy's data.tether.cas.
func (k TrustedKey) Fingerprint() string { return Fingerprint(k.Key) }

// String names the key for messages: "user CA of root.example.com (SHA256:...)".
func (k TrustedKey) String() string {
	return fmt.Sprintf("%s CA of %s (%s)", k.Type, k.Cluster, k.Fingerprint())
}

// TrustedKeysOf reads the SSH public keys of a cert_authority resource (active and
// additional trusted) as TrustedKeys: how a leaf learns the keys of its root's CAs.
// Private keys in the resource are ignored.
func TrustedKeysOf(ca *resource.CertAuthority) ([]TrustedKey, error) {
	typ := Type(ca.Spec.Type)
	if !typ.ssh() {
		return nil, fmt.Errorf("cert_authority %s/%s: not an SSH certificate authority (type user, host or openssh)", ca.Metadata.Name, ca.Spec.Type)
	}
	cluster := ca.Spec.ClusterName
	if err := checkClusterName(cluster); err != nil {
		return nil, fmt.Errorf("cert_authority %s/%s: %w", ca.Metadata.Name, ca.Spec.Type, err)
	}
	var out []TrustedKey
	for _, set := range []struct {
		name string
		keys []resource.SSHKeyPair
	}{{"active_keys", ca.Spec.ActiveKeys.SSH}, {"additional_trusted_keys", ca.Spec.AdditionalTrustedKeys.SSH}} {
		for i, p := range set.keys {
			key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(p.PublicKey))
			if err == nil && len(bytes.TrimSpace(rest)) != 0 {
				err = fmt.Errorf("more than one key")
			}
			if err == nil {
				err = checkCAKey(key)
			}
			if err != nil {
				return nil, fmt.Errorf("cert_authority %s/%s: %s.ssh[%d]: %w", cluster, typ, set.name, i, err)
			}
			out = append(out, TrustedKey{Cluster: cluster, Type: typ, Key: key})
		}
	}
	return out, nil
}

// checkCAKey refuses keys that cannot be a CA's: certificates and DSA keys.
func checkCAKey(key ssh.PublicKey) error {
	switch key.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA:
		return nil
	}
	return fmt.Errorf("a %s key cannot be a certificate authority key", key.Type())
}

// VerifyUser checks that cert is a user certificate signed by one of the trusted user CA
// keys and returns that key. It checks the signature, the certificate type and that no
// critical option is present, and nothing else: principals, validity times, roles and
// whether the signer's cluster is trusted for this request are the policy's to decide.
func VerifyUser(cert *ssh.Certificate, trusted []TrustedKey) (TrustedKey, error) {
	return verify(cert, ssh.UserCert, UserCA, trusted)
}

// VerifyNodeAccess is VerifyUser for a node: cert must be a user certificate signed by one
// of the trusted openssh CA keys (the enforcement point's per-connection certificates). A
// login certificate of the user CA is refused, whatever keys trusted holds.
func VerifyNodeAccess(cert *ssh.Certificate, trusted []TrustedKey) (TrustedKey, error) {
	return verify(cert, ssh.UserCert, OpenSSHCA, trusted)
}

// VerifyHost is VerifyUser for host certificates and host CA keys. It does not check the
// principals against the host name; the caller does.
func VerifyHost(cert *ssh.Certificate, trusted []TrustedKey) (TrustedKey, error) {
	return verify(cert, ssh.HostCert, HostCA, trusted)
}

func certTypeName(t uint32) string {
	switch t {
	case ssh.UserCert:
		return "user"
	case ssh.HostCert:
		return "host"
	}
	return fmt.Sprintf("type %d", t)
}

func verify(cert *ssh.Certificate, certType uint32, want Type, trusted []TrustedKey) (TrustedKey, error) {
	if cert == nil {
		return TrustedKey{}, fmt.Errorf("no certificate")
	}
	if cert.CertType != certType {
		return TrustedKey{}, fmt.Errorf("%w: certificate %q is a %s certificate, not a %s certificate", ErrWrongCertType, cert.KeyId, certTypeName(cert.CertType), certTypeName(certType))
	}
	if cert.SignatureKey == nil || cert.Signature == nil {
		return TrustedKey{}, fmt.Errorf("%w: certificate %q is not signed", ErrBadSignature, cert.KeyId)
	}
	caBytes := cert.SignatureKey.Marshal()
	var signer *TrustedKey
	var otherType *TrustedKey
	for i := range trusted {
		if trusted[i].Key == nil || !bytes.Equal(trusted[i].Key.Marshal(), caBytes) {
			continue
		}
		if trusted[i].Type == want {
			signer = &trusted[i]
			break
		}
		otherType = &trusted[i]
	}
	if signer == nil {
		if otherType != nil {
			return TrustedKey{}, fmt.Errorf("%w: certificate %q is signed by the %s, not by a trusted %s CA key", ErrUnknownAuthority, cert.KeyId, otherType, want)
		}
		return TrustedKey{}, fmt.Errorf("%w: certificate %q is signed by %s key %s, which is not a trusted %s CA key here (if it belongs to a trusted cluster, re-sync its certificate authorities)",
			ErrUnknownAuthority, cert.KeyId, cert.SignatureKey.Type(), Fingerprint(cert.SignatureKey), want)
	}
	if cert.Signature.Format == ssh.KeyAlgoRSA {
		return TrustedKey{}, fmt.Errorf("%w: certificate %q is signed with SHA-1 (ssh-rsa), which OpenSSH no longer accepts; reissue it", ErrBadSignature, cert.KeyId)
	}
	if err := cert.SignatureKey.Verify(signedBytes(cert), cert.Signature); err != nil {
		return TrustedKey{}, fmt.Errorf("%w: certificate %q does not verify with the %s: %v (it was forged or altered)", ErrBadSignature, cert.KeyId, signer, err)
	}
	if err := checkCriticalOptions(cert); err != nil {
		return TrustedKey{}, err
	}
	return *signer, nil
}

// checkCriticalOptions refuses every critical option: Tether issues none and enforces
// none (source-address, force-command), and a verifier must refuse an option it does
// not enforce.
func checkCriticalOptions(cert *ssh.Certificate) error {
	if len(cert.CriticalOptions) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(cert.CriticalOptions))
	return fmt.Errorf("%w: certificate %q has critical options %q, which Tether does not enforce", ErrCriticalOption, cert.KeyId, names)
}

// signedBytes is the part of a certificate's wire form its signature covers: everything
// but the trailing signature, as x/crypto/ssh's CertChecker computes it.
func signedBytes(cert *ssh.Certificate) []byte {
	c := *cert
	c.Signature = nil
	out := c.Marshal()
	return out[:len(out)-4] // the empty signature's length prefix
}
