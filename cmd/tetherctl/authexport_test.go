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

// TestAuthExport runs tetherctl auth export against a running cluster: what --type=user
// prints is a TrustedUserCAKeys file that accepts the certificates the cluster issues and
// nothing else, --type=host is known_hosts @cert-authority lines for *.cluster, --type=tls
// the PEM CA certificates.
func TestAuthExport(t *testing.T) {
	c := startCluster(t, "leaf-west", "")
	authorities, err := ca.LoadCluster(filepath.Join(c.dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("user_is_a_TrustedUserCAKeys_file_for_the_clusters_certificates", func(t *testing.T) {
		out := c.mustCtl(t, "auth", "export", "--type=user")
		if alias := c.mustCtl(t, "auth", "export", "--type=openssh"); alias != out {
			t.Errorf("--type=openssh differs from --type=user:\n%s\n%s", alias, out)
		}
		var trusted []ssh.PublicKey
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			// sshd reads TrustedUserCAKeys one plain public key a line: no options.
			key, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil || len(opts) != 0 || comment != "clustername=leaf-west&type=user" {
				t.Fatalf("line %q: key err %v, options %v, comment %q", line, err, opts, comment)
			}
			trusted = append(trusted, key)
		}
		checker := &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, k := range trusted {
				if string(k.Marshal()) == string(auth.Marshal()) {
					return true
				}
			}
			return false
		}}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		sshPub, _ := ssh.NewPublicKey(pub)
		cert, err := authorities.User.IssueUser(ca.UserCertRequest{PublicKey: sshPub, Username: "alice", Logins: []string{"visitor"}, TTL: time.Minute, MaxTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checker.Authenticate(connMeta("visitor"), cert); err != nil {
			t.Fatalf("a certificate of the cluster's user CA is not accepted by the exported keys: %v", err)
		}
		// A host certificate of the same cluster is no user certificate.
		hostCert, err := authorities.Host.IssueHost(ca.HostCertRequest{PublicKey: sshPub, Principals: []string{"node"}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checker.Authenticate(connMeta("visitor"), hostCert); err == nil {
			t.Fatal("the exported user CA keys accept a host certificate signed by the host CA")
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
			if out, err := c.ctl(t, args...); err == nil || !strings.Contains(err.Error(), "give --type=user") {
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
