package bundles

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/util"
)

// DefaultKeyID is the key id used when a key names none; it is also what the
// opa CLI's --verification-key-id defaults to.
const DefaultKeyID = "default"

var (
	// ErrUnsigned is returned by ReadVerified for a bundle without a signature.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrBadSignature is returned by ReadVerified when the signature does not
	// verify with the key, or the files differ from what was signed.
	ErrBadSignature = errors.New("bundle signature is invalid")
)

// SigningKey signs bundles with OPA's scheme (a JWT in .signatures.json).
type SigningKey struct {
	// KeyID goes into the JWT's "kid" header; empty means DefaultKeyID.
	KeyID string
	// Algorithm is a JWS algorithm: HS256, HS384, HS512 (shared secret),
	// RS256…RS512, PS256…PS512 or ES256…ES512 (private key).
	Algorithm string
	// Key is the shared secret for HS*, otherwise a PEM-encoded private key
	// (PKCS #1, PKCS #8 or SEC 1).
	Key []byte
	// Scope, when set, is written as the signature's "scope" claim; a verifier
	// then accepts the bundle only with the same scope (OPA's --scope).
	Scope string
}

// VerificationKey checks bundle signatures.
type VerificationKey struct {
	// KeyID names the key; empty means DefaultKeyID. As with the opa CLI,
	// the key is used whatever "kid" the signature names.
	KeyID string
	// Algorithm must be the algorithm the bundle was signed with.
	Algorithm string
	// Key is the shared secret for HS*, otherwise a PEM-encoded public key
	// (PKIX or PKCS #1) or certificate.
	Key []byte
	// Scope must equal the signature's "scope" claim, as OPA's --scope;
	// empty accepts only signatures without a scope.
	Scope string
}

// signature is a bundle's .signatures.json and the content it was made for
// or checked against.
type signature struct {
	config bundle.SignaturesConfig
	digest [32]byte
}

// Sign signs b with key, replacing any earlier signature. Sign last: a bundle
// changed after signing is refused by WriteTarGz and WriteDir.
func Sign(b *Bundle, key SigningKey) error {
	if err := signBundle(b, key); err != nil {
		return fmt.Errorf("signing bundle %s with %s key %q: %w", b.Revision, key.Algorithm, keyIDOrDefault(key.KeyID), err)
	}
	return nil
}

func signBundle(b *Bundle, key SigningKey) error {
	material, err := key.opaKey()
	if err != nil {
		return err
	}
	if err := b.checkLayout(); err != nil {
		return err
	}
	d, err := b.digest(true)
	if err != nil {
		return err
	}
	ob := b.opa()
	ob.Signatures = bundle.SignaturesConfig{}
	claims := ""
	if key.Scope != "" {
		// OPA's signer takes extra claims only from a file.
		f, err := os.CreateTemp("", "tether-claims-*.json")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		enc, _ := json.Marshal(map[string]string{"scope": key.Scope})
		_, werr := f.Write(enc)
		if cerr := f.Close(); werr != nil || cerr != nil {
			return errors.Join(werr, cerr)
		}
		claims = f.Name()
	}
	sc := bundle.NewSigningConfig(material, key.Algorithm, claims)
	if err := ob.GenerateSignature(sc, keyIDOrDefault(key.KeyID), true); err != nil {
		return err
	}
	b.sig = &signature{config: ob.Signatures, digest: d}
	return nil
}

func keyIDOrDefault(id string) string {
	if id == "" {
		return DefaultKeyID
	}
	return id
}

func isHMAC(alg string) bool { return strings.HasPrefix(alg, "HS") }

