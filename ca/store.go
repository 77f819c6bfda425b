package ca

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On disk an authority is a directory (mode 0700) holding:
//
//	authority.json  cluster, type, algorithm, rotation phase, which keys sign and trust
//	key-N           private key N: OpenSSH PEM (SSH CAs) or PKCS#8 PEM (TLS CA), mode 0600
//	key-N.pub       its public key in authorized_keys format (SSH CAs), for operators
//	key-N.crt       its self-signed CA certificate in PEM (TLS CA)
//
// N counts the authority's keys: 1 at creation, +1 at each rotation.
const metaFile = "authority.json"

type authorityJSON struct {
	Cluster   string        `json:"cluster"`
	Type      Type          `json:"type"`
	Algorithm Algorithm     `json:"algorithm"`
	Phase     RotationPhase `json:"phase"`
	Signing   int           `json:"signing_key"`
	Trusted   int           `json:"trusted_key,omitempty"` // the other key during a rotation
	LastKey   int           `json:"last_key"`
}

// Save writes the authority to dir, creating it with mode 0700 (and tightening an
// existing dir to 0700). Private keys are written 0600. Files are replaced atomically and
// authority.json last, so a crash leaves the previous state readable; key files no longer
// used are removed afterwards.
func (a *Authority) Save(dir string) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving the %s: %w", a, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("saving the %s: %w", a, err)
	}
	keep := map[string]bool{metaFile: true}
	meta := authorityJSON{Cluster: a.cluster, Type: a.typ, Algorithm: a.alg, Phase: a.phase, Signing: a.signing.gen, LastKey: a.lastGen}
	keys := []*caKey{a.signing}
	if a.other != nil {
		meta.Trusted = a.other.gen
		keys = append(keys, a.other)
	}
	for _, k := range keys {
		files, err := a.keyFiles(k)
		if err != nil {
			return fmt.Errorf("saving the %s: %w", a, err)
		}
		for name, f := range files {
			if err := writeFileAtomic(filepath.Join(dir, name), f.data, f.perm); err != nil {
				return fmt.Errorf("saving the %s: %w", a, err)
			}
			keep[name] = true
		}
	}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, metaFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the %s: %w", a, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("saving the %s: %w", a, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "key-") && !keep[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("saving the %s: removing the dropped key: %w", a, err)
			}
		}
	}
	return nil
}

type fileData struct {
	data []byte
	perm os.FileMode
}

func keyFileName(gen int) string { return "key-" + strconv.Itoa(gen) }

func (a *Authority) keyFiles(k *caKey) (map[string]fileData, error) {
	name := keyFileName(k.gen)
	if a.typ.ssh() {
		priv, err := marshalSSHPrivateKey(k.priv, a.keyComment(k))
		if err != nil {
			return nil, err
		}
		pub := AuthorizedKey(k.signer.PublicKey()) + " " + a.keyComment(k) + "\n"
		return map[string]fileData{name: {priv, 0o600}, name + ".pub": {[]byte(pub), 0o644}}, nil
	}
	priv, err := marshalPKCS8(k.priv)
	if err != nil {
		return nil, err
	}
	return map[string]fileData{name: {priv, 0o600}, name + ".crt": {certPEM(k.cert), 0o644}}, nil
}

// writeFileAtomic writes data to path through a temporary file in the same directory,
// created with mode 0600 so that a private key is never readable by others, even briefly.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// KeyModeError is the error LoadAuthority wraps when a private key file is open to
// group or others.
type KeyModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *KeyModeError) Error() string {
	return fmt.Sprintf("private key %s has mode %04o; it must be 0600 (chmod 600 %s)", e.Path, uint32(e.Mode.Perm()), e.Path)
}

// LoadAuthority reads an authority Save wrote. It refuses a private key file that group
// or others may access, a key whose algorithm or certificate does not match, and a
// rotation state that does not add up. A missing dir wraps fs.ErrNotExist.
func LoadAuthority(dir string) (*Authority, error) {
	a, err := loadAuthority(dir)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate authority in %s: %w", dir, err)
	}
	return a, nil
}

func loadAuthority(dir string) (*Authority, error) {
	raw, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var meta authorityJSON
	if err := dec.Decode(&meta); err != nil {
		return nil, fmt.Errorf("%s: %w", metaFile, err)
	}
	if err := checkClusterName(meta.Cluster); err != nil {
		return nil, fmt.Errorf("%s: %w", metaFile, err)
	}
	if !meta.Type.valid() {
		return nil, fmt.Errorf("%s: unknown type %q", metaFile, meta.Type)
	}
	if meta.Algorithm != Ed25519 && meta.Algorithm != ECDSAP256 {
		return nil, fmt.Errorf("%s: unknown algorithm %q", metaFile, meta.Algorithm)
	}
	if _, ok := nextPhases[meta.Phase]; !ok {
		return nil, fmt.Errorf("%s: unknown rotation phase %q", metaFile, meta.Phase)
	}
	rotating := meta.Phase != Standby
	if meta.Signing < 1 || (meta.Trusted != 0) != rotating || meta.Trusted < 0 || meta.Trusted == meta.Signing ||
		meta.LastKey < max(meta.Signing, meta.Trusted) {
		return nil, fmt.Errorf("%s: inconsistent keys for phase %s (signing %d, trusted %d, last %d)", metaFile, meta.Phase, meta.Signing, meta.Trusted, meta.LastKey)
	}
	a := &Authority{cluster: meta.Cluster, typ: meta.Type, alg: meta.Algorithm, phase: meta.Phase, lastGen: meta.LastKey}
	if a.signing, err = a.loadKey(dir, meta.Signing); err != nil {
		return nil, err
	}
	if rotating {
		if a.other, err = a.loadKey(dir, meta.Trusted); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Authority) loadKey(dir string, gen int) (*caKey, error) {
	path := filepath.Join(dir, keyFileName(gen))
	data, err := readPrivateKeyFile(path)
	if err != nil {
		return nil, err
	}
	parse := parseSSHPrivateKey
	if !a.typ.ssh() {
		parse = parsePKCS8
	}
	priv, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	if alg, err := algorithmOf(priv); err != nil || alg != a.alg {
		return nil, fmt.Errorf("private key %s is %s, but the authority's algorithm is %s", path, alg, a.alg)
	}
	if a.typ.ssh() {
		return a.wrapKey(gen, priv, nil)
	}
	certData, err := os.ReadFile(path + ".crt")
	if err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(certData)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s.crt: %w", path, err)
	}
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	if pub, ok := priv.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA certificate %s.crt does not match private key %s", path, path)
	}
	if !cert.IsCA || cert.Subject.CommonName != a.cluster {
		return nil, fmt.Errorf("CA certificate %s.crt is not a CA certificate of cluster %s", path, a.cluster)
	}
	return a.wrapKey(gen, priv, cert)
}

// readPrivateKeyFile reads a private key file, refusing it when group or others have any
// access: a key others could read may already be someone else's.
func readPrivateKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("private key %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, &KeyModeError{Path: path, Mode: perm}
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
