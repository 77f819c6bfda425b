package node

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
)

// Files under the agent's directory (data_dir/node), all 0600 in a 0700 directory.
const (
	keyFile      = "key"           // the node key, OpenSSH PEM
	identityFile = "identity.json" // what the join and the heartbeats returned
)

// identity is what the node holds of its membership: its key, and the cluster's
// latest answer.
type identity struct {
	key    crypto.Signer
	signer ssh.Signer
	// Name is the node name the identity was issued for.
	Name string `json:"name"`
	// TokenSHA256 is the SHA-256 (hex) of the node token of the join that made this
	// identity, or of a later node.token whose join failed (tried once, not at every
	// start), so a restart with another node.token joins again. Empty in identities saved
	// before it was recorded. The token itself is never stored.
	TokenSHA256 string `json:"token_sha256,omitempty"`
	auth.NodeCredentials
}

// tokenDigest is what an identity records of the token it joined with.
func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// loadOrCreateKey reads the node key, or makes one.
func loadOrCreateKey(dir string) (crypto.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, keyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "tether node key")
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, pem.EncodeToMemory(block)); err != nil {
			return nil, fmt.Errorf("writing the node key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the node key: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the node key %s is readable by others (mode %v); make it 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("reading the node key %s: %w", path, err)
	}
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case crypto.Signer:
		return k, nil
	}
	return nil, fmt.Errorf("the node key %s is a %T, not a signing key", path, raw)
}

// loadIdentity reads the saved identity for key; ok is false when there is none.
func loadIdentity(dir string, key crypto.Signer) (*identity, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	id := &identity{}
	if err := json.Unmarshal(data, id); err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", filepath.Join(dir, identityFile), err)
	}
	if err := id.bind(key); err != nil {
		return nil, false, fmt.Errorf("%s: %w", filepath.Join(dir, identityFile), err)
	}
	return id, true, nil
}

// bind attaches key and checks that the certificates certify it.
func (id *identity) bind(key crypto.Signer) error {
	id.key = key
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return err
	}
	cert, err := id.hostCert()
	if err != nil {
		return err
	}
	if string(cert.Key.Marshal()) != string(signer.PublicKey().Marshal()) {
		return errors.New("the host certificate certifies another key than the node key")
	}
	if id.signer, err = ssh.NewCertSigner(cert, signer); err != nil {
		return err
	}
	_, err = id.tlsCertificate()
	return err
}

// checkAnswer checks what a join or heartbeat answered: bound, and with the openssh CA
// keys the node is to trust. (A saved identity may lack them, when it was written before
// the openssh CA existed; the node then accepts no one until its first heartbeat.)
func (id *identity) checkAnswer(key crypto.Signer) error {
	if err := id.bind(key); err != nil {
		return err
	}
	_, err := id.nodeCAs()
	return err
}

func (id *identity) save(dir string) error {
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, identityFile), data)
}

func (id *identity) hostCert() (*ssh.Certificate, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(id.HostCert))
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert {
		return nil, errors.New("host certificate: not an SSH host certificate")
	}
	return cert, nil
}

// nodeCAs returns the openssh CA keys the node trusts; at least one.
func (id *identity) nodeCAs() ([]ssh.PublicKey, error) {
	var out []ssh.PublicKey
	for _, line := range id.NodeCAs {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("openssh CA key: %w", err)
		}
		if _, isCert := k.(*ssh.Certificate); isCert {
			return nil, errors.New("openssh CA key: a certificate, not a key")
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no openssh CA keys yet (the node identity predates the cluster's openssh CA): the node accepts no one until its next heartbeat succeeds")
	}
	return out, nil
}

func (id *identity) tlsCertificate() (tls.Certificate, error) {
	b, _ := pem.Decode([]byte(id.TLSCert))
	if b == nil || b.Type != "CERTIFICATE" {
		return tls.Certificate{}, errors.New("client certificate: no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: id.key, Leaf: leaf}, nil
}

// expired reports whether the client certificate can no longer heartbeat.
func (id *identity) expired(now time.Time) bool {
	c, err := id.tlsCertificate()
	return err != nil || !now.Before(c.Leaf.NotAfter)
}

// tlsCAs returns the cluster's TLS CA certificates the node learned.
func (id *identity) tlsCAs() []*x509.Certificate {
	var out []*x509.Certificate
	rest := []byte(id.TLSCAs)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
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
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
