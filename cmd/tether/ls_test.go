package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/gateway/web"
)

// tether ls -f json prints what tsh ls --format=json prints: a JSON array of node
// resources ({kind, version, metadata: {name, labels}, spec: {hostname, addr}}), so
// scripts written against tsh (jq '.[].spec.hostname') read it; what only Tether says
// (the node's cluster, the logins the user may use) is under "tether", outside that
// shape. It printed Tether's own flat objects ({"name", "addr", "cluster", "logins"})
// before (gaps brief, item 3).
func TestLsJSONIsTshsNodeShape(t *testing.T) {
	nodes := []web.UserNode{
		{Name: "node-east", Addr: "127.0.0.1:3022", Cluster: "leaf-east.example.com", Labels: map[string]string{"env": "stage"}, Logins: []string{"visitor", "ops"}},
		{Name: "db-1", Hostname: "db-1.internal", Cluster: "root.example.com", Logins: []string{"ops"}},
	}
	var buf bytes.Buffer
	if err := printNodes(&buf, nodes, "json"); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, buf.String())
	}
	want := []map[string]any{
		{
			"kind": "node", "version": "v2",
			"metadata": map[string]any{"name": "node-east", "labels": map[string]any{"env": "stage"}},
			"spec":     map[string]any{"hostname": "node-east", "addr": "127.0.0.1:3022"},
			"tether":   map[string]any{"cluster": "leaf-east.example.com", "logins": []any{"visitor", "ops"}},
		},
		{
			"kind": "node", "version": "v2",
			"metadata": map[string]any{"name": "db-1", "labels": map[string]any{}},
			"spec":     map[string]any{"hostname": "db-1.internal", "addr": ""},
			"tether":   map[string]any{"cluster": "root.example.com", "logins": []any{"ops"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ls -f json:\n%s\nwant the shape of\n%v", buf.String(), want)
	}

	// No node is an empty array, not null.
	buf.Reset()
	if err := printNodes(&buf, nil, "json"); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("no nodes: %v %q", err, buf.String())
	}

	// -f text is unchanged.
	buf.Reset()
	if err := printNodes(&buf, nodes, "text"); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Node Name", "node-east 127.0.0.1:3022 env=stage visitor,ops", "db-1      db-1.internal"} {
		if !strings.Contains(strings.Join(strings.Fields(buf.String()), " "), strings.Join(strings.Fields(line), " ")) {
			t.Errorf("ls -f text lacks %q:\n%s", line, buf.String())
		}
	}
}

// tsh ls also takes --format=yaml (the same node resources) and --format=names (one name
// per line, for shell loops: for n in $(tether ls -f names); do tether ssh ops@$n ...).
func TestLsYAMLAndNames(t *testing.T) {
	nodes := []web.UserNode{
		{Name: "node-east", Addr: "127.0.0.1:3022", Cluster: "leaf-east.example.com", Labels: map[string]string{"env": "stage"}, Logins: []string{"visitor"}},
		{Name: "db-1", Hostname: "db-1.internal", Cluster: "root.example.com"},
	}
	var buf bytes.Buffer
	if err := printNodes(&buf, nodes, "yaml"); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &got); err != nil || len(got) != 2 || got[0]["kind"] != "node" ||
		got[0]["metadata"].(map[string]any)["name"] != "node-east" || got[1]["spec"].(map[string]any)["hostname"] != "db-1.internal" ||
		got[0]["tether"].(map[string]any)["cluster"] != "leaf-east.example.com" {
		t.Fatalf("ls -f yaml: %v\n%s", err, buf.String())
	}
	buf.Reset()
	if err := printNodes(&buf, nodes, "names"); err != nil || buf.String() != "node-east\ndb-1\n" {
		t.Fatalf("ls -f names: %v %q", err, buf.String())
	}
}
