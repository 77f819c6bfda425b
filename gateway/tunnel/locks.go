package tunnel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/transport/frame"
)

// Lock replication (frame.ServiceRootLocks), as Teleport replicates a root's locks to its
// leaves: a lock on the root must also stop the root's users at a leaf they reach without
// the root (a root-signed certificate used at the leaf's own proxy), not only the sessions
// the root routes. The root pushes its whole set of locks to every leaf connected to it,
// when the leaf's tunnel comes up, when the set changes, and every LockRepush; the leaf
// stores them scoped to that root's users (auth.ReplaceRemoteLocks) and its own policy
// applies them like its own locks.

// LockRepush is how often a root sends an unchanged set again (a leaf whose admin removed
// a replicated lock gets it back).
const LockRepush = 10 * time.Minute

// lockPushEvery is how often the root looks for a changed set or a new tunnel.
const lockPushEvery = time.Second

// MaxLockMessage bounds a replicated lock's message (it reaches users' terminals).
const MaxLockMessage = 1024

// RootLock is one of the root's locks on the wire.
type RootLock struct {
	Name    string         `json:"name"`
	Target  RootLockTarget `json:"target"`
	Message string         `json:"message,omitempty"`
	Expires *time.Time     `json:"expires,omitempty"`
}

// RootLockTarget is what the lock matches on the root (resource.LockTarget). A leaf adds
// remote_cluster = the root.
type RootLockTarget struct {
	User          string `json:"user,omitempty"`
	Role          string `json:"role,omitempty"`
	Login         string `json:"login,omitempty"`
	Node          string `json:"node,omitempty"`
	RemoteCluster string `json:"remote_cluster,omitempty"`
}

// RootLocks is the document the root writes on a ServiceRootLocks stream.
type RootLocks struct {
	Locks []RootLock `json:"locks"`
}

// RootLocksAnswer is the leaf's answer: how many locks changed, or why it refused the set.
type RootLocksAnswer struct {
	Changed int    `json:"changed"`
	Error   string `json:"error,omitempty"`
}

