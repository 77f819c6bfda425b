package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
