package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetherproject/tether/policy/decisionlog"
)

// TestEveryDecisionIsLogged: misses and cache hits alike reach the decision log in OPA's
// event shape, with the revision, the input and the result, and secrets masked.
func TestEveryDecisionIsLogged(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	dl, err := decisionlog.New(decisionlog.Config{Cluster: leafName, FilePath: path, SpoolDir: t.TempDir(),
		Masks: []decisionlog.MaskRule{{Op: "remove", Path: "/input/cert/traits/email"}}})
	if err != nil {
		t.Fatal(err)
	}
	e := f.engine(t, Options{Logger: NewDecisionLog(dl)})
	ctx := context.Background()
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	for i := 0; i < 3; i++ {
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		// An allow returns at once: its reasons are made later, off the decision's path.
		if !d.Allow || d.Reasons != nil {
			t.Fatalf("decision %d: allow %v with reasons %q; want an allow without reasons", i, d.Allow, d.Reasons)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := dl.Close(cctx); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var events []map[string]any
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		events = append(events, ev)
	}
	if len(events) != 3 {
		t.Fatalf("%d events, want 3 (one per decision, cache hits included)", len(events))
	}
	ev := events[2]
	if ev["path"] != DecisionLogPath || ev["decision_id"] == "" {
		t.Fatalf("event shape: %v", ev)
	}
	if rev := ev["bundles"].(map[string]any)["tether"].(map[string]any)["revision"]; rev != e.Revision() {
		t.Fatalf("revision %v, want %s", rev, e.Revision())
	}
	if ev["result"].(map[string]any)["allow"] != true {
		t.Fatalf("result %v", ev["result"])
	}
	// The allow was made on the fast form, without reasons; the logger's goroutine made
	// them when it encoded the event, and they are the public query's.
	plain, err := e.DecidePlain(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range events {
		got, _ := json.Marshal(ev["result"].(map[string]any)["reasons"])
		want, _ := json.Marshal(plain.Reasons)
		if len(plain.Reasons) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("event %d: logged reasons %s, want the spec's %s", i, got, want)
		}
	}
	if st := e.Stats(); st.Fast == 0 {
		t.Fatalf("the allow did not take the fast form: %+v", st)
	}
	traits := ev["input"].(map[string]any)["cert"].(map[string]any)["traits"].(map[string]any)
	if _, ok := traits["email"]; ok {
		t.Fatalf("masked trait still logged: %v", traits)
	}
	if ev["metrics"].(map[string]any)["tether_decision_cached"] != true {
		t.Fatalf("third decision should be logged as cached: %v", ev["metrics"])
	}
}

// TestDecisionLogSnapshotsInput: the decision log records the input that was decided even
// when the caller reuses its input the moment Decide returns, and (under -race) shares no
// map or slice with it while the logger's goroutine encodes the event.
func TestDecisionLogSnapshotsInput(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	dl, err := decisionlog.New(decisionlog.Config{Cluster: leafName, FilePath: path, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := f.engine(t, Options{Logger: NewDecisionLog(dl)})
	ctx := context.Background()
	const n = 200
	in := &Input{Action: ActionSSHSession, Cluster: leafName, Now: fixtureNow,
		Cert: f.rootCert("alice", []string{"access"}, []string{"visitor"}), Login: "visitor",
		Node: &Node{Name: "n1", Labels: map[string]string{"env": "stage"}}}
	for i := 0; i < n; i++ {
		in.Node.Labels["env"] = "stage"
		in.Cert.Traits["team"] = []string{"team-3"}
		in.Cert.Principals[0] = "visitor"
		if _, err := e.Decide(ctx, in); err != nil {
			t.Fatal(err)
		}
		// The caller reuses its input at once, as a request handler reusing a buffer would.
		in.Node.Labels["env"] = "mutated"
		in.Cert.Traits["team"][0] = "mutated"
		in.Cert.Principals[0] = "mutated"
		in.Cert.Traits["extra"] = []string{"mutated"}
		delete(in.Cert.Traits, "extra")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dl.Close(cctx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
		if bytes.Contains(sc.Bytes(), []byte("mutated")) {
			t.Fatalf("event %d records the caller's later input: %s", lines, sc.Text())
		}
	}
	if lines != n {
		t.Fatalf("%d events, want %d", lines, n)
	}
}
