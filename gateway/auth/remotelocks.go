package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/resource"
)

// LabelReplicatedFrom marks a lock a root replicated to this cluster (a leaf); the root's
// own locks (without the label) are never sent on. See resource.LabelReplicatedFrom.
const LabelReplicatedFrom = resource.LabelReplicatedFrom

// MaxRemoteLocks bounds the locks one root may keep on this cluster.
const MaxRemoteLocks = 10_000

// RemoteLockName is the name a root's lock is stored under on a leaf: the root's name
// after an "@", so messages say whose lock it is ("locked by lock
// "incident@root.example.com""). A name that would be too long keeps a digest instead.
func RemoteLockName(root, name string) string {
	n := name + "@" + root
	if len(n) <= resource.MaxNameLength {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:8]) + "@" + root
}

// ReplaceRemoteLocks makes the locks replicated from root exactly locks (Teleport's
// ReplaceRemoteLocks): each is stored scoped to root's users — its remote_cluster target
// is set to root whatever the root sent, so a root can lock only its own users here —
// and every earlier lock from root that is not in the set is removed. A lock whose
// remote_cluster names another cluster is refused (it could match none of root's users;
// a root never sends one). It returns how many locks were written or removed; the bundle
// is rebuilt when any was.
func (s *Service) ReplaceRemoteLocks(ctx context.Context, root string, locks []resource.Lock) (int, error) {
	if len(locks) > MaxRemoteLocks {
		return 0, errorf(ErrBadRequest, "%d locks from %s, more than %d", len(locks), root, MaxRemoteLocks)
	}
	want := make(map[string]*resource.Lock, len(locks))
	for i := range locks {
		l := locks[i]
		if l.Spec.Target.IsEmpty() {
			return 0, errorf(ErrBadRequest, "lock %q from %s has no target", l.Metadata.Name, root)
		}
		if rc := l.Spec.Target.RemoteCluster; rc != "" && rc != root {
			return 0, errorf(ErrBadRequest, "lock %q from %s targets the users of cluster %q", l.Metadata.Name, root, rc)
		}
		orig := l.Metadata.Name
		l.Kind, l.Version = resource.KindLock, "v2"
		l.Metadata = resource.Metadata{
			Name:        RemoteLockName(root, orig),
			Description: fmt.Sprintf("lock %q of the root cluster %s, replicated through its tunnel", orig, root),
			Labels:      map[string]string{LabelReplicatedFrom: root},
		}
		l.Spec.Target.RemoteCluster = root
		if err := l.Validate(); err != nil {
			return 0, errorf(ErrBadRequest, "lock %q from %s: %v", orig, root, err)
		}
		if _, dup := want[l.Metadata.Name]; dup {
			return 0, errorf(ErrBadRequest, "lock %q from %s sent twice", orig, root)
		}
		want[l.Metadata.Name] = &l
	}

	// A set that changes the locks rebuilds the bundle: a root (a compromised one
	// included) gets at most one such set applied per RemoteLockSetGap. The wait and the
	// next time are read and written apart: this holds because the tunnel hands one push
	// per root at a time (tunnel's receivePush); another caller must do the same.
	if err := s.lockPushGap.wait(ctx, root); err != nil {
		return 0, err
	}
	n, err := s.replaceRemoteLocksIfTrusted(ctx, root, want)
	if n > 0 {
		s.lockPushGap.next(root, RemoteLockSetGap)
	}
	return n, err
}

// RemoteLockSetGap is the least time between two lock sets of one root that change
// anything: a root pushes within a second of a change, so a person's locks pass at once.
const RemoteLockSetGap = time.Second

// gaps holds, per key (a peer cluster), the earliest time of its next change.
type gaps struct {
	mu sync.Mutex
	at map[string]time.Time
}

