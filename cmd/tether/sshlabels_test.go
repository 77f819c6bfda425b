package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/tetherproject/tether/gateway/web"
)

func TestLabelSelector(t *testing.T) {
	for _, tc := range []struct {
		in      string
		isLabel bool
		want    map[string]string
		bad     bool
	}{
		{in: "node1"},
		{in: "node1.leaf"},
		{in: "env=stage", isLabel: true, want: map[string]string{"env": "stage"}},
		{in: "env=stage,tier=db", isLabel: true, want: map[string]string{"env": "stage", "tier": "db"}},
		{in: "env=", isLabel: true, want: map[string]string{"env": ""}},
		{in: "=stage", isLabel: true, bad: true},
		{in: "env=stage,", isLabel: true, bad: true},
		{in: "env=stage,tier", isLabel: true, bad: true},
	} {
		want, ok, err := labelSelector(tc.in)
		if ok != tc.isLabel || (err != nil) != tc.bad {
			t.Errorf("%q: label %v, error %v; want label %v, error %v", tc.in, ok, err, tc.isLabel, tc.bad)
			continue
		}
		if tc.want != nil && len(want) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, want, tc.want)
		}
		for k, v := range tc.want {
			if want[k] != v {
				t.Errorf("%q: %v, want %v", tc.in, want, tc.want)
			}
		}
	}
	nodes := []web.UserNode{
		{Name: "b", Labels: map[string]string{"env": "stage", "tier": "db"}},
		{Name: "a", Labels: map[string]string{"env": "stage"}},
		{Name: "c", Labels: map[string]string{"env": "prod", "tier": "db"}},
	}
	var names []string
	for _, n := range nodesWithLabels(nodes, map[string]string{"env": "stage"}) {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "a,b" {
		t.Fatalf("env=stage selects %v, want a,b", names)
	}
}

// TestLinePrefixerKeepsLinesWhole: lines of several nodes never interleave within a line,
// a last line without a newline gets one, and a line longer than the bound is cut, not
// held in memory.
func TestLinePrefixerKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	a := &linePrefixer{w: &buf, mu: &mu, prefix: "[a] "}
	b := &linePrefixer{w: &buf, mu: &mu, prefix: "[b] "}
	a.Write([]byte("one\ntw"))
	b.Write([]byte("x\n"))
	a.Write([]byte("o\nthree"))
	a.flush()
	b.flush()
	if got, want := buf.String(), "[a] one\n[b] x\n[a] two\n[a] three\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	buf.Reset()
	a.Write(bytes.Repeat([]byte("z"), maxPrefixedLine+10))
	if len(a.buf) >= maxPrefixedLine {
		t.Fatalf("holds %d bytes waiting for a newline", len(a.buf))
	}
}

func FuzzLabelSelector(f *testing.F) {
	for _, s := range []string{"node1", "env=stage", "env=stage,tier=db", "=", ",", "a=b,,c=d", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, ok, err := labelSelector(s)
		if ok != strings.Contains(s, "=") {
			t.Fatalf("%q: label form %v", s, ok)
		}
		if err == nil {
			for k := range want {
				if k == "" {
					t.Fatalf("%q: an empty key was taken", s)
				}
			}
		}
	})
}
