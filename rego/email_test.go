package regolib

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tetherproject/tether/resource"
)

// The Rego email.local (rego/templates.rego) approximates net/mail.ParseAddress, which
// Teleport's email.local uses. The contract the tests below hold it to:
//   - any value net/mail rejects, Rego rejects too (so it voids the expression);
//   - any value Rego accepts, net/mail accepts, with the same local part.
// Rego may refuse forms net/mail accepts (comments, quoted local parts, non-ASCII, ...):
// that only voids an expression Teleport would expand, never the reverse.

func prepareQuery(t testing.TB, query string) rego.PreparedEvalQuery {
	t.Helper()
	opts := []func(*rego.Rego){rego.Query(query)}
	for _, f := range Modules() {
		opts = append(opts, rego.Module(f.Path, string(f.Raw)))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

// regoEmailLocal evaluates data.tether.templates.email_local_part(input).
func regoEmailLocal(t testing.TB, pq rego.PreparedEvalQuery, s string) (string, bool) {
	t.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(ast.String(s)))
	if err != nil {
		t.Fatalf("email_local_part(%q): %v", s, err)
	}
	if len(rs) == 0 {
		return "", false
	}
	v, ok := rs[0].Expressions[0].Value.(string)
	if !ok {
		t.Fatalf("email_local_part(%q) = %v, want a string", s, rs[0].Expressions[0].Value)
	}
	return v, true
}

// checkEmailAgreement fails when Rego accepts what net/mail rejects or disagrees on the
// local part. It reports whether Rego accepted s and whether net/mail did.
func checkEmailAgreement(t testing.TB, pq rego.PreparedEvalQuery, s string) (regoOK, goOK bool) {
	t.Helper()
	goLocal, goOK := resource.EmailLocal(s)
	regoLocal, regoOK := regoEmailLocal(t, pq, s)
	if regoOK && !goOK {
		t.Fatalf("email.local(%q): Rego accepts it (local part %q), net/mail rejects it", s, regoLocal)
	}
	if regoOK && regoLocal != goLocal {
		t.Fatalf("email.local(%q): Rego gives %q, net/mail gives %q", s, regoLocal, goLocal)
	}
	return regoOK, goOK
}

// emailForms builds the accepted forms from their parts (display names, local parts,
// domains, spacing) plus near misses of each, so both sides of the grammar are exercised.
func emailForms() []string {
	locals := []string{"alice", "a.b", "a+tag", "*", "^.*$", "o'neil", "x{1}|y~z", "a-b_c", "1", "a..b", ".a", "a.", "a b", `"a"`, `"a b"`, "é", ""}
	domains := []string{"example.com", "x", "a-b.c", "[1.2.3.4]", "ex..com", ".ex.com", "ex.com.", "ex ample.com", "é.com", ""}
	names := []string{
		"", "Alice", "Alice Smith", "J. R. Bob", `"Smith, Alice"`, `"A \"q\" B"`, `""`, `"tab	in"`,
		"Al(ice)", "Alice,", "=?utf-8?q?Al?=", "=?x-unknown?q?Al?=", "Bob =?x-unknown?q?Al?=", `"=?x?q?y?="`,
		"Ålice", `"unclosed`, "a@b", "Alice:", `Al\ice`, `"bad \é"`,
	}
	spaces := []string{"", " ", "\t", "  ", "\n"}
	var out []string
	for _, l := range locals {
		for _, d := range domains {
			spec := l + "@" + d
			for _, sp := range spaces {
				out = append(out, sp+spec+sp, spec+sp, sp+spec)
			}
			out = append(out, spec+" (comment)", spec+">", "<"+spec, spec+";")
			if !slices.Contains([]string{"example.com", "[1.2.3.4]", "ex..com", "é.com", ""}, d) {
				continue // the display-name forms with every local part, over fewer domains
			}
			for _, n := range names {
				out = append(out,
					n+" <"+spec+">", n+"<"+spec+">", n+" < "+spec+">", n+" <"+spec+" >",
					" "+n+"\t<"+spec+">\t", n+" <"+spec+"> (c)", n+": "+spec+";", n+" "+spec)
			}
		}
	}
	return out
}

// TestEmailLocalAgreesWithNetMail: every generated form, and the Rego tests' own examples.
func TestEmailLocalAgreesWithNetMail(t *testing.T) {
	t.Parallel()
	pq := prepareQuery(t, "data.tether.templates.email_local_part(input)")
	forms := emailForms()
	var accepted, goOnly int
	for _, s := range forms {
		regoOK, goOK := checkEmailAgreement(t, pq, s)
		switch {
		case regoOK:
			accepted++
		case goOK:
			goOnly++
		}
	}
	t.Logf("%d forms: Rego accepts %d, net/mail alone accepts %d (refused by Rego on purpose)", len(forms), accepted, goOnly)
	// The generator must reach both sides of the grammar, or the test proves little.
	if accepted < 150 || len(forms)-accepted-goOnly < 200 {
		t.Fatalf("generator too narrow: %d accepted, %d refused by both", accepted, len(forms)-accepted-goOnly)
	}
}

// TestEmailLocalRandomAgreesWithNetMail: random strings over the characters addresses are
// made of, seeded so a failure reproduces.
func TestEmailLocalRandomAgreesWithNetMail(t *testing.T) {
	t.Parallel()
	pq := prepareQuery(t, "data.tether.templates.email_local_part(input)")
	pieces := []string{
		"a", "b", "Al", "x.y", ".", "..", "@", "@", "ex.com", "<", ">", " ", "\t", `"`, `\`, "(", ")",
		",", ":", ";", "[", "]", "*", "^", "$", "'", "{", "}", "|", "~", "=?", "?=", "é", "\n", "-", "+",
	}
	r := rand.New(rand.NewPCG(7, 2026))
	accepted := 0
	for range 8000 {
		var b strings.Builder
		for range 1 + r.IntN(10) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		if regoOK, _ := checkEmailAgreement(t, pq, b.String()); regoOK {
			accepted++
		}
	}
	t.Logf("8000 random strings: Rego accepts %d", accepted)
	if accepted < 30 {
		t.Fatalf("only %d random strings accepted: the generator does not reach the grammar", accepted)
	}
}

// FuzzEmailLocalAgreesWithNetMail is the same contract under the fuzzer.
func FuzzEmailLocalAgreesWithNetMail(f *testing.F) {
	for _, s := range []string{"alice@example.com", "Alice <alice@example.com>", `"A B" <a@b>`, "<a@b>", "a@b (c)", "=?utf-8?q?A?= <a@b>"} {
		f.Add(s)
	}
	pq := prepareQuery(f, "data.tether.templates.email_local_part(input)")
	f.Fuzz(func(t *testing.T, s string) {
		if !validJSONString(s) {
			return // the policy only ever sees JSON text
		}
		checkEmailAgreement(t, pq, s)
	})
}

// TestEmailLocalExpressionAgreesWithTemplateExpand: whole expressions over lists of values.
// Rego's email.local voids whenever Go's does, and when it gives values they are Go's.
func TestEmailLocalExpressionAgreesWithTemplateExpand(t *testing.T) {
	t.Parallel()
	pq := prepareQuery(t, "data.tether.templates.expand(input.t, input.traits)")
	tpl, err := resource.ParseTemplate("u-{{email.local(external.email)}}")
	if err != nil {
		t.Fatal(err)
	}
	shaped := map[string]any{"prefix": tpl.Prefix, "suffix": tpl.Suffix, "ns": tpl.Namespace, "trait": tpl.Trait, "fn": tpl.Func, "re": "", "repl": ""}
	forms := emailForms()
	r := rand.New(rand.NewPCG(11, 7))
	for range 3000 {
		var values []string
		for range 1 + r.IntN(3) {
			values = append(values, forms[r.IntN(len(forms))])
		}
		want := tpl.Expand(map[string][]string{"email": values})
		input := map[string]any{"t": shaped, "traits": map[string]any{"email": toAny(values)}}
		v, err := ast.InterfaceToValue(input)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(v))
		if err != nil || len(rs) != 1 {
			t.Fatalf("expand(%q): %v %v", values, rs, err)
		}
		var got []string
		for _, x := range rs[0].Expressions[0].Value.([]any) {
			got = append(got, x.(string))
		}
		sort.Strings(got)
		wantSet := slices.Compact(slices.Sorted(slices.Values(want)))
		switch {
		case len(want) == 0 && len(got) != 0:
			t.Fatalf("email.local over %q: Go voids the expression, Rego gives %q", values, got)
		case len(got) != 0 && !slices.Equal(got, wantSet):
			t.Fatalf("email.local over %q: Rego gives %q, Go gives %q", values, got, wantSet)
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
