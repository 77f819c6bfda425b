package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
)

// TestAuthExport runs tetherctl auth export against a running cluster: what
// --type=openssh prints is a TrustedUserCAKeys file that accepts the enforcement point's
// node certificates and nothing else (no user's login certificate); --type=user is the
// user CA alone; --type=host is known_hosts @cert-authority lines for *.cluster,
// --type=tls the PEM CA certificates.
func TestAuthExport(t *testing.T) {
	c := startCluster(t, "leaf-west", "")
	authorities, err := ca.LoadCluster(filepath.Join(c.dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	nodeCert, err := authorities.OpenSSH.IssueUser(ca.UserCertRequest{PublicKey: sshPub, Username: "alice", Logins: []string{"visitor"}, TTL: time.Minute, MaxTTL: time.Minute, NodeAccess: true})
	if err != nil {
		t.Fatal(err)
	}
	loginCert, err := authorities.User.IssueUser(ca.UserCertRequest{PublicKey: sshPub, Username: "alice", Logins: []string{"visitor"}, TTL: time.Minute, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	hostCert, err := authorities.Host.IssueHost(ca.HostCertRequest{PublicKey: sshPub, Principals: []string{"node"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// exported reads an export as sshd reads TrustedUserCAKeys: one plain public key a
	// line, no options; and checks the comment.
	exported := func(t *testing.T, typ string) *ssh.CertChecker {
		t.Helper()
		out := c.mustCtl(t, "auth", "export", "--type="+typ)
		var trusted []ssh.PublicKey
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			key, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil || len(opts) != 0 || comment != "clustername=leaf-west&type="+typ {
				t.Fatalf("line %q: key err %v, options %v, comment %q", line, err, opts, comment)
			}
			trusted = append(trusted, key)
		}
		return &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, k := range trusted {
				if string(k.Marshal()) == string(auth.Marshal()) {
					return true
				}
			}
			return false
		}}
	}
	for _, tc := range []struct {
		typ              string
		accepts, refuses []*ssh.Certificate
	}{
		// (b): the openssh export holds no user CA key, so a login certificate is refused.
		{"openssh", []*ssh.Certificate{nodeCert}, []*ssh.Certificate{loginCert, hostCert}},
		{"user", []*ssh.Certificate{loginCert}, []*ssh.Certificate{nodeCert, hostCert}},
	} {
		t.Run(tc.typ+"_is_a_TrustedUserCAKeys_file_of_that_CA_alone", func(t *testing.T) {
			checker := exported(t, tc.typ)
			for _, cert := range tc.accepts {
				if _, err := checker.Authenticate(connMeta("visitor"), cert); err != nil {
					t.Errorf("--type=%s refuses a certificate of the %s CA: %v", tc.typ, tc.typ, err)
				}
			}
			for _, cert := range tc.refuses {
				if _, err := checker.Authenticate(connMeta("visitor"), cert); err == nil {
					t.Errorf("--type=%s accepts certificate %q (signed by %s)", tc.typ, cert.KeyId, ssh.FingerprintSHA256(cert.SignatureKey))
				}
			}
		})
	}
	t.Run("openssh_during_a_rotation_prints_both_keys", func(t *testing.T) {
		before := c.mustCtl(t, "auth", "export", "--type=openssh")
		c.mustCtl(t, "auth", "rotate", "--type=openssh", "--phase=init")
		during := c.mustCtl(t, "auth", "export", "--type=openssh")
		if lines := strings.Split(strings.TrimSpace(during), "\n"); len(lines) != 2 || lines[0]+"\n" != before {
			t.Fatalf("export during init:\n%s\nwant the signing key first, then the new one (before:\n%s)", during, before)
		}
		for _, p := range []string{"update_clients", "update_servers", "standby"} {
			c.mustCtl(t, "auth", "rotate", "--type=openssh", "--phase="+p)
		}
		after := c.mustCtl(t, "auth", "export", "--type=openssh")
		if lines := strings.Split(strings.TrimSpace(during), "\n"); after != lines[1]+"\n" {
			t.Fatalf("export after standby:\n%s\nwant the new key alone:\n%s", after, lines[1])
		}
		if user := c.mustCtl(t, "auth", "export", "--type=user"); strings.Contains(during, strings.Fields(user)[1]) {
			t.Fatal("the rotated openssh CA holds the user CA's key")
		}
	})

	t.Run("host_is_known_hosts_cert_authority_lines", func(t *testing.T) {
		out := c.mustCtl(t, "auth", "export", "--type=host")
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts([]byte(out))
		if err != nil || marker != "cert-authority" || strings.Join(hosts, ",") != "*.leaf-west,leaf-west" {
			t.Fatalf("--type=host: %v, marker %q, hosts %v:\n%s", err, marker, hosts, out)
		}
		if string(key.Marshal()) != string(authorities.Host.SigningKey().Marshal()) {
			t.Fatalf("--type=host printed %s, not the host CA's key", ssh.FingerprintSHA256(key))
		}
	})

	t.Run("tls_is_the_PEM_CA", func(t *testing.T) {
		out := c.mustCtl(t, "auth", "export", "--type=tls")
		b, rest := pem.Decode([]byte(out))
		if b == nil || strings.TrimSpace(string(rest)) != "" {
			t.Fatalf("--type=tls is not one PEM block:\n%s", out)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil || !cert.IsCA || cert.Subject.CommonName != "leaf-west" {
			t.Fatalf("--type=tls: %v %+v", err, cert)
		}
	})

	t.Run("bad_input_says_what_to_give", func(t *testing.T) {
		for _, args := range [][]string{{"auth", "export"}, {"auth", "export", "--type=users"}} {
			if out, err := c.ctl(t, args...); err == nil || !strings.Contains(err.Error(), "give --type=openssh") {
				t.Errorf("tetherctl %v: %v\n%s", args, err, out)
			}
		}
		cmd := rootCommand()
		cmd.SetArgs([]string{"auth", "export", "--type=user", "--data-dir", t.TempDir()})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("without an admin identity: %v", err)
		}
	})
}

// TestWriteCAExportPrintsOnlyTheClustersOwnKeys: on a leaf, the trusted root's CAs are
// stored too; exporting them as the leaf's would make an OpenSSH node trust the root's
// certificates directly, around the leaf's policy. Rotation keys are included.
func TestWriteCAExportPrintsOnlyTheClustersOwnKeys(t *testing.T) {
	key := func() string {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		k, _ := ssh.NewPublicKey(pub)
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	}
	own, next, rootKey, hostKey := key(), key(), key(), key()
	ca := func(cluster, typ string, active string, extra ...string) *resource.CertAuthority {
		c := &resource.CertAuthority{Spec: resource.CertAuthoritySpec{Type: typ, ClusterName: cluster}}
		c.Spec.ActiveKeys.SSH = []resource.SSHKeyPair{{PublicKey: active}}
		for _, e := range extra {
			c.Spec.AdditionalTrustedKeys.SSH = append(c.Spec.AdditionalTrustedKeys.SSH, resource.SSHKeyPair{PublicKey: e})
		}
		return c
	}
	cas := []*resource.CertAuthority{
		ca("root.example.com", resource.CATypeUser, rootKey),
		ca("leaf-east", resource.CATypeUser, own, next),
		ca("leaf-east", resource.CATypeHost, hostKey),
	}
	var b strings.Builder
	if err := writeCAExport(&b, "leaf-east", resource.CATypeUser, cas); err != nil {
		t.Fatal(err)
	}
	want := own + " clustername=leaf-east&type=user\n" + next + " clustername=leaf-east&type=user\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if err := writeCAExport(&b, "leaf-west", resource.CATypeUser, cas); err == nil || !strings.Contains(err.Error(), "no user CA keys") {
		t.Fatalf("a cluster with no CA of its own: %v", err)
	}
	bad := []*resource.CertAuthority{ca("leaf-east", resource.CATypeUser, "not a key")}
	if err := writeCAExport(&b, "leaf-east", resource.CATypeUser, bad); err == nil {
		t.Fatal("a stored key that does not parse was printed")
	}
}

type connMeta string

func (c connMeta) User() string          { return string(c) }
func (c connMeta) SessionID() []byte     { return nil }
func (c connMeta) ClientVersion() []byte { return nil }
func (c connMeta) ServerVersion() []byte { return nil }
func (c connMeta) RemoteAddr() net.Addr  { return nil }
func (c connMeta) LocalAddr() net.Addr   { return nil }
