package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/resolver"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/tetherproject/tether/bundles"
)

// The queries the engine prepares for every bundle revision.
const (
	// DecisionQuery is the public contract: what `opa eval` and operators run.
	DecisionQuery = "data.tether.authz.decision"
	identityQuery = "data.tether.identity.of(input)"
	accessQuery   = "data.tether.access.request_decision(data.tether.stage.identity)"
	deniesQuery   = "data.tether.custom.deny"
)

// Decision is the result of data.tether.authz.decision.
type Decision struct {
	Allow   bool
	Roles   []string
	Reasons []string
	// ExpiresAt is the next instant at which a time-based rule could change this decision;
	// zero when none can. For cert.issue it is the latest valid_before the roles permit.
	ExpiresAt time.Time
	// Revision is the bundle revision the decision was made with.
	Revision string
	// Cached is true when the decision came from the decision cache.
	Cached bool
}

// Logger receives every decision the engine makes, cache hits included. It must not block.
type Logger interface {
	LogDecision(in *Input, d *Decision)
}

// Options configure an Engine. Zero values work.
type Options struct {
	// CacheSize bounds the decision cache (entries); 0 means 100,000; negative disables it.
	CacheSize int
	// IdentityCacheSize bounds the per-certificate identity cache; 0 means 10,000.
	IdentityCacheSize int
	// Logger, if set, receives every decision.
	Logger Logger
	// ResidualCacheSize bounds the per-certificate residuals of the allowed-session fast
	// path; 0 means 10,000; negative disables residuals.
	ResidualCacheSize int
	// SyncResiduals builds a certificate's residual before its first decision instead of
	// in the background (for tests that must exercise the residual deterministically).
	SyncResiduals bool
}

// Engine evaluates Tether's policy in-process. It is safe for concurrent use; Load swaps
// in a new bundle revision atomically while decisions continue.
type Engine struct {
	cur       atomic.Pointer[prepared]
	decisions *lru.Cache[key, *cachedDecision]
	ids       *lru.Cache[key, *identity]
	residuals *residuals
	logger    Logger
	stats     stats
}

type stats struct{ cacheHits, residualHits, generic atomic.Int64 }

// Stats counts how the engine's decisions were made.
type Stats struct {
	CacheHits    int64 // served from the decision cache
	ResidualHits int64 // allowed sessions answered by a certificate's residual
	Generic      int64 // evaluated by the generic access stage
}

// Stats returns the counts of how decisions were made since New.
func (e *Engine) Stats() Stats {
	return Stats{CacheHits: e.stats.cacheHits.Load(), ResidualHits: e.stats.residualHits.Load(), Generic: e.stats.generic.Load()}
}

// prepared holds one bundle revision's compiled queries.
type prepared struct {
	revision string
	// timeDependent is set when an operator deny may read input.now (bundles.
	// CheckOperatorRules): the cache key leaves now out, so for such a bundle only allows
	// are cached, and a cached allow is served only after the operator denies, evaluated
	// again on the request, came back empty.
	timeDependent bool
	plain         rego.PreparedEvalQuery
	identity      rego.PreparedEvalQuery
	access        rego.PreparedEvalQuery
	denies        rego.PreparedEvalQuery // data.tether.custom.deny; only when timeDependent
	compiler      *ast.Compiler
	store         storage.Store
}

type identity struct {
	cert  ast.Value // the certificate as an input value
	value ast.Value // data.tether.identity.of(...)
}

type cachedDecision struct {
	d           Decision
	evaluatedAt time.Time
}

// ErrNoBundle is returned by decisions asked before any bundle was loaded.
var ErrNoBundle = errors.New("policy: no bundle loaded")

