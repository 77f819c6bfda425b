package policy

import (
	"context"
	"strings"
	"testing"
)

// TestPlannedErrorTopdownNeverMeetsIsTopdownsToDecide: the plan checks every element of
// an every, where topdown stops at the first that fails. An operator deny whose every
// fails on its first element and would raise a type error on its second is not a policy
// error for topdown or `opa eval -b`; the engine must not make it one (nor an allow where
// topdown denies): topdown decides whenever the plan errs.
func TestPlannedErrorTopdownNeverMeetsIsTopdownsToDecide(t *testing.T) {
	f := newFixture(t)
	e := operatorEngine(t, f, `package tether.custom

deny contains "only zz logins" if {
	every v in [input.login, 5] { regex.match("^zz", v) }
}

deny contains "no stage" if input.node.labels.env == "stage"
`)
	for stage, ev := range e.Evaluators() {
		if ev != EvaluatorPlanned {
			t.Fatalf("stage %s: %s, want it planned", stage, ev)
		}
	}
	d, pd := decideBoth(t, e, sessionAt(f, fixtureNow))
	if d.Allow || pd.Allow || !equalStrings(d.Reasons, pd.Reasons) || containsSubstring(d.Reasons, "policy error") {
		t.Fatalf("Decide %+v\nDecidePlain %+v\nwant the same denial, for the stage label, no policy error", d, pd)
	}
	if !containsSubstring(d.Reasons, "no stage") {
		t.Fatalf("reasons %q do not name the operator's deny", d.Reasons)
	}
	if st := e.Stats(); st.Retried != 1 {
		t.Fatalf("Retried = %d, want 1 (the plan met the type error, topdown decided)", st.Retried)
	}
}

// TestEvaluatorsSayWhyAStageStaysOnTopdown: a stage whose rules read a document named
// stage stays on topdown (the engine answers data.tether.stage.* only there), and
// Evaluators says so; the other stages are still planned.
func TestEvaluatorsSayWhyAStageStaysOnTopdown(t *testing.T) {
	f := newFixture(t)
	e := operatorEngine(t, f, `package tether.custom

deny contains "staged" if data.tether.stage.now_ns < 0
`)
	ev := e.Evaluators()
	if !strings.HasPrefix(ev["fast"], EvaluatorTopdown+": ") || !strings.Contains(ev["fast"], "stage") {
		t.Fatalf("fast: %q, want topdown and why", ev["fast"])
	}
	if ev["identity"] != EvaluatorPlanned {
		t.Fatalf("identity: %q, want planned (grants do not reach the denies)", ev["identity"])
	}
	d, err := e.Decide(context.Background(), sessionAt(f, fixtureNow))
	if err != nil || !d.Allow {
		t.Fatalf("Decide = %+v, %v; want the fixture's allow", d, err)
	}
}

func TestUnknownEvaluatorIsRefused(t *testing.T) {
	if _, err := New(Options{Evaluator: "wasm"}); err == nil || !strings.Contains(err.Error(), "wasm") {
		t.Fatalf("New = %v, want an error naming the evaluator", err)
	}
}

// TestReferenceHeadsStayOnTopdown: the planner puts rules with reference heads into one
// function with their siblings, where a single-value rule can hand a multi-value one a set
// that it then adds to in place, and where topdown's conflicts go unseen (an ireval review
// found both). The bundle's own checks refuse sets named by a variable; a bundle with any
// reference head stays on topdown.
func TestReferenceHeadsStayOnTopdown(t *testing.T) {
	f := newFixture(t)
	e := operatorEngine(t, f, `package tether.custom

admins contains "alice"

groups.admins := admins

groups.viewers contains "bob"

deny contains "not an admin" if {
	groups.viewers
	not input.login in groups.admins
}
`)
	for stage, ev := range e.Evaluators() {
		if !strings.HasPrefix(ev, EvaluatorTopdown+": ") || !strings.Contains(ev, "reference head") {
			t.Fatalf("stage %s: %q, want topdown because of the reference head", stage, ev)
		}
	}
	d, pd := decideBoth(t, e, sessionAt(f, fixtureNow))
	if d.Allow != pd.Allow || !equalStrings(d.Reasons, pd.Reasons) {
		t.Fatalf("Decide %+v\nDecidePlain %+v", d, pd)
	}
}

// decideBoth decides in on the engine's path and on the public query.
func decideBoth(t *testing.T, e *Engine, in *Input) (staged, plain Decision) {
	t.Helper()
	ctx := context.Background()
	staged, err := e.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err = e.DecidePlain(ctx, in); err != nil {
		t.Fatal(err)
	}
	return staged, plain
}
