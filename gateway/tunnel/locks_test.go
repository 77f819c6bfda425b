package tunnel

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/resource"
)

// TestRootLocksDocument: a root sends its live locks that can match its own users, in name
// order; expired ones and ones aimed at another cluster's users stay home.
func TestRootLocksDocument(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	lock := func(name string, tg resource.LockTarget, exp *time.Time) *resource.Lock {
		return &resource.Lock{Kind: resource.KindLock, Version: "v2", Metadata: resource.Metadata{Name: name}, Spec: resource.LockSpec{Target: tg, Expires: exp, Message: "m"}}
	}
	metaExp := lock("meta", resource.LockTarget{User: "dave"}, nil)
	metaExp.Metadata.Expires = &future
	data, n, _, err := rootLocksDoc("root.example.com", []*resource.Lock{
		lock("zed", resource.LockTarget{User: "alice"}, nil),
		lock("old", resource.LockTarget{User: "bob"}, &past),
		lock("elsewhere", resource.LockTarget{RemoteCluster: "leaf"}, nil),
		lock("self", resource.LockTarget{RemoteCluster: "root.example.com"}, nil),
		lock("later", resource.LockTarget{Login: "root"}, &future),
		metaExp,
	}, now)
	if err != nil || n != 4 {
		t.Fatal(n, err)
	}
	var doc RootLocks
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range doc.Locks {
		names = append(names, l.Name)
	}
	if want := []string{"later", "meta", "self", "zed"}; !slices.Equal(names, want) {
		t.Fatalf("sent %v, want %v", names, want)
	}
	if doc.Locks[1].Expires == nil || !doc.Locks[1].Expires.Equal(future) {
		t.Fatalf("metadata.expires not carried: %+v", doc.Locks[1])
	}
	locks, err := DecodeRootLocks(data)
	if err != nil || len(locks) != 4 {
		t.Fatalf("the leaf refuses what the root sends: %v", err)
	}
}

// TestRootLocksDocumentTheLeafTakes: the root's locks API takes any message (several
// lines, a tab, a long text) and any target text; the leaf refuses a whole document
// with one such lock, so one lock with a pasted multi-line message kept every lock of
// the root, the incident's too, from its leaves. The root sends what the leaf takes:
// messages made printable and cut, a lock whose target the leaf cannot take left home
// (and named), the others sent.
func TestRootLocksDocumentTheLeafTakes(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	lock := func(name, msg string, tg resource.LockTarget) *resource.Lock {
		return &resource.Lock{Kind: resource.KindLock, Version: "v2", Metadata: resource.Metadata{Name: name}, Spec: resource.LockSpec{Target: tg, Message: msg}}
	}
	long := strings.Repeat("é", MaxLockMessage) // 2 bytes a rune: cut on a rune boundary
	data, n, skipped, err := rootLocksDoc("root.example.com", []*resource.Lock{
		lock("incident", "compromised laptop", resource.LockTarget{User: "alice"}),
		lock("lines", "first line\nsecond line\ttabbed\x1b[31m", resource.LockTarget{User: "bob"}),
		lock("long", long, resource.LockTarget{User: "carol"}),
		lock("odd-target", "m", resource.LockTarget{User: "dave\n"}),
		lock("huge-target", "m", resource.LockTarget{Role: strings.Repeat("r", resource.MaxNameLength+1)}),
	}, now)
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if want := []string{"huge-target", "odd-target"}; !slices.Equal(skipped, want) {
		t.Fatalf("skipped %v, want %v", skipped, want)
	}
	locks, err := DecodeRootLocks(data)
	if err != nil {
		t.Fatalf("the leaf refuses what the root sends: %v", err)
	}
	got := map[string]string{}
	for _, l := range locks {
		got[l.Metadata.Name] = l.Spec.Message
	}
	if len(got) != 3 || got["incident"] != "compromised laptop" || got["lines"] != "first line second line tabbed [31m" ||
		len(got["long"]) > MaxLockMessage || !strings.HasPrefix(long, got["long"]) || got["long"] == "" {
		t.Fatalf("the leaf took %q", got)
	}
}
