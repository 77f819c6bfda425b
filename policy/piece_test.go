package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"
)

func TestPieces(t *testing.T) {
	if os.Getenv("PIECES") == "" {
		t.Skip()
	}
	ctx := context.Background()
	f := newFixture(t)
	e := f.engine(t, Options{})
	r := rand.New(rand.NewPCG(7, 7))
	var in *Input
	for {
		in = f.randomInput(r)
		d, _ := e.DecidePlain(ctx, in)
		if in.Action == ActionSSHSession && d.Allow {
			break
		}
	}
	p := e.cur.Load()
	id, _ := e.identity(ctx, p, in)
	for _, q := range []string{
		"true",
		"data.tether.access.request_decision(data.tether.stage.identity)",
		"data.tether.access.session_decision(data.tether.stage.identity)",
	} {
		pq, err := rego.New(rego.Query(q), rego.Compiler(p.compiler), rego.Store(p.store), rego.Resolver(stageIdentityRef, stageIdentity{})).PrepareForEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l := measure(3000, func(int) {
			if _, err := pq.Eval(context.WithValue(ctx, stageIdentityKey{}, id.value), rego.EvalParsedInput(in.valueWithCert(id.cert)), rego.EvalGenerateJSON(asTerm)); err != nil {
				t.Fatal(err)
			}
		})
		fmt.Printf("%8.2f µs  %s\n", us(l.pct(0.5)), q)
	}
}

func TestProfileSession(t *testing.T) {
	if os.Getenv("PIECES") == "" {
		t.Skip()
	}
	ctx := context.Background()
	f := newFixture(t)
	e := f.engine(t, Options{})
	r := rand.New(rand.NewPCG(7, 7))
	var in *Input
	for {
		in = f.randomInput(r)
		d, _ := e.DecidePlain(ctx, in)
		if in.Action == ActionSSHSession && d.Allow {
			break
		}
	}
	p := e.cur.Load()
	id, _ := e.identity(ctx, p, in)
	prof := profiler.New()
	pq, err := rego.New(rego.Query("data.tether.access.session_decision(data.tether.stage.identity)"), rego.Compiler(p.compiler), rego.Store(p.store), rego.Resolver(stageIdentityRef, stageIdentity{}), rego.QueryTracer(prof)).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if _, err := pq.Eval(context.WithValue(ctx, stageIdentityKey{}, id.value), rego.EvalParsedInput(in.valueWithCert(id.cert)), rego.EvalGenerateJSON(asTerm), rego.EvalQueryTracer(prof)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range prof.ReportTopNResults(25, []string{"total_time_ns"}) {
		fmt.Printf("%10.1f µs/eval  evals %6d  %s\n", float64(s.ExprTimeNs)/2000/1000, s.NumEval, s.Location)
	}
}
