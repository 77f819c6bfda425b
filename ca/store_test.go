package ca_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
)

func TestStore(t *testing.T) {
	t.Parallel()
	for _, alg := range []ca.Algorithm{ca.Ed25519, ca.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "cas")
			c, err := ca.NewCluster("root.example.com", alg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Save(dir); err != nil {
				t.Fatal(err)
			}

			t.Run("private_keys_are_0600_in_0700_dirs", func(t *testing.T) {
				var privs int
				err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					info, err := d.Info()
					if err != nil {
						return err
					}
					switch {
					case d.IsDir():
						if info.Mode().Perm() != 0o700 {
							t.Errorf("dir %s has mode %o, want 0700", path, info.Mode().Perm())
						}
					case strings.HasPrefix(d.Name(), "key-") && filepath.Ext(d.Name()) == "":
						privs++
						if info.Mode().Perm() != 0o600 {
							t.Errorf("private key %s has mode %o, want 0600", path, info.Mode().Perm())
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if privs != 4 {
					t.Errorf("%d private key files, want 4", privs)
				}
			})
			t.Run("ssh_keys_are_openssh_pem_and_tls_keys_pkcs8", func(t *testing.T) {
				for typ, header := range map[string]string{"user": "OPENSSH PRIVATE KEY", "host": "OPENSSH PRIVATE KEY", "tls": "PRIVATE KEY", "openssh": "OPENSSH PRIVATE KEY"} {
					b, err := os.ReadFile(filepath.Join(dir, typ, "key-1"))
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(string(b), "-----BEGIN "+header+"-----") {
						t.Errorf("%s key starts %q", typ, string(b[:min(40, len(b))]))
					}
				}
				pub, err := os.ReadFile(filepath.Join(dir, "user", "key-1.pub"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(pub), ca.AuthorizedKey(c.User.SigningKey())) {
					t.Errorf("key-1.pub = %q", pub)
				}
			})
			t.Run("load_returns_the_same_keys", func(t *testing.T) {
				got, err := ca.LoadCluster(dir)
				if err != nil {
					t.Fatal(err)
				}
				if got.Name != "root.example.com" || got.User.Algorithm() != alg {
					t.Errorf("loaded %s %s", got.Name, got.User.Algorithm())
				}
				for i, a := range got.Authorities() {
					want := c.Authorities()[i]
					wr, _ := want.Resource(false)
					gr, _ := a.Resource(false)
					if fmt.Sprint(wr) != fmt.Sprint(gr) {
						t.Errorf("%s differs after load:\n%v\n%v", a, gr, wr)
					}
				}
				// The loaded private keys are the saved ones: what they sign verifies
				// with the original public keys.
				_, pub := newKey(t, "")
				cert := issue(t, got.User, aliceRequest(pub))
				if _, err := ca.VerifyUser(cert, c.User.TrustedKeys()); err != nil {
					t.Errorf("certificate from the loaded user CA: %v", err)
				}
				host, err := got.Host.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: []string{"h"}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ca.VerifyHost(host, c.Host.TrustedKeys()); err != nil {
					t.Errorf("certificate from the loaded host CA: %v", err)
				}
				priv, _ := newKey(t, "")
				leaf, err := got.TLS.IssueTLS(ca.TLSCertRequest{PublicKey: priv.Public(), CommonName: "x"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.TLS.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("certificate from the loaded TLS CA: %v", err)
				}
			})
		})
	}
}

func TestLoadRefusesOpenKeyFile(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("mode_%04o", mode), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a := newAuthority(t, "root.example.com", ca.UserCA, "")
			if err := a.Save(dir); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, "key-1")
			if err := os.Chmod(key, mode); err != nil {
				t.Fatal(err)
			}
			_, err := ca.LoadAuthority(dir)
			want := fmt.Sprintf("private key %s has mode %04o; it must be 0600 (chmod 600 %s)", key, mode, key)
			var modeErr *ca.KeyModeError
			if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &modeErr) {
				t.Fatalf("LoadAuthority error = %v\nwant one containing %q", err, want)
			}
			if err := os.Chmod(key, 0o400); err != nil {
				t.Fatal(err)
			}
			if _, err := ca.LoadAuthority(dir); err != nil {
				t.Errorf("after chmod 400: %v", err)
			}
		})
	}
}

