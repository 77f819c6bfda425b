package tunnel

import (
	"encoding/json"
	"slices"
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
	data, n, err := rootLocksDoc("root.example.com", []*resource.Lock{
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