// wait waits until key's next change may be applied, or ctx ends.
func (g *gaps) wait(ctx context.Context, key string) error {
	g.mu.Lock()
	wait := time.Until(g.at[key])
	g.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next makes key wait gap before its next change.
func (g *gaps) next(key string, gap time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.at == nil {
		g.at = map[string]time.Time{}
	}
	g.at[key] = time.Now().Add(gap)
}

// replaceRemoteLocksIfTrusted stores the checked set want if root is trusted now.
func (s *Service) replaceRemoteLocksIfTrusted(ctx context.Context, root string, want map[string]*resource.Lock) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Only from a root this cluster trusts now: checked under the write lock, so a push
	// that waited while the admin disabled or removed the trust changes nothing (and a
	// removed trust leaves no locks behind).
	r, err := s.get(ctx, resourceKey(resource.KindTrustedCluster, root))
	if errors.Is(err, ErrNotFound) {
		return 0, errorf(ErrBadRequest, "locks from %s refused: this cluster does not trust it", root)
	}
	if err != nil {
		return 0, err
	}
	if tc, ok := r.(*resource.TrustedCluster); !ok || !tc.Spec.Enabled {
		return 0, errorf(ErrBadRequest, "locks from %s refused: the trust in it is disabled", root)
	}
	return s.replaceRemoteLocks(ctx, root, want)
}

// replaceRemoteLocks is ReplaceRemoteLocks with s.writeMu held and the locks checked.
func (s *Service) replaceRemoteLocks(ctx context.Context, root string, want map[string]*resource.Lock) (int, error) {
	have, err := s.remoteLocks(ctx, root)
	if err != nil {
		return 0, err
	}
	changed := 0
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	// A name held by a lock that is not this root's (the leaf admin's own, perhaps the
	// one that cuts this root off) is never overwritten: the whole set is refused and
	// the leaf keeps what it has.
	for _, n := range names {
		if have[n] != nil {
			continue
		}
		ok, err := s.exists(ctx, resourceKey(resource.KindLock, n))
		if err != nil {
			return 0, err
		}
		if ok {
			return 0, errorf(ErrAlreadyExists, "the locks of %s were not taken: this cluster has a lock of its own named %q, the name one of them is stored under; rename this cluster's lock", root, n)
		}
	}
	for _, n := range names {
		l := want[n]
		if old, ok := have[n]; ok && sameResource(old, l) {
			continue
		}
		if err := s.put(ctx, resourceKey(resource.KindLock, n), l); err != nil {
			return changed, s.afterRemoteLocks(ctx, changed, err)
		}
		changed++
		s.auditResource(ctx, map[bool]string{true: audit.ResourceUpdate, false: audit.ResourceCreate}[have[n] != nil], resource.KindLock, n)
	}
	for n := range have {
		if want[n] != nil {
			continue
		}
		if err := s.cfg.Store.Delete(ctx, resourceKey(resource.KindLock, n)); err != nil {
			return changed, s.afterRemoteLocks(ctx, changed, err)
		}
		changed++
		s.auditResource(ctx, audit.ResourceDelete, resource.KindLock, n)
	}
	if changed > 0 {
		s.log.Info("locks replicated from a root", "root", root, "locks", len(want), "changed", changed)
	}
	return changed, s.afterRemoteLocks(ctx, changed, nil)
}

// afterRemoteLocks rebuilds the bundle when any lock was written or removed, and returns
// err (the write's) before the rebuild's.
func (s *Service) afterRemoteLocks(ctx context.Context, changed int, err error) error {
	if changed > 0 {
		if rerr := s.rebuildAfter(ctx); err == nil {
			err = rerr
		}
	}
	return err
}

// remoteLocks reads the locks replicated from root, by name.
func (s *Service) remoteLocks(ctx context.Context, root string) (map[string]*resource.Lock, error) {
	rs, err := s.list(ctx, resourcesPrefix+resource.KindLock+"/")
	if err != nil {
		return nil, err
	}
	out := map[string]*resource.Lock{}
	for _, r := range rs {
		if l, ok := r.(*resource.Lock); ok && l.Metadata.Labels[LabelReplicatedFrom] == root {
			out[l.Metadata.Name] = l
		}
	}
	return out, nil
}

// OwnLocks lists this cluster's own locks (not those replicated from a root): what a
// root sends its leaves.
func (s *Service) OwnLocks(ctx context.Context) ([]*resource.Lock, error) {
	rs, err := s.list(ctx, resourcesPrefix+resource.KindLock+"/")
	if err != nil {
		return nil, err
	}
	var out []*resource.Lock
	for _, r := range rs {
		if l, ok := r.(*resource.Lock); ok && l.Metadata.Labels[LabelReplicatedFrom] == "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// sameResource: a and b encode alike (a stored lock read back against one built from a
// push; their times differ in location and monotonic reading, not in value).
func sameResource(a, b resource.Resource) bool {
	x, err1 := resource.Marshal(a)
	y, err2 := resource.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