// New returns an engine with no bundle; Load one before asking for decisions.
func New(opts Options) (*Engine, error) {
	e := &Engine{logger: opts.Logger}
	size := opts.CacheSize
	if size == 0 {
		size = 100_000
	}
	if size > 0 {
		c, err := lru.New[key, *cachedDecision](size)
		if err != nil {
			return nil, fmt.Errorf("creating decision cache: %w", err)
		}
		e.decisions = c
	}
	idSize := opts.IdentityCacheSize
	if idSize <= 0 {
		idSize = 10_000
	}
	ids, err := lru.New[key, *identity](idSize)
	if err != nil {
		return nil, fmt.Errorf("creating identity cache: %w", err)
	}
	e.ids = ids
	if opts.ResidualCacheSize >= 0 {
		size := opts.ResidualCacheSize
		if size == 0 {
			size = 10_000
		}
		if e.residuals, err = newResiduals(size, opts.SyncResiduals); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Close stops the engine's background work (residual builds). Decisions after Close still
// work, without new residuals.
func (e *Engine) Close() {
	if e.residuals != nil {
		e.residuals.close()
	}
}

// Revision returns the revision of the loaded bundle, or "" before the first Load.
func (e *Engine) Revision() string {
	if p := e.cur.Load(); p != nil {
		return p.revision
	}
	return ""
}

// Load compiles a bundle and makes it the one decisions use. Decisions already running
// finish on the previous revision; every decision that starts after Load returns uses
// the new one. On error the previous bundle stays in place.
func (e *Engine) Load(ctx context.Context, b *bundles.Bundle) error {
	p, err := prepare(ctx, b)
	if err != nil {
		return err
	}
	e.cur.Store(p)
	return nil
}

func prepare(ctx context.Context, b *bundles.Bundle) (*prepared, error) {
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		parsed, err := ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: %w", b.Revision, err)
		}
		modules[m.Path] = parsed
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("loading bundle %s: %w", b.Revision, compiler.Errors)
	}
	// Bundles from a bundle server get the checks ForCluster applies at build: nothing a
	// decision depends on may escape the caches' keys.
	report, err := bundles.CheckOperatorRules(compiler)
	if err != nil {
		return nil, fmt.Errorf("loading bundle %s: %w", b.Revision, err)
	}
	store := inmem.NewFromObjectWithOpts(b.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	p := &prepared{revision: b.Revision, timeDependent: report.TimeDependent, compiler: compiler, store: store}
	type query struct {
		query string
		dst   *rego.PreparedEvalQuery
	}
	queries := []query{{DecisionQuery, &p.plain}, {identityQuery, &p.identity}, {accessQuery, &p.access}}
	if p.timeDependent {
		queries = append(queries, query{deniesQuery, &p.denies})
	}
	for _, q := range queries {
		// A builtin error (to_number("stage"), a type error) must not make a deny
		// undefined and the request allowed: strict errors end the evaluation, and the
		// engine turns the error into a denial (policyErrorDecision).
		opts := []func(*rego.Rego){rego.Query(q.query), rego.Compiler(compiler), rego.Store(store), rego.StrictBuiltinErrors(true)}
		if q.dst == &p.access {
			opts = append(opts, rego.Resolver(stageIdentityRef, stageIdentity{}))
		}
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: preparing %s: %w", b.Revision, q.query, err)
		}
		*q.dst = pq
	}
	return p, nil
}

// Decide returns the decision for in, from the decision cache when a fresh evaluation
// would give the same answer, and otherwise from the staged evaluation.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	p := e.cur.Load()
	if p == nil {
		return Decision{}, ErrNoBundle
	}
	// A cached decision was made for an input that encodes identically and passed
	// validation then, so only misses are validated.
	// cert.issue caps the certificate at now + max_session_ttl, so its answer moves with
	// now, which the cache key leaves out.
	useCache := e.decisions != nil && in.Action != ActionCertIssue
	var k key
	if useCache {
		k = decisionKey(p.revision, in)
		if c, ok := e.decisions.Get(k); ok && c.validAt(in.Now) {
			serve := true
			if p.timeDependent {
				// Only allows are cached for this bundle; one holds only while the
				// operator denies, which may read now, still deny nothing.
				if err := in.Validate(); err != nil {
					return Decision{}, err
				}
				clear, err := operatorDeniesClear(ctx, p, in)
				if err != nil {
					return e.failed(in, p, err)
				}
				serve = clear
			}
			if serve {
				d := c.d
				d.Cached = true
				e.stats.cacheHits.Add(1)
				e.log(in, d)
				return d, nil
			}
		}
	}
	if err := in.Validate(); err != nil {
		return Decision{}, err
	}
	d, err := e.staged(ctx, p, in)
	if err != nil {
		return e.failed(in, p, err)
	}
	if useCache && (d.Allow || !p.timeDependent) {
		e.decisions.Add(k, &cachedDecision{d: d, evaluatedAt: in.Now})
	}
	e.log(in, d)
	return d, nil
}

// operatorDeniesClear evaluates data.tether.custom.deny on the request, as the library
// does, and reports whether it denies nothing.
func operatorDeniesClear(ctx context.Context, p *prepared, in *Input) (bool, error) {
	v, err := evalValue(ctx, p.denies, in.Value())
	if err != nil {
		return false, fmt.Errorf("evaluating %s: %w", deniesQuery, err)
	}
	set, ok := v.(ast.Set)
	if !ok {
		return false, fmt.Errorf("%s is %s, want a set", deniesQuery, ast.ValueName(v))
	}
	return set.Len() == 0, nil
}

