package policy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tetherproject/tether/bundles"
)

// FuzzParseInputJSON fuzzes the decision input builder: arbitrary bytes never panic; an
// accepted document is valid, round-trips through the input document unchanged, and the
// engine decides it (a denial at worst), on both the staged and the plain path.
func FuzzParseInputJSON(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/seed-guide/inputs/*.json")
	for _, s := range seeds {
		raw, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"action":"node.list","cluster":"leaf.example.com","now":"2026-11-23T19:45:35Z","node":{"name":"n","labels":{"env":"dev"}}}`))
	f.Add([]byte(`{"action":"cluster.route","cluster":"leaf.example.com","now":"2026-11-23T19:45:35Z","remote_cluster":{"name":"x"}}`))
	f.Add([]byte(`{"action":"ssh.session","now":"2026-11-23T19:45:35Z","cert":{"principals":["\u0000"],"traits":{"":[]}}}`))
	fx := newFixture(f)
	e := fx.engine(f, Options{})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseInputJSON(data)
		if err != nil {
			return
		}
		doc, err := in.JSON()
		if err != nil {
			t.Fatalf("accepted input has no JSON form: %v", err)
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseInputJSON(raw)
		if err != nil {
			t.Fatalf("input document does not parse back: %v\n%s", err, raw)
		}
		doc2, _ := again.JSON()
		if !reflect.DeepEqual(doc, doc2) {
			t.Fatalf("round trip changed the input:\n%v\n%v", doc, doc2)
		}
		staged, err := e.Decide(ctx, in)
		if err == nil {
			staged, err = staged.Explained(ctx)
		}
		if err != nil {
			t.Fatalf("accepted input was not decided: %v", err)
		}
		plain, err := e.DecidePlain(ctx, in)
		if err != nil {
			t.Fatalf("plain: %v", err)
		}
		staged.Cached = false
		if !reflect.DeepEqual(staged, plain) {
			t.Fatalf("staged and plain differ for %s:\n%+v\n%+v", data, staged, plain)
		}
		if !staged.Allow && len(staged.Reasons) == 0 {
			t.Fatalf("denied without a reason: %s", data)
		}
	})
}

// FuzzBundleDecision feeds arbitrary bundle bytes (a tar stream, gzipped here) to the bundle reader and, when they read as a
// bundle the engine loads, asks it for decisions: nothing panics, and a decision that
// comes with an error is never an allow. Seeds: the fixture's bundle, one with a decision
// missing allow, one whose operator deny raises a builtin error, one without the library.
func FuzzBundleDecision(f *testing.F) {
	fx := newFixture(f)
	good := fx.bundle(f)
	variant := func(change func(m bundles.Module) bundles.Module, extra ...bundles.Module) []byte {
		var mods []bundles.Module
		for _, m := range good.Modules {
			mods = append(mods, change(m))
		}
		b, err := bundles.Build(bundles.BuildOptions{Data: good.Data, Roots: good.Roots, Modules: append(mods, extra...)})
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := bundles.WriteTarGz(&buf, b); err != nil {
			f.Fatal(err)
		}
		zr, err := gzip.NewReader(&buf)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	same := func(m bundles.Module) bundles.Module { return m }
	f.Add(variant(same))
	f.Add(variant(func(m bundles.Module) bundles.Module {
		if m.Path == "lib/authz.rego" {
			m.Raw = []byte("package tether.authz\n\ndecision := {\"roles\": [], \"reasons\": []}\n")
		}
		return m
	}))
	f.Add(variant(same, bundles.Module{Path: "custom/err.rego", Raw: []byte("package tether.custom\n\ndeny contains \"x\" if to_number(input.login) > 1\n")}))
	f.Add(variant(func(m bundles.Module) bundles.Module {
		if m.Path == "lib/access.rego" {
			m.Raw = []byte("package tether.access\n\nrequest_decision(id) := {\"allow\": 1}\n")
		}
		return m
	}))
	in := fx.rootCert("alice", []string{"access"}, []string{"visitor"})
	req := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow, Cert: in, Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		// The corpus holds the tar stream; gzip is applied here so that mutations reach
		// the archive, OPA's reader and the engine rather than die at the gzip checksum.
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		b, err := bundles.ReadTarGz(&gz)
		if err != nil {
			return
		}
		e, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.Load(ctx, b); err != nil {
			return
		}
		for _, decide := range []func(context.Context, *Input) (Decision, error){e.Decide, e.Decide, e.DecidePlain} {
			d, err := decide(ctx, req)
			if err != nil && d.Allow {
				t.Fatalf("an error came with an allow: %v", err)
			}
			if err == nil && !d.Allow && len(d.Reasons) == 0 && d.Revision == "" {
				t.Fatalf("a decision without a revision: %+v", d)
			}
		}
	})
}
