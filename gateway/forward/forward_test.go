package forward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHostKeyCallback(t *testing.T) {
	t.Parallel()
	cluster, err := ca.NewCluster("leaf.example.com", ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ca.NewCluster("evil.example.com", ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	host := func(a *ca.Authority, principals []string, ttl time.Duration) ssh.PublicKey {
		c, err := a.IssueHost(ca.HostCertRequest{PublicKey: newKey(t), Principals: principals, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	userCert, err := cluster.User.IssueUser(ca.UserCertRequest{PublicKey: newKey(t), Username: "alice", Logins: []string{"node1"}, TTL: time.Hour, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		key  ssh.PublicKey
		at   time.Time
		want string // empty: accepted
	}{
		{"plain_host_key_refused_no_trust_on_first_use", newKey(t), now, "plain"},
		{"host_cert_of_another_cluster_refused", host(stranger.Host, []string{"node1"}, 0), now, "unknown certificate authority"},
		{"unsigned_host_cert_refused", func() ssh.PublicKey {
			c := &ssh.Certificate{Key: newKey(t), CertType: ssh.HostCert, ValidPrincipals: []string{"node1"}, ValidBefore: ssh.CertTimeInfinity}
			return c
		}(), now, "not signed"},
		{"user_cert_presented_as_host_refused", userCert, now, "wrong certificate type"},
		{"host_cert_for_another_name_refused", host(cluster.Host, []string{"node2"}, 0), now, "not [node1"},
		{"expired_host_cert_refused", host(cluster.Host, []string{"node1"}, time.Hour), now.Add(2 * time.Hour), "not valid now"},
		{"host_cert_of_the_cluster_for_the_node_accepted", host(cluster.Host, []string{"node1"}, 0), now, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb := HostKeyCallback(cluster.Host.TrustedKeys(), []string{"node1", "node1.leaf.example.com"}, func() time.Time { return tc.at })
			err := cb("127.0.0.1:22", nil, tc.key)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	cluster, _ := ca.NewCluster("root.example.com", ca.Ed25519)
	stranger, _ := ca.NewCluster("evil.example.com", ca.Ed25519)
	issue := func(a *ca.Authority, ttl time.Duration) ssh.PublicKey {
		c, err := a.IssueUser(ca.UserCertRequest{PublicKey: newKey(t), Username: "alice", Logins: []string{"visitor"}, TTL: ttl, MaxTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hostCert, _ := cluster.Host.IssueHost(ca.HostCertRequest{PublicKey: newKey(t), Principals: []string{"alice"}})
	now := time.Now()
	for _, tc := range []struct {
		name string
		key  ssh.PublicKey
		at   time.Time
		want string
	}{
		{"plain_key_refused", newKey(t), now, "plain public key"},
		{"unknown_user_CA_refused", issue(stranger.User, time.Hour), now, "unknown certificate authority"},
		{"host_cert_refused", hostCert, now, "wrong certificate type"},
		{"expired_cert_refused", issue(cluster.User, time.Hour), now.Add(2 * time.Hour), "not valid now"},
		{"cert_of_a_known_user_CA_accepted", issue(cluster.User, time.Hour), now, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := Authenticate(context.Background(), tc.key, cluster.User.TrustedKeys(), tc.at)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && (id.ID.Username != "alice" || id.ID.SigningCA.Cluster != "root.example.com"):
				t.Fatalf("identity %+v", id.ID)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDenyMessage(t *testing.T) {
	t.Parallel()
	id := policy.Cert{Username: "alice", SigningCA: policy.SigningCA{Cluster: "root.example.com"}}
	prefix := "user alice@root.example.com is not authorized to login as visitor@leaf.example.com: "
	for _, tc := range []struct {
		name    string
		reasons []string
		want    string
	}{
		{"reasons_already_in_teleport_words_are_not_prefixed_twice", []string{prefix + "no role allows login \"visitor\"", prefix + "node is locked"}, prefix + "no role allows login \"visitor\"; node is locked"},
		{"plain_reasons_are_prefixed", []string{"lock in force"}, prefix + "lock in force"},
		{"no_reason_still_says_denied", nil, prefix + "access denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DenyMessage(id, "visitor", "leaf.example.com", tc.reasons); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
