package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// decision is the part of a decision-log event the scenario reads.
type decision struct {
	Input struct {
		Action string `json:"action"`
		Login  string `json:"login"`
		Cert   struct {
			Username string `json:"username"`
		} `json:"cert"`
		Node struct {
			Name string `json:"name"`
		} `json:"node"`
		RemoteCluster struct {
			Name string `json:"name"`
		} `json:"remote_cluster"`
	} `json:"input"`
	Result struct {
		Allow bool `json:"allow"`
	} `json:"result"`
}

func decisions(t *testing.T, path string) []decision {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []decision
	for _, line := range strings.Split(string(data), "\n") {
		var d decision
		if json.Unmarshal([]byte(line), &d) == nil {
			out = append(out, d)
		}
	}
	return out
}

// processRunning reports whether a process with exactly this command line (as sh -c runs
// it, or as its own argv) runs on this host (the nodes' host).
func processRunning(cmdline string) bool {
	want := strings.Fields(cmdline)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if strings.Join(args, " ") == strings.Join(want, " ") {
			return true
		}
	}
	return false
}

// waitRunning waits until a session's program runs on the nodes' host (the shell prints
// "started" before it starts the program).
func waitRunning(t *testing.T, cmdline string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if !processRunning(cmdline) {
			return fmt.Errorf("no %q running on the node", cmdline)
		}
		return nil
	})
}

func hostOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[:i]
	}
	return addr
}
