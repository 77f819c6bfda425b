package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A lock's remote_cluster target names the cluster whose users it locks (the certificate's
// signer): on a leaf, remote_cluster: ROOT locks the root's users. On a root, a lock naming
// one of its own leaves matched nothing — the root accepts no certificate a leaf signed — so
// tetherctl lock --remote-cluster=leaf-east (whose help said "lock this remote (leaf)
// cluster") left routes and live sessions to leaf-east as they were while reporting the
// lock created. Found by the acceptance pass on the demo's root (a tether ssh session to
// node-west survived lock --remote-cluster=leaf-west). Such a lock is refused, saying what
// does cut a leaf off.
func TestALockOnALeafsNameAtTheRootIsRefused(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "leaf.example.com"), "test"); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"{remote_cluster: leaf.example.com}", "{remote_cluster: leaf.example.com, user: alice}"} {
		_, err := root.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: cut-leaf}\nspec:\n  target: "+target+"\n"), false)
		if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "tetherctl rm rc/leaf.example.com") {
			t.Errorf("lock %s on the root: %v, want it refused with what cuts a leaf off", target, err)
		}
	}
	// A lock on the users of another cluster (a leaf locking its root's users) is kept.
	leaf := newService(t, "leaf.example.com")
	if _, err := leaf.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: cut-root}\nspec:\n  target: {remote_cluster: root.example.com}\n"), false); err != nil {
		t.Errorf("a leaf's lock on its root's users: %v", err)
	}
}
