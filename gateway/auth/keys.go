package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/resource"
)

// keyOwner is the (cluster, CA type) a public key belongs to.
type keyOwner struct{ cluster, typ string }

func (o keyOwner) String() string { return fmt.Sprintf("%s CA of %s", o.typ, o.cluster) }

// keyIndex maps the SHA256 fingerprint of every CA public key (SSH keys and the keys of
// TLS CA certificates alike, so one key cannot hide as both) to its one owner.
type keyIndex map[string]keyOwner

// add records every key of c, or says which key already belongs to whom (c included:
// one key twice in one CA is refused too).
func (ix keyIndex) add(c *resource.CertAuthority) error {
	fps, err := caFingerprints(c)
	if err != nil {
		return err
	}
	owner := keyOwner{resource.NormalizeClusterName(c.Spec.ClusterName), c.Spec.Type}
	for _, fp := range fps {
		if prev, ok := ix[fp]; ok {
			return fmt.Errorf("key %s of the %s is already the %s's: a CA key belongs to one cluster and CA type", fp, owner, prev)
		}
		ix[fp] = owner
	}
	return nil
}

// caFingerprints lists the fingerprints of c's public keys (active and additionally
// trusted, SSH and TLS).
func caFingerprints(c *resource.CertAuthority) ([]string, error) {
	var out []string
	for _, set := range []resource.CAKeySet{c.Spec.ActiveKeys, c.Spec.AdditionalTrustedKeys} {
		for i, k := range set.SSH {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
			if err != nil {
				return nil, fmt.Errorf("%s CA of %s: ssh key %d: %w", c.Spec.Type, c.Spec.ClusterName, i, err)
			}
			out = append(out, ssh.FingerprintSHA256(pub))
		}
		for i, k := range set.TLS {
			block, _ := pem.Decode([]byte(k.Cert))
			if block == nil {
				return nil, fmt.Errorf("%s CA of %s: tls cert %d: not PEM", c.Spec.Type, c.Spec.ClusterName, i)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s CA of %s: tls cert %d: %w", c.Spec.Type, c.Spec.ClusterName, i, err)
			}
			pub, err := ssh.NewPublicKey(cert.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("%s CA of %s: tls cert %d: %w", c.Spec.Type, c.Spec.ClusterName, i, err)
			}
			out = append(out, ssh.FingerprintSHA256(pub))
		}
	}
	return out, nil
}

// knownKeys indexes every CA key this cluster knows: its own CAs (active and rotation
// keys, all three types) and every stored CA of another cluster (leaves on a root, roots
// on a leaf).
func (s *Service) knownKeys(ctx context.Context) (keyIndex, error) {
	return s.knownKeysExcept(ctx, "", nil)
}

// checkNewCAs refuses cas (one cluster's CAs about to be stored) when one of their keys is
// a key this cluster already knows, or when they share a key among themselves.
func (s *Service) checkNewCAs(ctx context.Context, cas ...*resource.CertAuthority) error {
	ix, err := s.knownKeys(ctx)
	if err != nil {
		return err
	}
	for _, c := range cas {
		if err := ix.add(c); err != nil {
			return err
		}
	}
	return nil
}
