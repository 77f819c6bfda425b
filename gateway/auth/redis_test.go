package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
)

func redisReplica(t *testing.T, addr string, c *ca.Cluster) *Service {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.NewRedis(state.RedisConfig{Addr: addr, Namespace: "root.example.com", Logger: quiet, DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	s, err := New(context.Background(), Config{ClusterName: c.Name, CA: c, Store: st, Engine: eng, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReplicasShareResourcesThroughRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	srv := redistest.Start(t, redistest.Config{AppendFsync: "always"})
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	a := redisReplica(t, srv.Addr(), c)
	b := redisReplica(t, srv.Addr(), c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Wait for b's watcher to start (its first rebuild bumps the revision).
	waitFor(t, func() bool { return b.gen.Load() >= 2 }, "replica b watching")
	before := b.Revision()
	if _, err := a.Create(context.Background(), mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: l1}\nspec: {target: {user: bob}}\n"), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Revision() != before }, "replica b rebuilding after a's change")

	// Redis down mid-run: writes report the storage error, decisions go on with the
	// loaded bundle.
	srv.Kill()
	rev := a.Revision()
	_, err = a.Create(context.Background(), mustParse(t, "kind: role\nversion: v5\nmetadata: {name: r}\nspec: {}\n"), false)
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("write with Redis down: %v", err)
	}
	d, err := a.Engine().Decide(context.Background(), &policy.Input{Action: policy.ActionSSHSession, Cluster: c.Name, Now: time.Now(), Login: "x",
		Cert: policy.Cert{Type: "user", Username: "bob", Principals: []string{"x"}, ValidAfter: time.Now().Add(-time.Minute), ValidBefore: time.Now().Add(time.Hour),
			SigningCA: policy.SigningCA{Cluster: c.Name, Fingerprint: c.User.TrustedKeys()[0].Fingerprint()}}})
	if err != nil || d.Allow || a.Revision() != rev {
		t.Fatalf("deciding with Redis down: %+v %v", d, err)
	}
	// A replica starting while Redis is down starts, denies everything, and catches up
	// once Redis is back.
	late := redisReplica(t, srv.Addr(), c)
	if !late.stale.Load() {
		t.Fatal("a replica started with Redis down does not know its bundle is stale")
	}
	lctx, lcancel := context.WithCancel(context.Background())
	ldone := make(chan error, 1)
	go func() { ldone <- late.Run(lctx) }()
	t.Cleanup(func() { lcancel(); <-ldone })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := a.Create(context.Background(), mustParse(t, "kind: role\nversion: v5\nmetadata: {name: r}\nspec: {}\n"), true)
		return err == nil
	}, "writes after Redis restarted")
	waitFor(t, func() bool { return !late.stale.Load() }, "the late replica loading the stored resources")
	if _, err := a.Get(context.Background(), resource.KindLock, "l1", false); err != nil {
		t.Fatalf("lock lost across a Redis restart: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("waiting for %s", what)
	})
}
