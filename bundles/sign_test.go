package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/bundles"
)

// rwKeys is a signing key and the matching verification key.
type rwKeys struct {
	sign   bundles.SigningKey
	verify bundles.VerificationKey
}

func rwNewKeys(t *testing.T, alg, id string) rwKeys {
	t.Helper()
	var priv, pub []byte
	switch alg {
	case "HS256":
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		// OPA's signing code tries a secret as a file name first, so it
		// must be a string the OS accepts as one (see SigningKey.Key).
		s := []byte(strings.ReplaceAll(string(secret), "\x00", "0"))
		return rwKeys{
			sign:   bundles.SigningKey{KeyID: id, Algorithm: alg, Key: s},
			verify: bundles.VerificationKey{KeyID: id, Algorithm: alg, Key: s},
		}
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k) // SEC 1, "EC PRIVATE KEY"
		if err != nil {
			t.Fatal(err)
		}
		priv = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		pub = rwPublicPEM(t, &k.PublicKey)
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k) // PKCS #8, "PRIVATE KEY"
		if err != nil {
			t.Fatal(err)
		}
		priv = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		pub = rwPublicPEM(t, &k.PublicKey)
	default:
		t.Fatalf("no test keys for %s", alg)
	}
	return rwKeys{
		sign:   bundles.SigningKey{KeyID: id, Algorithm: alg, Key: priv},
		verify: bundles.VerificationKey{KeyID: id, Algorithm: alg, Key: pub},
	}
}

func rwPublicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func rwSigned(t *testing.T, key bundles.SigningKey) *bundles.Bundle {
	t.Helper()
	b := rwDemo(t)
	if err := bundles.Sign(b, key); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !b.Signed() {
		t.Fatal("Signed() = false right after Sign")
	}
	return b
}

var rwAlgs = []string{"HS256", "RS256", "ES256"}

