package main

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// tctl lock --user=alice --message=... --ttl=...: the lock resource tctl users create in
// an incident, without writing YAML; the cluster's decisions then deny alice with the
// message. Bad flags are refused before the cluster is called.
func TestLockCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lock"}, "name what to lock"},
		{[]string{"lock", "--user=alice", "--ttl=1h", "--expires=2030-01-01T00:00:00Z"}, "--ttl or --expires"},
		{[]string{"lock", "--user=alice", "--ttl=soon"}, "--ttl"},
		{[]string{"lock", "--user=alice", "--ttl=-1h"}, "--ttl"},
		{[]string{"lock", "--user=alice", "--expires=tomorrow"}, "--expires"},
		{[]string{"lock", "extra", "--user=alice"}, "unknown command"},
	} {
		if out, err := run(t, append(tc.args, "--data-dir", t.TempDir())...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tetherctl %v: %v (%q), want an error saying %q", tc.args, err, out, tc.want)
		}
	}

	root := startCluster(t, "root.example.com", "")
	cert := rootUserCert(t, root)
	decide := func() policy.Decision {
		t.Helper()
		keys, err := ca.TrustedKeysOf(userCA(t, root))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ca.VerifyUser(cert, keys)
		if err != nil {
			t.Fatal(err)
		}
		in, err := policy.CertFromSSH(cert, signer)
		if err != nil {
			t.Fatal(err)
		}
		d, err := root.gw.Auth().Engine().Decide(context.Background(), &policy.Input{
			Action: policy.ActionSSHSession, Cluster: root.name, Now: time.Now(), Cert: in, Login: "visitor",
			Node: &policy.Node{Name: "web1", Labels: map[string]string{"env": "prod"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(); strings.Contains(strings.Join(d.Reasons, " "), "lock") {
		t.Fatalf("before the lock: %+v", d)
	}
	out := root.mustCtl(t, "lock", "--user=alice", "--message=suspected compromise", "--ttl=2h")
	if !strings.Contains(out, "has been created") {
		t.Fatalf("lock: %q", out)
	}
	docs := root.mustCtl(t, "get", "lock")
	rs, err := resource.Parse([]byte(docs), "get lock")
	if err != nil || len(rs) != 1 {
		t.Fatalf("get lock: %v %q", err, docs)
	}
	l := rs[0].(*resource.Lock)
	if l.Spec.Target != (resource.LockTarget{User: "alice"}) || l.Spec.Message != "suspected compromise" || l.Spec.Expires == nil ||
		l.Spec.Expires.Before(time.Now().Add(119*time.Minute)) || l.Spec.Expires.After(time.Now().Add(121*time.Minute)) || !strings.Contains(out, l.Metadata.Name) {
		t.Fatalf("the lock: %+v (%q)", l, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := decide()
		if !d.Allow && strings.Contains(strings.Join(d.Reasons, " "), "suspected compromise") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the lock: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// users rm says that certificates outlive the user, and how to end them.
	root.mustCtl(t, "users", "add", "bob", "--roles=access", "--logins=bob")
	if out := root.mustCtl(t, "users", "rm", "bob"); !strings.Contains(out, "tetherctl lock --user=bob") {
		t.Fatalf("users rm: %q", out)
	}
}

func userCA(t *testing.T, c *testCluster) *resource.CertAuthority {
	t.Helper()
	cas, err := c.gw.Auth().Get(context.Background(), resource.KindCertAuthority, "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cas {
		if a := r.(*resource.CertAuthority); a.Spec.Type == resource.CATypeUser && a.Metadata.Name == c.name {
			return a
		}
	}
	t.Fatal("no user CA")
	return nil
}

// get lock --format text prints tctl's lock table (ID, Target, Message, Expires): it
// printed only Kind, Name and Labels (none), so an admin saw neither whom a lock holds
// nor until when. Found by the acceptance pass as a Teleport admin.
func TestLockTableShowsTargetMessageAndExpiry(t *testing.T) {
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	exp := now.Add(90 * time.Minute)
	header, rows := table(resource.KindLock, []resource.Resource{
		&resource.Lock{Kind: resource.KindLock, Version: "v2", Metadata: resource.Metadata{Name: "stolen-laptop"},
			Spec: resource.LockSpec{Target: resource.LockTarget{User: "alice", Login: "root"}, Message: "laptop reported stolen", Expires: &exp}},
		&resource.Lock{Kind: resource.KindLock, Version: "v2", Metadata: resource.Metadata{Name: "l2"},
			Spec: resource.LockSpec{Target: resource.LockTarget{Node: "node-west"}}},
	}, now)
	if want := []string{"ID", "Target", "Message", "Expires"}; !slices.Equal(header, want) {
		t.Fatalf("header %q, want %q", header, want)
	}
	want := [][]string{
		{"stolen-laptop", "user=alice,login=root", "laptop reported stolen", "02 Dec 26 17:30 UTC (1h30m0s)"},
		{"l2", "node=node-west", "", "never"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
}
