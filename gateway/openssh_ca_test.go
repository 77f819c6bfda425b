package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetherproject/tether/ca"
)

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestADataDirFromBeforeTheOpenSSHCAGetsOneAtStart is attacker test (d) of the openssh
// CA at the level of tetherd's start: a data dir written before the openssh CA existed
// (its ca/openssh/ removed) starts, gets an openssh CA with a key of its own, keeps its
// other CAs, and the log tells the admin what to re-export. The next start loads it and
// says nothing.
func TestADataDirFromBeforeTheOpenSSHCAGetsOneAtStart(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir)
	var userFP, hostFP string
	run(t, cfg, func(g *Gateway) {
		userFP = ca.Fingerprint(g.Auth().CA().User.SigningKey())
		hostFP = ca.Fingerprint(g.Auth().CA().Host.SigningKey())
	})
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "ca", "openssh")); err != nil {
		t.Fatal(err)
	}
	start := func() (string, string) {
		var logs lockedBuffer
		var fp string
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		g, err := New(ctx, load(t, dir), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		c := g.Auth().CA()
		if c.OpenSSH == nil {
			t.Fatal("no openssh CA after the start")
		}
		fp = ca.Fingerprint(c.OpenSSH.SigningKey())
		if ca.Fingerprint(c.User.SigningKey()) != userFP || ca.Fingerprint(c.Host.SigningKey()) != hostFP {
			t.Error("the user or host CA changed")
		}
		if fp == userFP || fp == hostFP {
			t.Error("the openssh CA shares a key with another CA")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return logs.String(), fp
	}
	logs, fp := start()
	if !strings.Contains(logs, "created the cluster's openssh CA") || !strings.Contains(logs, "tetherctl auth export --type=openssh") || !strings.Contains(logs, fp) {
		t.Fatalf("the start did not tell the admin to re-export the openssh CA:\n%s", logs)
	}
	again, fp2 := start()
	if fp2 != fp || strings.Contains(again, "openssh CA") {
		t.Fatalf("the next start: key %s (was %s), log:\n%s", fp2, fp, again)
	}
}
