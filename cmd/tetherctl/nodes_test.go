package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/resource"
)

// TestNodesAddPrintsAConfigurationThatJoins: the node section `tetherctl nodes add`
// prints, with the node's own addresses filled in, joins the cluster as printed (token
// and pinned CA file included).
func TestNodesAddPrintsAConfigurationThatJoins(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	out := root.mustCtl(t, "nodes", "add", "--name=web1", "--labels=team=web", "--ttl=5m")
	if !strings.Contains(out, "This token will expire in 5 minutes.") {
		t.Fatalf("nodes add:\n%s", out)
	}
	i := strings.Index(out, "data_dir:")
	if i < 0 {
		t.Fatalf("no configuration in:\n%s", out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfgText := strings.NewReplacer(
		"/var/lib/tether", filepath.Join(dir, "data"),
		"0.0.0.0:3022", free,
		"NODE-ADDRESS:3022", free,
	).Replace(out[i:])
	p := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(p, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, cfgText)
	}
	a, err := gateway.NewNodeAgent(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		t.Fatalf("the printed configuration does not join: %v\n%s", err, cfgText)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	rs, err := root.gw.Auth().Get(context.Background(), resource.KindNode, "web1", false)
	if err != nil {
		t.Fatal(err)
	}
	n := rs[0].(*resource.Node)
	if n.Spec.Addr != free || n.Metadata.Labels["team"] != "web" {
		t.Fatalf("node resource %+v", n)
	}
	if got := root.mustCtl(t, "get", "node/web1", "--format", "text"); !strings.Contains(got, "web1") || !strings.Contains(got, "online") {
		t.Fatalf("get node/web1:\n%s", got)
	}
}