// opaKey returns the key as bundle.NewSigningConfig takes it. OPA reads a key
// that is not PEM as a file name when such a file exists, and fails on
// secrets the OS refuses as file names; both are refused here instead of
// signing with the wrong key or failing obscurely.
func (k SigningKey) opaKey() (string, error) {
	if !keys.IsSupportedAlgorithm(k.Algorithm) {
		return "", fmt.Errorf("unsupported algorithm %q: use HS256, RS256, ES256 or another JWS algorithm", k.Algorithm)
	}
	if len(k.Key) == 0 {
		return "", errors.New("key is empty")
	}
	if !isHMAC(k.Algorithm) {
		pemKey := strings.TrimSpace(string(k.Key))
		if block, _ := pem.Decode([]byte(pemKey)); block == nil || !strings.HasPrefix(pemKey, "-----BEGIN") {
			return "", fmt.Errorf("%s needs a PEM-encoded private key", k.Algorithm)
		}
		return pemKey, nil
	}
	secret := string(k.Key)
	// The error text would contain the secret, so it is not passed on.
	if _, err := os.Stat(secret); err == nil {
		return "", errors.New("the secret is also the name of a file, which OPA's signing code would read instead; use another secret")
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", errors.New("OPA's signing code cannot take this secret (it is tried as a file name first): use printable characters, no NUL byte, at most 255 bytes")
	}
	return secret, nil
}

func (k VerificationKey) config() (*bundle.VerificationConfig, error) {
	if !keys.IsSupportedAlgorithm(k.Algorithm) {
		return nil, fmt.Errorf("unsupported algorithm %q: use HS256, RS256, ES256 or another JWS algorithm", k.Algorithm)
	}
	if len(k.Key) == 0 {
		return nil, errors.New("verification key is empty")
	}
	if !isHMAC(k.Algorithm) {
		if block, _ := pem.Decode(k.Key); block == nil {
			return nil, fmt.Errorf("%s needs a PEM-encoded public key", k.Algorithm)
		}
	}
	id := keyIDOrDefault(k.KeyID)
	kc := &bundle.KeyConfig{Key: string(k.Key), Algorithm: k.Algorithm}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{id: kc}, id, k.Scope, nil), nil
}

// ReadVerified reads the bundle at path (a .tar.gz file or a directory) and
// returns it only if it is signed with key and every file matches the
// signature: no file added, removed or changed. The bundle keeps its
// signature, so writing it again gives a bundle that still verifies.
func ReadVerified(path string, key VerificationKey) (*Bundle, error) {
	return Reader{Verification: &key}.Read(path)
}

// verifyFiles checks the bundle's files against its signature with OPA's
// verifier, before anything is parsed.
func verifyFiles(files archiveFiles, key VerificationKey) (*signature, error) {
	vc, err := key.config()
	if err != nil {
		return nil, fmt.Errorf("verifying signature: %w", err)
	}
	var sigs, rest archiveFiles
	for _, f := range files {
		if bundle.IsSignaturesFile(f.name) {
			sigs = append(sigs, f)
		} else {
			rest = append(rest, f)
		}
	}
	switch len(sigs) {
	case 0:
		return nil, fmt.Errorf("%w: it has no .signatures.json; sign it (bundles.Sign, `opa build --signing-key`) or read it with Read", ErrUnsigned)
	case 1:
	default:
		return nil, fmt.Errorf("%w: more than one .signatures.json (%s, %s)", ErrBadSignature, sigs[0].name, sigs[1].name)
	}
	var sc bundle.SignaturesConfig
	if err := util.NewJSONDecoder(bytes.NewReader(sigs[0].data)).Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %v", ErrBadSignature, sigs[0].name, err)
	}
	if len(sc.Signatures) == 0 && sc.Plugin == "" {
		return nil, fmt.Errorf("%w: %s lists no signature", ErrUnsigned, sigs[0].name)
	}
	signed, err := bundle.VerifyBundleSignature(sc, vc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s key %q: %v", ErrBadSignature, key.Algorithm, keyIDOrDefault(key.KeyID), err)
	}
	for _, f := range rest {
		if err := bundle.VerifyBundleFile(strings.TrimPrefix(f.name, "/"), *bytes.NewBuffer(f.data), signed); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
	}
	if len(signed) > 0 {
		return nil, fmt.Errorf("%w: signed file(s) missing from the bundle: %s", ErrBadSignature, strings.Join(util.KeysSorted(signed), ", "))
	}
	return &signature{config: sc}, nil
}
