package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// tetherdBinary builds this command once per test run.
func tetherdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tetherd-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tetherd")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building tetherd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeConfig writes a configuration for a cluster with its data in dataDir, on a free port.
func writeConfig(t *testing.T, dataDir string) string {
	p := filepath.Join(t.TempDir(), "tether.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("cluster_name: root.example.com\ndata_dir: %s\nproxy:\n  web_listen_addr: %s\n", dataDir, freeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runToExit runs tetherd start and returns its exit status and output.
func runToExit(t *testing.T, cfg string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tetherdBinary(t), "start", "-c", cfg).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// startTetherd runs a tetherd with cfg until it answers, then stops it; with keep it is
// left running (and stopped at the test's end).
func startTetherd(t *testing.T, cfg string, keep bool) {
	t.Helper()
	cmd := exec.Command(tetherdBinary(t), "start", "-c", cfg)
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg)
	addr := strings.TrimSpace(strings.SplitAfter(string(data), "web_listen_addr: ")[1])
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := client.Get("https://" + addr + "/webapi/ping")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out.String())
		}
		resp.Body.Close()
		return nil
	})
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("tetherd did not stop cleanly: %v\n%s", err, out.String())
		}
	}
	if keep {
		t.Cleanup(stop)
		return
	}
	stop()
}

func TestStartupFaultsExitWithTheStoresMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tetherd")
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dataDir string)
		want  string
	}{
		{"store_locked_by_another_tetherd", func(t *testing.T, dataDir string) {
			startTetherd(t, writeConfig(t, dataDir), true)
		}, "directory locked by another process"},
		{"store_damaged_in_the_middle", func(t *testing.T, dataDir string) {
			startTetherd(t, writeConfig(t, dataDir), false) // writes the preset role: a log with records
			p := filepath.Join(dataDir, "state", "state.log")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) < 64 {
				t.Fatalf("state.log has only %d bytes", len(data))
			}
			// Damage a byte inside the first record, and keep a valid-looking tail after it.
			data[16] ^= 0xff
			if err := os.WriteFile(p, append(data, data[8:]...), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is corrupt at byte offset"},
		{"unreadable_data_dir", func(t *testing.T, dataDir string) {
			// The store's directory is a file: unreadable as a directory even for root,
			// for whom permission bits would not do.
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dataDir, "state"), []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			tc.setup(t, dataDir)
			code, out := runToExit(t, writeConfig(t, dataDir))
			if code != 1 || strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") || !strings.Contains(out, "ERROR:") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 with the store's message (%q) and no panic:\n%s", code, tc.want, out)
			}
		})
	}
}