// failed turns an evaluation error into a denial when the policy itself failed (a builtin
// error, a type error, conflicting values): the decision is logged and never cached.
// Anything else (a cancelled context, a broken bundle) stays an error.
func (e *Engine) failed(in *Input, p *prepared, err error) (Decision, error) {
	d, ok := policyErrorDecision(p.revision, err)
	if !ok {
		return Decision{}, err
	}
	slog.Warn("policy evaluation failed; request denied", "revision", p.revision, "action", in.Action, "error", err)
	e.log(in, d)
	return d, nil
}

// policyErrorDecision is the denial for an error raised while evaluating Rego, with a
// reason naming the module and line; ok is false for other errors.
func policyErrorDecision(revision string, err error) (Decision, bool) {
	var te *topdown.Error
	if !errors.As(err, &te) || te.Code == topdown.CancelErr {
		return Decision{}, false
	}
	where := "policy"
	if te.Location != nil {
		where = fmt.Sprintf("%s:%d", te.Location.File, te.Location.Row)
	}
	return Decision{
		Allow:    false,
		Reasons:  []string{fmt.Sprintf("policy error at %s: %s (%s); denied", where, te.Message, te.Code)},
		Revision: revision,
	}, true
}

// validAt reports whether a cached decision is what a fresh evaluation at now gives: the
// decision holds from when it was made until its expires_at.
func (c *cachedDecision) validAt(now time.Time) bool {
	if now.Before(c.evaluatedAt) {
		return false
	}
	return c.d.ExpiresAt.IsZero() || now.Before(c.d.ExpiresAt)
}

// log hands a decision to the logger. The copy is made only when there is one, so an
// engine without a logger allocates nothing per cached decision.
func (e *Engine) log(in *Input, d Decision) {
	if e.logger != nil {
		logged := d
		e.logger.LogDecision(in, &logged)
	}
}

// staged evaluates identity (cached per certificate), then the certificate's residual if it
// has one, then the generic access stage.
func (e *Engine) staged(ctx context.Context, p *prepared, in *Input) (Decision, error) {
	k, id, err := e.identityEntry(ctx, p, in)
	if err != nil {
		return Decision{}, err
	}
	input := in.valueWithCert(id.cert)
	// The residual only ever allows a login the identity grants somewhere; for any other
	// login it is undefined, so it is not asked.
	if e.residuals != nil && in.Action == ActionSSHSession && grantsLogin(id.value, in.Login) {
		if res := e.residuals.get(ctx, p, k, id); res != nil && res.ok {
			// An error in the residual (partial evaluation drops the locations) is left
			// to the generic stage, which raises it again with its module and line.
			v, ok, err := res.eval(ctx, input)
			if err == nil && ok {
				e.stats.residualHits.Add(1)
				return decisionFrom(v, p.revision)
			}
		}
	}
	e.stats.generic.Add(1)
	v, err := evalValue(context.WithValue(ctx, stageIdentityKey{}, id.value), p.access, input)
	if err != nil {
		return Decision{}, fmt.Errorf("evaluating access: %w", err)
	}
	return decisionFrom(v, p.revision)
}

func (e *Engine) identity(ctx context.Context, p *prepared, in *Input) (*identity, error) {
	_, id, err := e.identityEntry(ctx, p, in)
	return id, err
}

func (e *Engine) identityEntry(ctx context.Context, p *prepared, in *Input) (key, *identity, error) {
	k := identityKey(p.revision, in.Cluster, &in.Cert)
	if id, ok := e.ids.Get(k); ok {
		return k, id, nil
	}
	cert := in.Cert.Value()
	v, err := evalValue(ctx, p.identity, identityInput(in.Cluster, cert))
	if err != nil {
		return k, nil, fmt.Errorf("evaluating identity: %w", err)
	}
	id := &identity{cert: cert, value: v}
	e.ids.Add(k, id)
	return k, id, nil
}

// grantsLogin reports whether the identity's login_grants has the login.
func grantsLogin(id ast.Value, login string) bool {
	obj, ok := id.(ast.Object)
	if !ok {
		return false
	}
	lg := obj.Get(ast.InternedTerm("login_grants"))
	if lg == nil {
		return false
	}
	grants, ok := lg.Value.(ast.Object)
	return ok && grants.Get(ast.StringTerm(login)) != nil
}

