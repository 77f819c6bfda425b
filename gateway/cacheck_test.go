package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
)

func loadRedis(t *testing.T, dir, addr, ns string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "tether.yaml")
	y := fmt.Sprintf("cluster_name: root.example.com\ndata_dir: %s\nproxy:\n  web_listen_addr: 127.0.0.1:0\nstorage:\n  type: redis\n  redis:\n    addr: %s\n    namespace: %s\n",
		filepath.Join(dir, "data"), addr, ns)
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startFails(t *testing.T, cfg *config.Config) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		g.close()
	}
	return err
}

// TestReplicasRunOnlyWithTheClustersCAs: replicas sharing a Redis store must share the
// cluster's CAs. A replica started on an empty data_dir/ca does not make CAs of its own
// (users and nodes would be refused by one replica or the other), and one whose CAs are
// another's is refused; with the CAs copied it starts.
func TestReplicasRunOnlyWithTheClustersCAs(t *testing.T) {
	testenv.Command(t, "redis-server")
	rd := redistest.Start(t, redistest.Config{})
	a := loadRedis(t, t.TempDir(), rd.Addr(), "ha")
	run(t, a, func(*Gateway) {})

	emptyDir := t.TempDir()
	err := startFails(t, loadRedis(t, emptyDir, rd.Addr(), "ha"))
	if err == nil || !strings.Contains(err.Error(), "copy data_dir/ca from a running replica") {
		t.Fatalf("a replica on an empty data_dir/ca: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(emptyDir, "data", "ca", "user")); serr == nil {
		t.Fatal("the refused replica made CAs of its own")
	}

	// Another cluster's CAs under the same name (its own first start, on another namespace).
	otherDir := t.TempDir()
	run(t, loadRedis(t, otherDir, rd.Addr(), "elsewhere"), func(*Gateway) {})
	err = startFails(t, loadRedis(t, otherDir, rd.Addr(), "ha"))
	if err == nil || !strings.Contains(err.Error(), "are not the cluster's") {
		t.Fatalf("a replica with CAs of its own: %v", err)
	}

	// With a's CAs copied, the empty replica starts.
	if out, err := exec.Command("cp", "-a", filepath.Join(a.DataDir, "ca"), filepath.Join(emptyDir, "data", "ca")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	run(t, loadRedis(t, emptyDir, rd.Addr(), "ha"), func(*Gateway) {})
}

// TestCARecordUpgradeAndRotation: a record without the openssh CA (an older version)
// gains it; a rotation overwrites the record; a replica that did not follow is then
// refused at its next start.
func TestCARecordUpgradeAndRotation(t *testing.T) {
	ctx := context.Background()
	st, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	// What an older version's record would hold: no openssh CA.
	old := caRecordOf(c)
	delete(old, "openssh")
	data, _ := json.Marshal(old)
	if _, err := st.Put(ctx, state.Item{Key: caRecordKey, Value: data}); err != nil {
		t.Fatal(err)
	}
	if err := publishCARecord(ctx, st, c, false); err != nil {
		t.Fatal(err)
	}
	r, err := readCARecord(ctx, st)
	if err != nil || len(r["openssh"]) != 1 || len(r["user"]) != 1 {
		t.Fatalf("after the upgrade: %v %v", r, err)
	}
	// Another replica rotated the user CA to a new key: this one is refused.
	rotated, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := publishCARecord(ctx, st, rotated, true); err != nil {
		t.Fatal(err)
	}
	if err := publishCARecord(ctx, st, c, false); err == nil || !strings.Contains(err.Error(), "not the cluster's") {
		t.Fatalf("a replica that did not follow a rotation: %v", err)
	}
}

// TestCARecordFirstStartRace: replicas of a new cluster started together on empty
// data_dirs each make CAs; the store's record must name exactly one replica's, and every
// other replica must be refused, not run with CAs of its own after overwriting the
// record (the check read "no record" and then wrote unconditionally).
func TestCARecordFirstStartRace(t *testing.T) {
	testenv.Command(t, "redis-server")
	rd := redistest.Start(t, redistest.Config{})
	ctx := context.Background()
	const n = 8
	clusters := make([]*ca.Cluster, n)
	stores := make([]state.Store, n)
	for i := range n {
		c, err := ca.NewCluster("root.example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := state.NewRedis(state.RedisConfig{Addr: rd.Addr(), Namespace: "race"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		clusters[i], stores[i] = c, st
	}
	for round := range 5 {
		if round > 0 {
			if err := stores[0].Delete(ctx, caRecordKey); err != nil {
				t.Fatal(err)
			}
		}
		start := make(chan struct{})
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = publishCARecord(ctx, stores[i], clusters[i], false)
			}()
		}
		close(start)
		wg.Wait()
		var ran []int
		for i, err := range errs {
			if err == nil {
				ran = append(ran, i)
			} else if !strings.Contains(err.Error(), "are not the cluster's") {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		if len(ran) != 1 {
			t.Fatalf("round %d: replicas %v with different CAs all passed the check", round, ran)
		}
		r, err := readCARecord(ctx, stores[0])
		if err != nil {
			t.Fatal(err)
		}
		if bad := caRecordOf(clusters[ran[0]]).disjoint(r); len(bad) > 0 {
			t.Fatalf("round %d: the replica that runs is not the one the record names (%v)", round, bad)
		}
	}
}