func TestSign(t *testing.T) {
	t.Parallel()
	for _, alg := range rwAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			keys := rwNewKeys(t, alg, "tether-"+strings.ToLower(alg))
			want := rwSigned(t, keys.sign)
			for _, layout := range rwLayouts {
				got, err := bundles.ReadVerified(rwWrite(t, layout, want), keys.verify)
				if err != nil {
					t.Fatalf("%s: ReadVerified: %v", layout, err)
				}
				rwSameBundle(t, got, want)
				if !got.Signed() {
					t.Errorf("%s: bundle from ReadVerified is not Signed()", layout)
				}
			}
		})
	}
	t.Run("empty_key_id_means_default", func(t *testing.T) {
		t.Parallel()
		keys := rwNewKeys(t, "ES256", "")
		p := rwWrite(t, "tar.gz", rwSigned(t, keys.sign))
		keys.verify.KeyID = bundles.DefaultKeyID
		if _, err := bundles.ReadVerified(p, keys.verify); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ReadTarGz_with_a_verifying_Reader", func(t *testing.T) {
		t.Parallel()
		keys := rwNewKeys(t, "HS256", "k")
		archive := rwTarGzBytes(t, rwSigned(t, keys.sign))
		if _, err := (bundles.Reader{Verification: &keys.verify}).ReadTarGz(bytes.NewReader(archive)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSignedBundleLifecycle(t *testing.T) {
	t.Parallel()
	keys := rwNewKeys(t, "ES256", "k1")
	t.Run("a_bundle_changed_after_signing_is_not_written", func(t *testing.T) {
		t.Parallel()
		b := rwSigned(t, keys.sign)
		b.Data["tether"].(map[string]any)["config"].(map[string]any)["greeting"] = "changed"
		if b.Signed() {
			t.Error("Signed() = true after a change")
		}
		err := bundles.WriteTarGz(io.Discard, b)
		if err == nil || !strings.Contains(err.Error(), "changed after it was signed; sign it again") {
			t.Errorf("WriteTarGz error = %v", err)
		}
		if err := bundles.WriteDir(filepath.Join(t.TempDir(), "b"), b); err == nil {
			t.Error("WriteDir wrote a stale signature")
		}
		if err := bundles.Sign(b, keys.sign); err != nil {
			t.Fatal(err)
		}
		if _, err := bundles.ReadVerified(rwWrite(t, "tar.gz", b), keys.verify); err != nil {
			t.Errorf("after signing again: %v", err)
		}
	})
	t.Run("a_verified_bundle_written_again_still_verifies", func(t *testing.T) {
		t.Parallel()
		first, err := bundles.ReadVerified(rwWrite(t, "dir", rwSigned(t, keys.sign)), keys.verify)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundles.ReadVerified(rwWrite(t, "tar.gz", first), keys.verify); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Read_accepts_a_signed_bundle_without_checking_it", func(t *testing.T) {
		t.Parallel()
		b, err := bundles.Read(rwWrite(t, "tar.gz", rwSigned(t, keys.sign)))
		if err != nil {
			t.Fatal(err)
		}
		if b.Signed() {
			t.Error("an unverified bundle claims to be Signed()")
		}
	})
}

// rwChange alters the bundle directory at dir.
type rwChange func(t *testing.T, dir string)

func rwAppend(name, text string) rwChange {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(old, text...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func rwReplace(name, old, new string) rwChange {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		bs, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(bs, []byte(old)) {
			t.Fatalf("%s does not contain %q", name, old)
		}
		if err := os.WriteFile(p, bytes.Replace(bs, []byte(old), []byte(new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func rwRemove(name string) rwChange {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
}

// rwDirTarGz archives the files of a bundle directory as they are, named
// relative to it, which is how OPA expects a signed bundle's file names.
func rwDirTarGz(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		bs, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(bs)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(bs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rwTampered writes the signed bundle as a directory, applies change, and
// returns both that directory and the same files as a .tar.gz.
func rwTampered(t *testing.T, b *bundles.Bundle, change rwChange) (dir, archive string) {
	t.Helper()
	dir = rwWrite(t, "dir", b)
	if change != nil {
		change(t, dir)
	}
	archive = filepath.Join(t.TempDir(), "tampered.tar.gz")
	if err := os.WriteFile(archive, rwDirTarGz(t, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, archive
}

func TestReadVerifiedRefuses(t *testing.T) {
	t.Parallel()
	es := rwNewKeys(t, "ES256", "k1")
	otherES := rwNewKeys(t, "ES256", "k1")
	hs := rwNewKeys(t, "HS256", "k1")
	otherHS := rwNewKeys(t, "HS256", "k1")
	signedES := rwSigned(t, es.sign)
	signedHS := rwSigned(t, hs.sign)

	// The classic JWT algorithm confusion: sign with HS256, using the
	// public key (which an attacker has) as the secret.
	forged := rwDemo(t)
	forgedKey := bundles.SigningKey{KeyID: "k1", Algorithm: "HS256", Key: es.verify.Key}
	if err := bundles.Sign(forged, forgedKey); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		bundle *bundles.Bundle
		change rwChange
		key    bundles.VerificationKey
		wantIs error
		want   string
	}{
		{"unsigned", rwDemo(t), nil, es.verify, bundles.ErrUnsigned, "no .signatures.json"},
		{"a_module_byte_changed", signedES, rwReplace("tether/demo.rego", "x == 1", "x == 2"), es.verify, bundles.ErrBadSignature, "tether/demo.rego: digest mismatch"},
		{"a_module_byte_changed_hs256", signedHS, rwReplace("custom/extra.rego", "2", "3"), hs.verify, bundles.ErrBadSignature, "custom/extra.rego: digest mismatch"},
		{"data_changed", signedES, rwReplace("data.json", `"hello"`, `"hellO"`), es.verify, bundles.ErrBadSignature, "data.json: digest mismatch"},
		{"manifest_changed", signedES, rwReplace(".manifest", `"roots":["tether"]`, `"roots":["tether","x"]`), es.verify, bundles.ErrBadSignature, ".manifest: digest mismatch"},
		{"a_module_added", signedES, rwAppend("tether/extra.rego", "package tether.extra\n\nallow := true\n"), es.verify, bundles.ErrBadSignature, "file tether/extra.rego not included in bundle signature"},
		{"data_added", signedES, rwAppend("tether/more/data.json", `{"a": 1}`), es.verify, bundles.ErrBadSignature, "not included in bundle signature"},
		{"a_module_removed", signedES, rwRemove("custom/extra.rego"), es.verify, bundles.ErrBadSignature, "signed file(s) missing from the bundle: custom/extra.rego"},
		{"signature_removed", signedES, rwRemove(".signatures.json"), es.verify, bundles.ErrUnsigned, "no .signatures.json"},
		{"signature_garbled", signedES, rwReplace(".signatures.json", `"signatures"`, `"signatures`), es.verify, bundles.ErrBadSignature, "decoding /.signatures.json"},
		{"signature_list_empty", signedES, func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ".signatures.json"), []byte(`{"signatures": []}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, es.verify, bundles.ErrUnsigned, "lists no signature"},
		{"another_ecdsa_key", signedES, nil, otherES.verify, bundles.ErrBadSignature, "failed to verify JWT signature"},
		{"another_secret", signedHS, nil, otherHS.verify, bundles.ErrBadSignature, "failed to verify JWT signature"},
		{"another_algorithm", signedES, nil, bundles.VerificationKey{KeyID: "k1", Algorithm: "HS256", Key: es.verify.Key}, bundles.ErrBadSignature, "failed to verify JWT signature"},
		{"hs256_forgery_with_the_public_key_as_secret", forged, nil, es.verify, bundles.ErrBadSignature, "failed to verify JWT signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, archive := rwTampered(t, tc.bundle, tc.change)
			for _, p := range []string{dir, archive} {
				_, err := bundles.ReadVerified(p, tc.key)
				if err == nil {
					t.Fatalf("ReadVerified(%s) accepted it", filepath.Base(p))
				}
				if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReadVerified(%s) error = %q\nwant %v containing %q", filepath.Base(p), err, tc.wantIs, tc.want)
				}
				if !strings.HasPrefix(err.Error(), "reading bundle "+p+": ") {
					t.Errorf("error %q does not name the bundle", err)
				}
			}
		})
	}
}

func TestKeyErrors(t *testing.T) {
	t.Parallel()
	es := rwNewKeys(t, "ES256", "k1")
	for _, tc := range []struct {
		name string
		key  bundles.SigningKey
		want string
	}{
		{"unknown_algorithm", bundles.SigningKey{Algorithm: "none", Key: []byte("x")}, `unsupported algorithm "none"`},
		{"missing_algorithm", bundles.SigningKey{Key: []byte("x")}, `unsupported algorithm ""`},
		{"empty_key", bundles.SigningKey{Algorithm: "HS256"}, "key is empty"},
		{"not_pem", bundles.SigningKey{Algorithm: "RS256", Key: []byte("not a key")}, "RS256 needs a PEM-encoded private key"},
		{"public_key_for_signing", bundles.SigningKey{Algorithm: "ES256", Key: es.verify.Key}, "unsupported key type: PUBLIC KEY"},
		// The current directory is the package's, so bundle.go exists.
		{"secret_that_names_a_file", bundles.SigningKey{Algorithm: "HS256", Key: []byte("bundle.go")}, "the secret is also the name of a file"},
		{"secret_with_a_nul_byte", bundles.SigningKey{Algorithm: "HS256", Key: []byte("s3cr3t\x00s3cr3t")}, "OPA's signing code cannot take this secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := rwDemo(t)
			err := bundles.Sign(b, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Sign error = %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "signing bundle "+b.Revision) {
				t.Errorf("error %q does not say what was being done", err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q leaks the secret", err)
			}
			if b.Signed() {
				t.Error("a failed Sign left a signature")
			}
		})
	}
	t.Run("verification_key_not_pem", func(t *testing.T) {
		t.Parallel()
		p := rwWrite(t, "tar.gz", rwSigned(t, es.sign))
		_, err := bundles.ReadVerified(p, bundles.VerificationKey{Algorithm: "ES256", Key: []byte("nope")})
		if err == nil || !strings.Contains(err.Error(), "ES256 needs a PEM-encoded public key") {
			t.Fatalf("error = %v", err)
		}
	})
}

// rwOPARun loads bundlePath with `opa run` (a REPL reading the query from
// stdin) under the given verification flags, and returns its output.
func rwOPARun(t *testing.T, bundlePath, query string, flags ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rwOPA(t), append(append([]string{"run", "--bundle", bundlePath}, flags...), "--format", "json")...)
	cmd.Dir = t.TempDir() // OPA tries a non-PEM key as a file name first
	cmd.Stdin = strings.NewReader(query + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOPAVerifiesSignedBundles checks signatures with OPA's own verifier.
// `opa eval` (1.22) has no --verification-key and never verifies, so this
// loads the bundle with `opa run --verification-key`, which does.
func TestOPAVerifiesSignedBundles(t *testing.T) {
	t.Parallel()
	rwOPA(t)
	for _, alg := range rwAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			keys := rwNewKeys(t, alg, "tether-1")
			key := string(keys.verify.Key)
			if alg != "HS256" {
				pub := filepath.Join(t.TempDir(), "pub.pem")
				if err := os.WriteFile(pub, keys.verify.Key, 0o644); err != nil {
					t.Fatal(err)
				}
				key = pub
			}
			flags := []string{"--verification-key", key, "--verification-key-id", "tether-1", "--signing-alg", alg}
			signed := rwSigned(t, keys.sign)

			// OPA checks the names in a directory bundle's signature
			// against the path given to --bundle ("dir/data.json"), so it
			// verifies directory bundles only where they were signed in
			// place. The files WriteDir wrote are checked here as OPA sees
			// them once archived, which is how bundles are shipped.
			_, dirArchive := rwTampered(t, signed, nil)
			for name, p := range map[string]string{"WriteTarGz": rwWrite(t, "tar.gz", signed), "WriteDir": dirArchive} {
				out, err := rwOPARun(t, p, "data.tether.demo.greeting", flags...)
				if err != nil || !strings.Contains(out, `"hello"`) {
					t.Errorf("%s: opa run --verification-key refused the signed bundle: %v\n%s", name, err, out)
				}
			}

			_, tampered := rwTampered(t, signed, rwReplace("tether/demo.rego", "x == 1", "x == 2"))
			out, err := rwOPARun(t, tampered, "data.tether.demo.greeting", flags...)
			if err == nil || !strings.Contains(out, "tether/demo.rego: digest mismatch") {
				t.Errorf("opa run accepted a tampered bundle: %v\n%s", err, out)
			}

			out, err = rwOPARun(t, rwWrite(t, "tar.gz", rwDemo(t)), "data.tether.demo.greeting", flags...)
			if err == nil || !strings.Contains(out, "bundle missing .signatures.json file") {
				t.Errorf("opa run accepted an unsigned bundle: %v\n%s", err, out)
			}
		})
	}
	t.Run("opa_eval_reads_signed_bundles_too", func(t *testing.T) {
		t.Parallel()
		signed := rwSigned(t, rwNewKeys(t, "ES256", "k").sign)
		for _, layout := range rwLayouts {
			if got := rwOPAEval(t, rwWrite(t, layout, signed), `{"x": 1}`, "data.tether.demo.allow"); got != true {
				t.Errorf("%s: allow = %#v", layout, got)
			}
		}
	})
}