func TestLoadOrCreateCluster(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "cas")
	t.Run("first_start_creates_all_four", func(t *testing.T) {
		c, added, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
		if err != nil || c.Name != "leaf.example.com" || !slices.Equal(added, []ca.Type{ca.UserCA, ca.HostCA, ca.TLSCA, ca.OpenSSHCA}) {
			t.Fatalf("LoadOrCreateCluster = %v, %v, %v", c, added, err)
		}
		for _, a := range c.Authorities() {
			if a == nil {
				t.Fatal("an authority is missing")
			}
		}
	})
	t.Run("second_start_loads", func(t *testing.T) {
		_, added, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
		if err != nil || added != nil {
			t.Fatalf("added %v, err %v", added, err)
		}
	})
	t.Run("another_cluster_name_is_refused", func(t *testing.T) {
		_, _, err := ca.LoadOrCreateCluster(dir, "other.example.com", "")
		if err == nil || !strings.Contains(err.Error(), "belong to cluster leaf.example.com, not other.example.com") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("partial_store_is_not_overwritten", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(dir, "host")); err != nil {
			t.Fatal(err)
		}
		_, _, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error = %v", err)
		}
	})
}

// TestStoreFromBeforeTheOpenSSHCAGetsOne is attacker test (d) of the openssh CA: a data
// dir written before it existed (user, host and TLS CAs) is given one at start, with a
// key of its own, and keeps its other keys.
func TestStoreFromBeforeTheOpenSSHCAGetsOne(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cas")
	before, _, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", ca.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "openssh")); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadCluster(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadCluster of a store without the openssh CA = %v, want not exist", err)
	}
	c, added, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
	if err != nil || !slices.Equal(added, []ca.Type{ca.OpenSSHCA}) {
		t.Fatalf("LoadOrCreateCluster = %v, %v", added, err)
	}
	if c.OpenSSH == nil || c.OpenSSH.Algorithm() != ca.ECDSAP256 {
		t.Fatalf("openssh CA %v: want one with the user CA's algorithm", c.OpenSSH)
	}
	for _, a := range []*ca.Authority{c.User, c.Host} {
		if sameKey(a.SigningKey(), c.OpenSSH.SigningKey()) {
			t.Errorf("the new openssh CA has the %s's key", a)
		}
	}
	if !sameKey(c.User.SigningKey(), before.User.SigningKey()) || !sameKey(c.Host.SigningKey(), before.Host.SigningKey()) {
		t.Error("the existing CAs' keys changed")
	}
	again, added, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
	if err != nil || added != nil || !sameKey(again.OpenSSH.SigningKey(), c.OpenSSH.SigningKey()) {
		t.Fatalf("the next start: added %v, err %v, same key %v", added, err, err == nil && sameKey(again.OpenSSH.SigningKey(), c.OpenSSH.SigningKey()))
	}
	if fi, err := os.Stat(filepath.Join(dir, "openssh", "key-1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("openssh/key-1: %v, %v", fi, err)
	}
}

// TestClusterCAsNeverShareAKey: a store where the openssh CA holds the user CA's key (its
// key file copied over) is refused at load, since every OpenSSH node trusting the openssh
// CA would then accept users' login certificates.
func TestClusterCAsNeverShareAKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cas")
	if _, _, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"key-1", "key-1.pub"} {
		data, err := os.ReadFile(filepath.Join(dir, "user", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "openssh", f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := ca.LoadOrCreateCluster(dir, "leaf.example.com", "")
	if err == nil || !strings.Contains(err.Error(), "is in the user CA and in the openssh CA") {
		t.Fatalf("error = %v, want the shared key refused", err)
	}
}

func TestStoreDuringRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newAuthority(t, "root.example.com", ca.UserCA, "")
	old := a.SigningKey()
	for _, p := range []ca.RotationPhase{ca.Init, ca.UpdateClients} {
		if err := a.Rotate(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	t.Run("phase_and_both_keys_survive_a_restart", func(t *testing.T) {
		b, err := ca.LoadAuthority(dir)
		if err != nil {
			t.Fatal(err)
		}
		if b.Phase() != ca.UpdateClients || !sameKey(b.SigningKey(), a.SigningKey()) || len(b.TrustedKeys()) != 2 || !sameKey(b.TrustedKeys()[1].Key, old) {
			t.Errorf("loaded phase %s, %d keys", b.Phase(), len(b.TrustedKeys()))
		}
		if err := b.Rotate(ca.UpdateServers); err != nil {
			t.Errorf("the loaded authority cannot continue the rotation: %v", err)
		}
	})
	t.Run("dropped_key_files_are_removed", func(t *testing.T) {
		for _, p := range []ca.RotationPhase{ca.UpdateServers, ca.Standby} {
			if err := a.Rotate(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Save(dir); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if want := []string{"authority.json", "key-2", "key-2.pub"}; !slices.Equal(names, want) {
			t.Errorf("files %v, want %v", names, want)
		}
	})
}

func sameKey(a, b ssh.PublicKey) bool { return ca.Fingerprint(a) == ca.Fingerprint(b) }
