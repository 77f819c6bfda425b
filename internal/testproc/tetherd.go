package testproc

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherproject/tether/internal/testenv"
)

// Cluster is a running `tetherd start` of one cluster (auth + proxy + tunnel) with its own
// configuration, data directory and ports on 127.0.0.1, and its decision log in a file.
type Cluster struct {
	Name        string
	Dir         string // holds tether.yaml, data/ and decisions.jsonl
	DataDir     string
	Addr        string // the web (HTTPS + user SSH) address
	TunnelAddr  string // the reverse tunnel's address (QUIC on UDP, SSH on TCP)
	DecisionLog string
	bins        Bins
	proc        *Background
}

// ClusterConfig says how to start a cluster.
type ClusterConfig struct {
	Name  string
	Extra string   // YAML appended to tether.yaml at the top level
	Args  []string // extra `tetherd start` flags
}

// StartCluster starts tetherd for cfg.Name and waits until its web API answers; owner's end
// stops it.
func StartCluster(t testing.TB, owner Owner, bins Bins, cfg ClusterConfig) *Cluster {
	t.Helper()
	dir := owner.TempDir()
	c := &Cluster{Name: cfg.Name, Dir: dir, DataDir: filepath.Join(dir, "data"), bins: bins,
		Addr: FreeAddr(t), TunnelAddr: FreeAddr(t), DecisionLog: filepath.Join(dir, "decisions.jsonl")}
	conf := filepath.Join(dir, "tether.yaml")
	body := fmt.Sprintf("cluster_name: %s\ndata_dir: %s\nproxy:\n  web_listen_addr: %s\n  tunnel_listen_addr: %s\npolicy:\n  decision_log:\n    file: %s\n%s",
		cfg.Name, c.DataDir, c.Addr, c.TunnelAddr, c.DecisionLog, cfg.Extra)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c.proc = Start(t, owner, "tetherd "+cfg.Name, exec.Command(bins.Tetherd, append([]string{"start", "-c", conf}, cfg.Args...)...))
	// Runs before Start's own cleanup: a cluster must stop cleanly on SIGTERM.
	owner.Cleanup(func() {
		if err := c.proc.Stop(syscall.SIGTERM); err != nil {
			owner.Errorf("tetherd %s did not stop cleanly on SIGTERM: %v\n%s", c.Name, err, c.proc.Log)
		}
	})
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	testenv.Eventually(t, 60*time.Second, func() error {
		if c.proc.Exited() {
			t.Fatalf("tetherd %s exited: %v\n%s", c.Name, c.proc.Err(), c.proc.Log)
		}
		resp, err := probe.Get("https://" + c.Addr + "/webapi/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return c
}

// Log is everything the cluster's tetherd printed so far.
func (c *Cluster) Log() string { return c.proc.Log.String() }

// Stop stops the cluster's tetherd with sig.
func (c *Cluster) Stop(sig syscall.Signal) error { return c.proc.Stop(sig) }

// TLSCAFile is the cluster's TLS CA certificate, the file `tether login --ca-file` and a
// leaf's `root_ca_file` pin.
func (c *Cluster) TLSCAFile() string { return filepath.Join(c.DataDir, "ca", "tls", "key-1.crt") }

// OpenSSHCAFile writes what `tetherctl auth export --type=openssh` prints to a file in
// owner's temporary directory (sshd reads it at every login, so it must live as long as
// the server) and returns its path: an OpenSSH node's TrustedUserCAKeys, as its admin
// makes it.
func (c *Cluster) OpenSSHCAFile(t testing.TB, owner Owner) string {
	t.Helper()
	p := filepath.Join(owner.TempDir(), c.Name+"-openssh-ca.pub")
	if err := os.WriteFile(p, []byte(c.MustCtl(t, "auth", "export", "--type=openssh")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Ctl runs `tetherctl ARGS --data-dir DATA` against the cluster.
func (c *Cluster) Ctl(t testing.TB, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return Run(t, exec.CommandContext(ctx, c.bins.Tetherctl, append(args, "--data-dir", c.DataDir)...))
}

// MustCtl is Ctl failing the test unless tetherctl exits 0; it returns the output.
func (c *Cluster) MustCtl(t testing.TB, args ...string) string {
	t.Helper()
	r := c.Ctl(t, args...)
	if r.Code != 0 {
		t.Fatalf("%s: tetherctl %s: %s", c.Name, strings.Join(args, " "), r)
	}
	return r.Stdout + r.Stderr
}

// Create writes yaml to a file and runs `tetherctl create [flags] FILE`.
func (c *Cluster) Create(t testing.TB, yaml string, flags ...string) string {
	t.Helper()
	return c.MustCtl(t, append(append([]string{"create"}, flags...), WriteFile(t, "resource.yaml", yaml))...)
}

// WaitCtl polls tetherctl ARGS until its output holds every want, returning that output.
func (c *Cluster) WaitCtl(t testing.TB, within time.Duration, args []string, want ...string) string {
	t.Helper()
	var out string
	testenv.Eventually(t, within, func() error {
		r := c.Ctl(t, args...)
		out = r.Stdout
		if r.Code != 0 {
			return fmt.Errorf("tetherctl %s: %s", strings.Join(args, " "), r)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("tetherctl %s printed:\n%s\nwant %q", strings.Join(args, " "), out, w)
			}
		}
		return nil
	})
	return out
}

// NodeAgent is a running `tetherd start` with only the node role: a Tether node agent
// joined to a cluster with a node token.
type NodeAgent struct {
	Name string
	Addr string
	proc *Background
}

// StartNodeAgent makes a node token on cluster (`tetherctl nodes add`), starts a node agent
// named name with labels (k=v,...) that joins with it, pinned to the cluster's TLS CA, and
// waits until the cluster lists the node online; owner's end stops it.
func StartNodeAgent(t testing.TB, owner Owner, bins Bins, cluster *Cluster, name, labels string) *NodeAgent {
	t.Helper()
	added := cluster.MustCtl(t, "nodes", "add", "--name="+name, "--labels="+labels)
	var token string
	for _, line := range strings.Split(added, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "The invite token: "); ok {
			token = strings.Fields(rest)[0]
		}
	}
	if token == "" {
		t.Fatalf("tetherctl nodes add printed no invite token:\n%s", added)
	}
	dir := owner.TempDir()
	n := &NodeAgent{Name: name, Addr: FreeAddr(t)}
	var lab strings.Builder
	for _, kv := range strings.Split(labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&lab, "    %s: %s\n", k, v)
	}
	conf := filepath.Join(dir, "tether.yaml")
	body := fmt.Sprintf("data_dir: %s/data\nnode:\n  enabled: true\n  name: %s\n  labels:\n%s  listen_addr: %s\n  public_addr: %s\n  auth_server: %s\n  token: %s\n  ca_pin_file: %s\n",
		dir, name, lab.String(), n.Addr, n.Addr, cluster.Addr, token, cluster.TLSCAFile())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	n.proc = Start(t, owner, "node agent "+name, exec.Command(bins.Tetherd, "start", "-c", conf))
	cluster.WaitCtl(t, 60*time.Second, []string{"get", "node/" + name}, "connection: online")
	return n
}

// Log is everything the node agent printed so far.
func (n *NodeAgent) Log() string { return n.proc.Log.String() }
