package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherproject/tether/internal/testproc"
)

// One port, however the two addresses are written: a tunnel_listen_addr that binds the
// same port on the same addresses as web_listen_addr shares the web listener (tetherd
// starts and advertises the tunnel at public_addr) instead of failing to bind the port
// twice; the same port on overlapping addresses that are not the same is refused at start
// with what to write.
func TestTetherdOnePortByAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tetherd")
	}
	config := func(t *testing.T, web, tunnel string) string {
		p := filepath.Join(t.TempDir(), "tether.yaml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf("cluster_name: root.example.com\ndata_dir: %s\nproxy:\n  tunnel_listen_addr: %s\n  web_listen_addr: %s\n",
			filepath.Join(t.TempDir(), "data"), tunnel, web)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("localhost_is_the_loopback_address", func(t *testing.T) {
		web := freeAddr(t)
		port := web[strings.LastIndexByte(web, ':')+1:]
		startTetherd(t, config(t, web, "localhost:"+port), true)
		if got := testproc.PingTunnelAddr(t, web); got != web {
			t.Fatalf("ping advertises the tunnel at %q, want the web address %s", got, web)
		}
	})
	t.Run("all_addresses_and_one_of_them_are_refused", func(t *testing.T) {
		web := freeAddr(t)
		port := web[strings.LastIndexByte(web, ':')+1:]
		code, out := runToExit(t, config(t, web, "0.0.0.0:"+port))
		if code != 1 || !strings.Contains(out, "are the same port on overlapping addresses") || strings.Contains(out, "panic") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}