// DecodeRootLocks reads a root's lock document strictly (unknown fields, trailing data,
// more than auth.MaxRemoteLocks locks, long or unprintable text are refused) and returns
// the locks as resources, validated.
func DecodeRootLocks(data []byte) ([]resource.Lock, error) {
	var doc RootLocks
	if err := decodeStrict(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Locks) > auth.MaxRemoteLocks {
		return nil, badAnswer("%d locks, more than %d", len(doc.Locks), auth.MaxRemoteLocks)
	}
	out := make([]resource.Lock, 0, len(doc.Locks))
	for i, rl := range doc.Locks {
		if len(rl.Message) > MaxLockMessage || !printable(rl.Message) {
			return nil, badAnswer("lock %d: a message longer than %d bytes or not printable", i, MaxLockMessage)
		}
		t := rl.Target
		for _, v := range []string{t.User, t.Role, t.Login, t.Node, t.RemoteCluster} {
			if len(v) > resource.MaxNameLength || !printable(v) {
				return nil, badAnswer("lock %d: a target longer than %d bytes or not printable", i, resource.MaxNameLength)
			}
		}
		l := resource.Lock{Kind: resource.KindLock, Version: "v2", Metadata: resource.Metadata{Name: rl.Name},
			Spec: resource.LockSpec{Target: resource.LockTarget(t), Message: rl.Message, Expires: rl.Expires}}
		if err := l.Validate(); err != nil {
			return nil, badAnswer("lock %d: %v", i, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// rootLocksDoc is the document a root sends: its own locks that have not expired and
// that can match its own users (a lock whose remote_cluster names another cluster cannot,
// on the root, and is not sent), in name order. It holds only what DecodeRootLocks takes,
// since a leaf refuses a whole document for one lock it cannot take: a message is made
// printable (a control character becomes a space) and cut to MaxLockMessage bytes; a lock
// whose target text a leaf would refuse stays home and is named in skipped.
func rootLocksDoc(self string, locks []*resource.Lock, now time.Time) (data []byte, n int, skipped []string, err error) {
	doc := RootLocks{Locks: []RootLock{}}
	for _, l := range locks {
		exp := l.Spec.Expires
		if exp == nil {
			exp = l.Metadata.Expires
		}
		if exp != nil && !exp.After(now) {
			continue
		}
		t := l.Spec.Target
		if rc := t.RemoteCluster; rc != "" && rc != self {
			continue
		}
		if !sendableTarget(t) {
			skipped = append(skipped, l.Metadata.Name)
			continue
		}
		doc.Locks = append(doc.Locks, RootLock{Name: l.Metadata.Name, Target: RootLockTarget(t), Message: sendableMessage(l.Spec.Message), Expires: exp})
	}
	sort.Slice(doc.Locks, func(i, j int) bool { return doc.Locks[i].Name < doc.Locks[j].Name })
	sort.Strings(skipped)
	data, err = json.Marshal(doc)
	return data, len(doc.Locks), skipped, err
}

// sendableTarget: every text of t is one DecodeRootLocks takes.
func sendableTarget(t resource.LockTarget) bool {
	for _, v := range []string{t.User, t.Role, t.Login, t.Node, t.RemoteCluster} {
		if len(v) > resource.MaxNameLength || !printable(v) {
			return false
		}
	}
	return true
}

// sendableMessage is m as DecodeRootLocks takes it: valid UTF-8, control characters as
// spaces, at most MaxLockMessage bytes (cut on a character boundary).
func sendableMessage(m string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(m, "?") {
		if auth.IsControl(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > MaxLockMessage {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// receiveLocks accepts root's lock document, stores it and answers.
func (l *Leaf) receiveLocks(root string) (func(net.Conn), error) {
	return func(c net.Conn) {
		receivePush(c, &l.lockSlots, root, "locks", func(data []byte, err error) []byte {
			ans := RootLocksAnswer{}
			var locks []resource.Lock
			if err == nil {
				locks, err = DecodeRootLocks(data)
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				ans.Changed, err = l.cfg.Auth.ReplaceRemoteLocks(ctx, root, locks)
				cancel()
			}
			if err != nil {
				ans.Error = err.Error()
				l.log.Warn("refused the locks a root sent", "root", root, "err", err)
			}
			out, _ := json.Marshal(ans)
			return out
		})
	}, nil
}

// PushLocks sends this root's lock document to leaf and returns how many of the leaf's
// replicated locks changed. A leaf that predates lock replication refuses the request
// (a *transport.DialDeniedError or a malformed-request close).
func (r *Root) PushLocks(ctx context.Context, leaf string, doc []byte) (int, error) {
	data, err := r.push(ctx, leaf, frame.ServiceRootLocks, "locks", doc, 4096)
	if err != nil {
		return 0, err
	}
	var ans RootLocksAnswer
	if err := decodeStrict(data, &ans); err != nil {
		return 0, err
	}
	if ans.Error != "" {
		return 0, fmt.Errorf("cluster %s refused the locks: %s", leaf, ans.Error)
	}
	return ans.Changed, nil
}

// lockRetry is how long a root waits before pushing again to a leaf that failed or
// refused the last push.
const lockRetry = 30 * time.Second

// pushLocks sends the lock document to every leaf connected to this replica that has not
// had this version of it (or not for LockRepush).
func (r *Root) pushLocks(ctx context.Context) {
	connected := r.connectedLeaves()
	if len(connected) == 0 {
		return
	}
	doc, digest, n, err := r.lockDoc(ctx, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reading the locks to replicate to leaves", "err", err)
		}
		return
	}
	r.lockRounds.start(connected, digest, LockRepush, lockRetry, func(leaf string) bool {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		changed, err := r.PushLocks(pctx, leaf, doc)
		cancel()
		switch {
		case err == nil:
			if changed > 0 {
				r.log.Info("replicated locks to a leaf", "leaf", leaf, "locks", n, "changed", changed)
			}
			return true
		case olderLeaf(err):
			r.log.Warn("a leaf does not take the root's locks (an older version?): this root's locks stop its users there only on routes through this root; retrying",
				"leaf", leaf, "retry_in", lockRetry, "err", err)
		case ctx.Err() == nil:
			r.log.Warn("replicating locks to a leaf; retrying", "leaf", leaf, "retry_in", lockRetry, "err", err)
		}
		return false
	})
}

// lockDoc returns the lock document, its digest and how many locks it holds. It is made
// again only when the policy revision moved (every lock change moves it) or a minute
// passed (locks that expired drop out; the leaf ignores expired ones anyway), so a root
// with leaves connected does not read and decode every lock every second.
func (r *Root) lockDoc(ctx context.Context, now time.Time) ([]byte, string, int, error) {
	rev := r.cfg.Auth.Revision()
	r.lockMu.Lock()
	c := r.docCache
	r.lockMu.Unlock()
	if c.doc != nil && c.rev == rev && now.Sub(c.at) < time.Minute {
		return c.doc, c.digest, c.n, nil
	}
	locks, err := r.cfg.Auth.OwnLocks(ctx)
	if err != nil {
		return nil, "", 0, err
	}
	doc, n, skipped, err := rootLocksDoc(r.cfg.Auth.ClusterName(), locks, now)
	if err != nil {
		return nil, "", 0, err
	}
	if len(skipped) > 0 {
		r.log.Error("locks not replicated to leaves: a target longer than a name or with control characters, which leaves refuse", "locks", skipped)
	}
	sum := sha256.Sum256(doc)
	c = lockDocCache{rev: rev, at: now, doc: doc, digest: hex.EncodeToString(sum[:]), n: n}
	r.lockMu.Lock()
	r.docCache = c
	r.lockMu.Unlock()
	return c.doc, c.digest, c.n, nil
}

// lockDocCache is the last lock document a root made.
type lockDocCache struct {
	rev, digest string
	at          time.Time
	doc         []byte
	n           int
}
