package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/resource"
)

func rootLock(name string, target resource.LockTarget, msg string) resource.Lock {
	return resource.Lock{Metadata: resource.Metadata{Name: name}, Spec: resource.LockSpec{Target: target, Message: msg}}
}

// trustRoot stores a trusted_cluster of root as an established trust does (no join: the
// lock tests need only the record).
func trustRoot(t *testing.T, s *Service, root string, enabled bool) {
	t.Helper()
	tc := &resource.TrustedCluster{Kind: "trusted_cluster", Version: "v2", Metadata: resource.Metadata{Name: root},
		Spec: resource.TrustedClusterSpec{Enabled: enabled, Token: "3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d", TunnelAddr: "a:1", WebProxyAddr: "a:1"}}
	if err := s.put(context.Background(), resourceKey(resource.KindTrustedCluster, root), tc); err != nil {
		t.Fatal(err)
	}
}

func storedLocks(t *testing.T, s *Service) map[string]*resource.Lock {
	t.Helper()
	rs, err := s.Get(context.Background(), resource.KindLock, "", false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resource.Lock{}
	for _, r := range rs {
		out[r.GetMetadata().Name] = r.(*resource.Lock)
	}
	return out
}

// TestRootLocksAreScopedToTheRootsUsers: what a root pushes is stored under the root's
// name and targets only identities from that root, whatever the root wrote; a set
// replaces the previous one; the leaf's own locks are never touched; removing the trust
// removes them.
func TestRootLocksAreScopedToTheRootsUsers(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	const root = "root.example.com"
	trustRoot(t, leaf, root, true)
	if _, err := leaf.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: incident}\nspec:\n  target: {user: alice}\n"), false); err != nil {
		t.Fatal(err)
	}
	rev := leaf.Revision()
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	withExp := rootLock("maint", resource.LockTarget{Login: "root"}, "")
	withExp.Spec.Expires = &exp
	n, err := leaf.ReplaceRemoteLocks(ctx, root, []resource.Lock{
		rootLock("incident", resource.LockTarget{User: "alice"}, "stolen laptop"),
		rootLock("ops", resource.LockTarget{Role: "ops", RemoteCluster: root}, ""),
		withExp,
	})
	if err != nil || n != 3 {
		t.Fatalf("first push: %d changed, %v", n, err)
	}
	if leaf.Revision() == rev {
		t.Fatal("the bundle was not rebuilt after the push")
	}
	got := storedLocks(t, leaf)
	if own := got["incident"]; own == nil || own.Spec.Target != (resource.LockTarget{User: "alice"}) || own.Metadata.Labels[LabelReplicatedFrom] != "" {
		t.Fatalf("the leaf's own lock changed: %+v", own)
	}
	for name, want := range map[string]resource.LockTarget{
		"incident@" + root: {User: "alice", RemoteCluster: root},
		"ops@" + root:      {Role: "ops", RemoteCluster: root},
		"maint@" + root:    {Login: "root", RemoteCluster: root},
	} {
		l := got[name]
		if l == nil {
			t.Fatalf("%s not stored: %v", name, got)
		}
		if l.Spec.Target != want || l.Metadata.Labels[LabelReplicatedFrom] != root {
			t.Errorf("%s: target %+v labels %v, want %+v from %s", name, l.Spec.Target, l.Metadata.Labels, want, root)
		}
	}
	if e := got["maint@"+root].Spec.Expires; e == nil || !e.Equal(exp) {
		t.Errorf("the expiry was not kept: %v", e)
	}

	// The same set again changes nothing and does not rebuild.
	rev = leaf.Revision()
	if n, err := leaf.ReplaceRemoteLocks(ctx, root, []resource.Lock{
		rootLock("incident", resource.LockTarget{User: "alice"}, "stolen laptop"),
		rootLock("ops", resource.LockTarget{Role: "ops"}, ""),
		withExp,
	}); err != nil || n != 0 || leaf.Revision() != rev {
		t.Fatalf("an unchanged set: %d changed, %v, revision moved %v", n, err, leaf.Revision() != rev)
	}

	// A smaller set removes what is gone.
	if n, err := leaf.ReplaceRemoteLocks(ctx, root, []resource.Lock{rootLock("ops", resource.LockTarget{Role: "ops"}, "")}); err != nil || n != 2 {
		t.Fatalf("smaller set: %d changed, %v", n, err)
	}
	got = storedLocks(t, leaf)
	if got["incident@"+root] != nil || got["maint@"+root] != nil || got["ops@"+root] == nil || got["incident"] == nil {
		t.Fatalf("after the smaller set: %v", got)
	}

	// Another root's set does not touch this one's.
	trustRoot(t, leaf, "other.example.com", true)
	if _, err := leaf.ReplaceRemoteLocks(ctx, "other.example.com", []resource.Lock{rootLock("ops", resource.LockTarget{User: "bob"}, "")}); err != nil {
		t.Fatal(err)
	}
	if got = storedLocks(t, leaf); got["ops@"+root] == nil || got["ops@other.example.com"].Spec.Target.RemoteCluster != "other.example.com" {
		t.Fatalf("two roots: %v", got)
	}

	// Removing the trust removes that root's locks.
	tc := &resource.TrustedCluster{Kind: "trusted_cluster", Version: "v2", Metadata: resource.Metadata{Name: root},
		Spec: resource.TrustedClusterSpec{Enabled: false, Token: "3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d", TunnelAddr: "a:1", WebProxyAddr: "a:1"}}
	if err := leaf.put(ctx, resourceKey(resource.KindTrustedCluster, root), tc); err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Delete(ctx, resource.KindTrustedCluster, root); err != nil {
		t.Fatal(err)
	}
	if got = storedLocks(t, leaf); got["ops@"+root] != nil || got["ops@other.example.com"] == nil || got["incident"] == nil {
		t.Fatalf("after removing the trust: %v", got)
	}
}

