package state_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/redistest"
)

// The contract tests share one private redis-server, each in its own
// namespace; tests that kill or restart Redis start their own.
var shared struct {
	once sync.Once
	srv  *redistest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	os.Exit(code)
}

// sharedRedis returns the package's private redis-server, starting it on
// first use. A missing redis-server fails the test: Redis behaviour is part
// of the contract, so it is never skipped.
func sharedRedis(tb testing.TB) *redistest.Server {
	tb.Helper()
	shared.once.Do(func() { shared.srv, shared.err = redistest.New(redistest.Config{}) })
	if shared.err != nil {
		tb.Fatalf("starting a private redis-server: %v", shared.err)
	}
	return shared.srv
}

var nsSeq atomic.Int64

var unsafeNS = regexp.MustCompile(`[^A-Za-z0-9._:-]+`)

// uniqueNamespace gives each test its own Redis namespace.
func uniqueNamespace(tb testing.TB) string {
	ns := fmt.Sprintf("t%d-%s", nsSeq.Add(1), unsafeNS.ReplaceAllString(tb.Name(), "_"))
	return ns[:min(len(ns), 200)]
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRedis(tb testing.TB, addr string, cfg state.RedisConfig) *state.Redis {
	tb.Helper()
	cfg.Addr = addr
	if cfg.Namespace == "" {
		cfg.Namespace = uniqueNamespace(tb)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := state.NewRedis(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newEmbedded(tb testing.TB, dir string) *state.Embedded {
	tb.Helper()
	s, err := state.OpenEmbedded(state.EmbeddedConfig{Dir: dir, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