// DecidePlain evaluates the public query data.tether.authz.decision in one go, without
// stages or caches: the reference the staged path is tested against.
func (e *Engine) DecidePlain(ctx context.Context, in *Input) (Decision, error) {
	p := e.cur.Load()
	if p == nil {
		return Decision{}, ErrNoBundle
	}
	if err := in.Validate(); err != nil {
		return Decision{}, err
	}
	v, err := evalValue(ctx, p.plain, in.Value())
	if err != nil {
		if d, ok := policyErrorDecision(p.revision, err); ok {
			return d, nil
		}
		return Decision{}, fmt.Errorf("evaluating %s: %w", DecisionQuery, err)
	}
	return decisionFrom(v, p.revision)
}

// Identity returns the identity stage's view of a certificate, as JSON, for explanations.
func (e *Engine) Identity(ctx context.Context, in *Input) (any, error) {
	p := e.cur.Load()
	if p == nil {
		return nil, ErrNoBundle
	}
	id, err := e.identity(ctx, p, in)
	if err != nil {
		return nil, err
	}
	return ast.JSON(id.value)
}

// Query evaluates any query against the loaded bundle, for tools such as
// `tetherctl policy explain`. It is not a decision: no cache, no log.
func (e *Engine) Query(ctx context.Context, query string, input ast.Value) (any, error) {
	p := e.cur.Load()
	if p == nil {
		return nil, ErrNoBundle
	}
	pq, err := rego.New(rego.Query(query), rego.Compiler(p.compiler), rego.Store(p.store), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", query, err)
	}
	v, err := evalValue(ctx, pq, input)
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", query, err)
	}
	return ast.JSON(v)
}

// The access stage reads the cached identity at data.tether.stage.identity, resolved
// from the evaluation's context, so that its input is the request document itself.
var stageIdentityRef = ast.MustParseRef("data.tether.stage.identity")

type stageIdentityKey struct{}

type stageIdentity struct{}

func (stageIdentity) Eval(ctx context.Context, _ resolver.Input) (resolver.Result, error) {
	v, ok := ctx.Value(stageIdentityKey{}).(ast.Value)
	if !ok {
		return resolver.Result{}, fmt.Errorf("no identity in this evaluation's context")
	}
	return resolver.Result{Value: v}, nil
}

func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// evalValue runs a prepared query on an input and returns its single value.
func evalValue(ctx context.Context, pq rego.PreparedEvalQuery, input ast.Value) (ast.Value, error) {
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalGenerateJSON(asTerm))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("policy returned no decision (is the Tether library in the bundle?)")
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("policy returned %T, want a term", rs[0].Expressions[0].Value)
	}
	return t.Value, nil
}

// decisionFrom reads the decision object without a JSON round trip.
func decisionFrom(v ast.Value, revision string) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", ast.ValueName(v))
	}
	d := Decision{Revision: revision}
	at := obj.Get(ast.InternedTerm("allow"))
	if at == nil {
		return Decision{}, fmt.Errorf("decision has no allow (is this bundle built by tetherctl policy build?)")
	}
	allow, ok := at.Value.(ast.Boolean)
	if !ok {
		return Decision{}, fmt.Errorf("decision.allow is %s, want a boolean", ast.ValueName(at.Value))
	}
	d.Allow = bool(allow)
	var err error
	if d.Roles, err = stringsOf(obj, "roles"); err != nil {
		return Decision{}, err
	}
	if d.Reasons, err = stringsOf(obj, "reasons"); err != nil {
		return Decision{}, err
	}
	if t := obj.Get(ast.InternedTerm("expires_at")); t != nil {
		switch s := t.Value.(type) {
		case ast.String:
			if d.ExpiresAt, err = time.Parse(time.RFC3339Nano, string(s)); err != nil {
				return Decision{}, fmt.Errorf("decision.expires_at: %w", err)
			}
		case ast.Null:
		default:
			return Decision{}, fmt.Errorf("decision.expires_at is %s, want a string or null", ast.ValueName(t.Value))
		}
	}
	return d, nil
}

func stringsOf(obj ast.Object, field string) ([]string, error) {
	t := obj.Get(ast.InternedTerm(field))
	if t == nil {
		return nil, nil
	}
	arr, ok := t.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("decision.%s is not an array", field)
	}
	out := make([]string, 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("decision.%s[%d] is not a string", field, i)
		}
		out = append(out, string(s))
	}
	return out, nil
}