// TestRootLocksRefused: a root cannot aim a lock at another cluster's users, and a bad
// set changes nothing.
func TestRootLocksRefused(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	const root = "root.example.com"
	trustRoot(t, leaf, root, true)
	if _, err := leaf.ReplaceRemoteLocks(ctx, root, []resource.Lock{rootLock("keep", resource.LockTarget{User: "carol"}, "")}); err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string][]resource.Lock{
		"another cluster's users": {rootLock("x", resource.LockTarget{User: "bob", RemoteCluster: "leaf.example.com"}, "")},
		"an empty target":         {rootLock("x", resource.LockTarget{}, "")},
		"a lock twice":            {rootLock("x", resource.LockTarget{User: "a"}, ""), rootLock("x", resource.LockTarget{User: "b"}, "")},
		"a bad name":              {rootLock("a b", resource.LockTarget{User: "a"}, "")},
		"too many":                make([]resource.Lock, MaxRemoteLocks+1),
	} {
		if _, err := leaf.ReplaceRemoteLocks(ctx, root, set); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	got := storedLocks(t, leaf)
	if len(got) != 1 || got["keep@"+root] == nil {
		t.Fatalf("a refused set changed the stored locks: %v", got)
	}
	long := strings.Repeat("n", resource.MaxNameLength)
	if n := RemoteLockName(root, long); len(n) > resource.MaxNameLength || !strings.HasSuffix(n, "@"+root) {
		t.Fatalf("a long name: %q", n)
	}
}

// TestRootCannotOverwriteALocalLock: a leaf admin who cut a compromised root off with a
// local lock named like a replicated one ("cutoff@ROOT") keeps it: the root's lock of the
// same name neither overwrites nor, by a later push without it, removes the leaf's lock.
func TestRootCannotOverwriteALocalLock(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	const root = "root.example.com"
	trustRoot(t, leaf, root, true)
	if _, err := leaf.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: cutoff@root.example.com}\nspec:\n  target: {remote_cluster: root.example.com}\n  message: root compromised\n"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.ReplaceRemoteLocks(ctx, root, []resource.Lock{rootLock("cutoff", resource.LockTarget{User: "nobody"}, "")}); err == nil {
		t.Error("the root's lock overwrote the leaf's own lock of the same name")
	}
	if _, err := leaf.ReplaceRemoteLocks(ctx, root, nil); err != nil {
		t.Fatal(err)
	}
	got := storedLocks(t, leaf)["cutoff@"+root]
	if got == nil || got.Spec.Target != (resource.LockTarget{RemoteCluster: root}) || got.Metadata.Labels[LabelReplicatedFrom] != "" {
		t.Fatalf("the leaf's own lock after the root's pushes: %+v", got)
	}
}

// TestLocksOnlyFromAnEnabledTrust: a push that reaches the store after its root's trust
// was removed or disabled (it waited for the write lock while the admin cut the root off,
// or came before the tunnel closed) is refused: the leaf takes locks only from a root it
// trusts now, and a removed trust leaves none behind.
func TestLocksOnlyFromAnEnabledTrust(t *testing.T) {
	ctx := context.Background()
	leaf := newService(t, "leaf.example.com")
	set := []resource.Lock{rootLock("incident", resource.LockTarget{User: "alice"}, "")}
	if _, err := leaf.ReplaceRemoteLocks(ctx, "stranger.example.com", set); err == nil {
		t.Error("took locks from a cluster this leaf does not trust")
	}
	trustRoot(t, leaf, "disabled.example.com", false)
	if _, err := leaf.ReplaceRemoteLocks(ctx, "disabled.example.com", set); err == nil {
		t.Error("took locks from a root whose trust is disabled")
	}
	if got := storedLocks(t, leaf); len(got) != 0 {
		t.Fatalf("stored %v", got)
	}
	trustRoot(t, leaf, "root.example.com", true)
	if _, err := leaf.ReplaceRemoteLocks(ctx, "root.example.com", set); err != nil {
		t.Fatal(err)
	}
}
