package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
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
	staleQuery    = "data.tether.identity.derived_stale"
	// The engine's fast form of ssh.session and the reasons of its allows.
	fastQuery    = "data.tether.access.session_fast(data.tether.stage.identity, data.tether.stage.now_ns)"
	reasonsQuery = "data.tether.access.allow_reasons(data.tether.stage.identity)"
	nodesQuery   = "data.tether.access.node_logins(data.tether.stage.identity, data.tether.stage.nodes, data.tether.stage.now_ns, data.tether.stage.deny_ignores_node_name)"
)

// Decision is the result of data.tether.authz.decision.
type Decision struct {
	Allow bool
	Roles []string
	// Reasons says why: for a denial, every rule the request breaks; for an allow, what
	// grants it. An allowed ssh.session the engine decided on its fast form carries no
	// reasons until Explained is called (the decision log does, on its own goroutine).
	Reasons []string
	// ExpiresAt is the next instant at which a time-based rule could change this decision;
	// zero when none can. For cert.issue it is the latest valid_before the roles permit.
	ExpiresAt time.Time
	// Revision is the bundle revision the decision was made with.
	Revision string
	// Cached is true when the decision came from the decision cache.
	Cached bool

	class uint8     // reason class for the metrics (reasonClass), cached with the decision
	why   *allowWhy // how to produce the reasons of a fast allow; nil once they are known
}

// Logger receives every decision the engine makes, cache hits included. It must not block.
type Logger interface {
	LogDecision(in *Input, d *Decision)
}

// Default cache sizes (Options).
const (
	// DefaultCacheSize is the decision cache's size in entries. A cached decision holds
	// its request's input value (about 1-2 KB with a small certificate).
	DefaultCacheSize = 100_000
	// DefaultIdentityCacheSize is the identity cache's size in certificates. `make bench`
	// prints the bytes one cached identity holds (tens of KB for the bench fixture), so the
	// default stays well inside 256 MiB.
	DefaultIdentityCacheSize = 10_000
)

// Options configure an Engine. Zero values work.
type Options struct {
	// CacheSize bounds the decision cache (entries); 0 means DefaultCacheSize; negative
	// disables it.
	CacheSize int
	// IdentityCacheSize bounds the per-certificate identity cache; 0 means
	// DefaultIdentityCacheSize.
	IdentityCacheSize int
	// Logger, if set, receives every decision.
	Logger Logger
	// Evaluator evaluates the identity stage, the fast form and the generic access stage:
	// EvaluatorPlanned (the default, "" too) evaluates OPA's plan of the bundle's Rego in
	// Go (ireval), EvaluatorTopdown OPA's topdown evaluator. A stage the planner or ireval
	// cannot take stays on topdown either way (Evaluators says which and why). The
	// public query (DecidePlain) is always evaluated by topdown.
	Evaluator string
}

// Engine evaluates Tether's policy in-process. It is safe for concurrent use; Load swaps
// in a new bundle revision atomically while decisions continue.
type Engine struct {
	cur       atomic.Pointer[prepared]
	decisions *lru.Cache[key, *cachedDecision]
	ids       *lru.Cache[key, *identity]
	hash      keyHash // picks a cache slot; entries keep their key bytes (key.go)
	labels    labelsCache
	logger    Logger
	evaluator string
	stats     stats
	metrics   engineMetrics
}

type stats struct{ cacheHits, fast, generic, retried atomic.Int64 }

// Stats counts how the engine's decisions were made.
type Stats struct {
	CacheHits int64 // served from the decision cache
	Fast      int64 // ssh.session decided by the fast form (access.session_fast)
	Generic   int64 // evaluated by the generic access stage (access.decide_full)
	// Retried counts planned evaluations that erred or were undefined and were evaluated
	// again on topdown, which decides (Options.Evaluator).
	Retried int64
}

// Stats returns the counts of how decisions were made since New.
func (e *Engine) Stats() Stats {
	return Stats{CacheHits: e.stats.cacheHits.Load(), Fast: e.stats.fast.Load(), Generic: e.stats.generic.Load(), Retried: e.stats.retried.Load()}
}

// prepared holds one bundle revision's compiled queries.
type prepared struct {
	revision string
	// gen is unique per Load in this process; the caches key on it rather than on the
	// revision (shorter to hash on every decision, and never equal across loads).
	gen uint64
	// timeDependent is set when an operator deny may read input.now (bundles.
	// CheckOperatorRules): the cache key leaves now out, so for such a bundle only allows
	// are cached, and a cached allow is served only after the operator denies, evaluated
	// again on the request, came back empty.
	timeDependent bool
	// denyIgnoresNodeName: no operator deny can read input.node.name, so a node list asks
	// the denies once per distinct (login, labels) (bundles.CheckOperatorRules).
	denyIgnoresNodeName bool
	plain               *query
	identity            *query
	access              *query
	fast                *query
	reasons             *query
	nodes               *query
	denies              *query // data.tether.custom.deny; only when timeDependent
	compiler            *ast.Compiler
	store               storage.Store
	// planned serves the identity, fast and access stages it holds a function for; nil
	// (planWhy says why) or a missing function leaves a stage on topdown.
	planned *plannedStages
	planWhy string
}

type identity struct {
	key   []byte    // identityKey's encoding this entry was made for
	cert  ast.Value // the certificate as an input value
	value ast.Value // data.tether.identity.of(...)
	// What the engine reads of value in Go on every decision, decoded once.
	roles  []string
	bounds []int64 // sorted: the instants at which a time-based rule may flip
}

type cachedDecision struct {
	key         []byte // decisionKey's encoding this entry was made for
	d           Decision
	evaluatedAt time.Time
}

// generations numbers every prepared bundle in this process (prepared.gen).
var generations atomic.Uint64

// ErrNoBundle is returned by decisions asked before any bundle was loaded.
var ErrNoBundle = errors.New("policy: no bundle loaded")

// New returns an engine with no bundle; Load one before asking for decisions.
func New(opts Options) (*Engine, error) {
	switch opts.Evaluator {
	case "", EvaluatorPlanned, EvaluatorTopdown:
	default:
		return nil, fmt.Errorf("policy: unknown evaluator %q (want %q or %q)", opts.Evaluator, EvaluatorPlanned, EvaluatorTopdown)
	}
	e := &Engine{logger: opts.Logger, hash: newKeyHash(), evaluator: opts.Evaluator}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
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
		idSize = DefaultIdentityCacheSize
	}
	ids, err := lru.New[key, *identity](idSize)
	if err != nil {
		return nil, fmt.Errorf("creating identity cache: %w", err)
	}
	e.ids = ids
	return e, nil
}

// Close releases the engine's caches. Decisions after Close still work.
func (e *Engine) Close() {
	e.ids.Purge()
	if e.decisions != nil {
		e.decisions.Purge()
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
	p, err := prepare(ctx, b, e.evaluator)
	if err != nil {
		return err
	}
	e.cur.Store(p)
	// Entries of the previous revision can never be hit again (the revision is part of
	// every key); dropping them now returns their memory at once.
	e.ids.Purge()
	if e.decisions != nil {
		e.decisions.Purge()
	}
	return nil
}

func prepare(ctx context.Context, b *bundles.Bundle, evaluator string) (*prepared, error) {
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
	if err := checkDerived(ctx, compiler, store); err != nil {
		return nil, fmt.Errorf("loading bundle %s: %w", b.Revision, err)
	}
	p := &prepared{revision: b.Revision, gen: generations.Add(1), timeDependent: report.TimeDependent, denyIgnoresNodeName: report.DenyIgnoresNodeName, compiler: compiler, store: store}
	idRes := stageRef{stageIdentityRef, stageResolver(func(s *stage) ast.Value { return s.identity })}
	nowRes := stageRef{stageNowRef, stageResolver(func(s *stage) ast.Value { return s.now })}
	type spec struct {
		text string
		dst  **query
		res  []stageRef // each query gets only the values it reads
	}
	specs := []spec{{DecisionQuery, &p.plain, nil}, {identityQuery, &p.identity, nil}, {accessQuery, &p.access, []stageRef{idRes}},
		{fastQuery, &p.fast, []stageRef{idRes, nowRes}}, {reasonsQuery, &p.reasons, []stageRef{idRes}},
		{nodesQuery, &p.nodes, []stageRef{idRes, nowRes,
			{stageNodesRef, stageResolver(func(s *stage) ast.Value { return s.nodes })},
			{stageNameFreeRef, stageResolver(func(s *stage) ast.Value { return s.nameFree })}}}}
	if p.timeDependent {
		specs = append(specs, spec{deniesQuery, &p.denies, nil})
	}
	for _, q := range specs {
		// A builtin error (to_number("stage"), a type error) must not make a deny
		// undefined and the request allowed: strict errors end the evaluation (query.eval),
		// and the engine turns the error into a denial (policyErrorDecision).
		pq, err := newQuery(compiler, store, q.text, q.res...)
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: preparing %s: %w", b.Revision, q.text, err)
		}
		*q.dst = pq
	}
	if evaluator != EvaluatorTopdown {
		if p.planned, err = planStages(ctx, compiler, store); err != nil {
			p.planWhy = err.Error()
		}
	}
	return p, nil
}

// Evaluators says, for each stage the engine can plan (identity, fast, access, nodes), which
// evaluator decides with the loaded bundle: EvaluatorPlanned; EvaluatorTopdown when the
// options ask for it; or "topdown: " and why, for a stage that could not be planned.
func (e *Engine) Evaluators() map[string]string {
	p := e.cur.Load()
	if p == nil {
		return nil
	}
	out := map[string]string{}
	for s, name := range stageNames {
		switch {
		case p.planned == nil && p.planWhy == "":
			out[name] = EvaluatorTopdown // asked for
		case p.planned == nil:
			out[name] = EvaluatorTopdown + ": " + p.planWhy
		case !p.planned.funcs[s].Valid():
			out[name] = EvaluatorTopdown + ": " + p.planned.why[s]
		default:
			out[name] = EvaluatorPlanned
		}
	}
	return out
}

// checkDerived refuses a bundle whose derived data (role_map validation and selectors'
// literal matchers, computed by bundles.Shape so that no certificate pays for them) is not
// what the library's rules give for the data beside it: the identity stage trusts it.
func checkDerived(ctx context.Context, compiler *ast.Compiler, store storage.Store) error {
	pq, err := rego.New(rego.Query(staleQuery), rego.Compiler(compiler), rego.Store(store), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", staleQuery, err)
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(ast.NewObject()), rego.EvalGenerateJSON(asTerm))
	if err != nil {
		return fmt.Errorf("checking the bundle's derived data: %w", err)
	}
	if len(rs) == 0 {
		return nil // a library from before derived data: it computes everything per certificate
	}
	v := rs[0].Expressions[0].Value.(*ast.Term).Value
	if set, ok := v.(ast.Set); !ok || set.Len() > 0 {
		return fmt.Errorf("the bundle's precomputed %v are not what the library computes from its data (was data.json edited?); rebuild the bundle with tetherctl policy build", v)
	}
	return nil
}

// Decide returns the decision for in, from the decision cache when a fresh evaluation
// would give the same answer, and otherwise from the staged evaluation.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	start := time.Now()
	d, err := e.decide(ctx, in)
	if err != nil {
		e.metrics.errors.Add(1)
		return d, err
	}
	e.metrics.observe(in.Action, d.class, time.Since(start))
	return d, nil
}

func (e *Engine) decide(ctx context.Context, in *Input) (Decision, error) {
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
	var enc *encoder
	if useCache {
		enc = decisionKey(p.gen, in)
		defer enc.release()
		k = e.hash(enc.b)
		// A hit needs the very bytes the entry was made for, not only their hash.
		if c, ok := e.decisions.Get(k); ok && string(c.key) == string(enc.b) && c.validAt(in.Now) {
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
	// The certificate's own checks are made once, when its identity is made
	// (identityByKey), not on every miss.
	if err := in.validateRequest(); err != nil {
		return Decision{}, err
	}
	if useCache {
		e.metrics.misses.Add(1)
	}
	var nodeLabels ast.Value
	var idKey []byte
	if enc != nil {
		idKey = enc.b[:enc.idEnd]
		if in.Node != nil {
			nodeLabels = e.labels.get(enc.b[enc.nodeLabels[0]:enc.nodeLabels[1]], in.Node.Labels)
		}
	}
	d, err := e.staged(ctx, p, in, idKey, nodeLabels)
	if err != nil {
		return e.failed(in, p, err)
	}
	d.class = reasonClass(&d)
	if useCache && (d.Allow || !p.timeDependent) {
		e.decisions.Add(k, &cachedDecision{key: slices.Clone(enc.b), d: d, evaluatedAt: in.Now})
	}
	e.log(in, d)
	return d, nil
}

// operatorDeniesClear evaluates data.tether.custom.deny on the request, as the library
// does, and reports whether it denies nothing.
func operatorDeniesClear(ctx context.Context, p *prepared, in *Input) (bool, error) {
	v, err := p.denies.eval(ctx, nil, in.Value(), in.Now)
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
		class:    classPolicyError,
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

// staged evaluates identity (cached per certificate), then the fast form for an
// ssh.session, or the generic access stage. idKey, when not nil, is in's identityKey
// (the start of its decisionKey); nodeLabels, when not nil, is in.Node.Labels as a value
// (labelsCache).
func (e *Engine) staged(ctx context.Context, p *prepared, in *Input, idKey []byte, nodeLabels ast.Value) (Decision, error) {
	var id *identity
	var err error
	if idKey != nil {
		id, err = e.identityByKey(ctx, p, in, idKey)
	} else {
		id, err = e.identity(ctx, p, in)
	}
	if err != nil {
		return Decision{}, err
	}
	input := in.valueWith(id.cert, nodeLabels)
	if in.Action == ActionSSHSession {
		now := in.Now.UnixNano()
		nowv := ast.Number(strconv.FormatInt(now, 10))
		v, err := e.evalStage(ctx, p, p.plannedFunc(stageFast), p.fast, &stage{identity: id.value, now: nowv}, input, in.Now, ast.NewTerm(id.value), ast.NewTerm(nowv))
		if err != nil {
			return Decision{}, fmt.Errorf("evaluating %s: %w", fastQuery, err)
		}
		d, ok, err := id.fastDecision(v, now, p, input)
		if err != nil {
			return Decision{}, err
		}
		if ok {
			e.stats.fast.Add(1)
			return d, nil
		}
		// An empty denial (a session without a node) is decide_full's to answer.
	}
	e.stats.generic.Add(1)
	v, err := e.evalStage(ctx, p, p.plannedFunc(stageAccess), p.access, &stage{identity: id.value}, input, in.Now, ast.NewTerm(id.value))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluating access: %w", err)
	}
	return decisionFrom(v, p.revision)
}

// fastDecision turns what access.session_fast returned into a decision: true is an allow
// (its reasons come later, from allow_reasons), an array of reasons a denial. ok is false
// for an empty denial, which the generic stage decides. Roles and expiry are the
// identity's, as decide_full gives them for ssh.session.
func (id *identity) fastDecision(v ast.Value, now int64, p *prepared, input ast.Value) (Decision, bool, error) {
	d := Decision{Roles: slices.Clone(id.roles), Revision: p.revision}
	if d.Roles == nil {
		d.Roles = []string{}
	}
	if i, _ := slices.BinarySearch(id.bounds, now+1); i < len(id.bounds) { // the first bound after now
		d.ExpiresAt = time.Unix(0, id.bounds[i]).UTC()
	}
	switch v := v.(type) {
	case ast.Boolean:
		if !bool(v) {
			return Decision{}, false, fmt.Errorf("%s is false, want true or reasons", fastQuery)
		}
		d.Allow = true
		d.why = &allowWhy{p: p, id: id.value, input: input}
		return d, true, nil
	case *ast.Array:
		if v.Len() == 0 {
			return Decision{}, false, nil
		}
		reasons := make([]string, v.Len())
		for i := range reasons {
			s, ok := v.Elem(i).Value.(ast.String)
			if !ok {
				return Decision{}, false, fmt.Errorf("%s[%d] is not a string", fastQuery, i)
			}
			reasons[i] = string(s)
		}
		d.Reasons = reasons
		return d, true, nil
	}
	return Decision{}, false, fmt.Errorf("%s is %s, want true or reasons", fastQuery, ast.ValueName(v))
}

// allowWhy produces the reasons of an allow made on the fast form, once, when they are
// first asked for: access.allow_reasons, the spec's reasons for an allow, on the request.
type allowWhy struct {
	p     *prepared
	id    ast.Value
	input ast.Value

	once    sync.Once
	reasons []string
	err     error
}

func (w *allowWhy) get(ctx context.Context) ([]string, error) {
	w.once.Do(func() {
		v, err := w.p.reasons.eval(ctx, &stage{identity: w.id}, w.input, time.Time{})
		if err != nil {
			w.err = fmt.Errorf("evaluating %s: %w", reasonsQuery, err)
			return
		}
		arr, ok := v.(*ast.Array)
		if !ok {
			w.err = fmt.Errorf("%s is %s, want an array", reasonsQuery, ast.ValueName(v))
			return
		}
		w.reasons = make([]string, arr.Len())
		for i := range w.reasons {
			s, ok := arr.Elem(i).Value.(ast.String)
			if !ok {
				w.err = fmt.Errorf("%s[%d] is not a string", reasonsQuery, i)
				return
			}
			w.reasons[i] = string(s)
		}
	})
	return w.reasons, w.err
}

// Explained returns d with its reasons. An allowed ssh.session decided on the engine's
// fast form carries none until asked: they are the spec's (access.allow_reasons) and are
// computed here, once per decision, off the decision's path.
func (d Decision) Explained(ctx context.Context) (Decision, error) {
	if d.why == nil {
		return d, nil
	}
	reasons, err := d.why.get(ctx)
	if err != nil {
		return Decision{}, err
	}
	d.Reasons = slices.Clone(reasons)
	d.why = nil
	return d, nil
}

func (e *Engine) identity(ctx context.Context, p *prepared, in *Input) (*identity, error) {
	enc := identityKey(p.gen, in.Cluster, &in.Cert)
	defer enc.release()
	return e.identityByKey(ctx, p, in, enc.b)
}

// identityByKey is identity with in's identity key already encoded (identityKey's bytes,
// which begin every decisionKey).
func (e *Engine) identityByKey(ctx context.Context, p *prepared, in *Input, idKey []byte) (*identity, error) {
	k := e.hash(idKey)
	if id, ok := e.ids.Get(k); ok && string(id.key) == string(idKey) {
		return id, nil
	}
	// An identity is made only for a certificate that passed its checks; a later request
	// whose identity key is the same bytes has the same certificate (the keys encode every
	// field exactly), so it needs them no more.
	if err := in.Cert.validate(); err != nil {
		return nil, err
	}
	cert := in.Cert.Value()
	input := identityInput(in.Cluster, cert)
	v, err := e.evalStage(ctx, p, p.plannedFunc(stageIdentity), p.identity, nil, input, time.Time{}, ast.NewTerm(input))
	if err != nil {
		return nil, fmt.Errorf("evaluating identity: %w", err)
	}
	id, err := newIdentity(cert, v)
	if err != nil {
		return nil, err
	}
	id.key = slices.Clone(idKey)
	e.ids.Add(k, id)
	return id, nil
}

// newIdentity decodes once what every decision reads of an identity in Go.
func newIdentity(cert, v ast.Value) (*identity, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("identity is %s, want an object", ast.ValueName(v))
	}
	id := &identity{cert: cert, value: v}
	var err error
	if id.roles, err = stringsOf(obj, "roles"); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if t := obj.Get(ast.InternedTerm("bounds")); t != nil {
		arr, ok := t.Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("identity.bounds is %s, want an array", ast.ValueName(t.Value))
		}
		for i := 0; i < arr.Len(); i++ {
			n, ok := arr.Elem(i).Value.(ast.Number)
			if !ok {
				return nil, fmt.Errorf("identity.bounds[%d] is not a number", i)
			}
			b, ok := n.Int64()
			if !ok {
				return nil, fmt.Errorf("identity.bounds[%d] is not an int64", i)
			}
			id.bounds = append(id.bounds, b)
		}
		if !slices.IsSorted(id.bounds) {
			return nil, fmt.Errorf("identity.bounds are not sorted")
		}
	}
	return id, nil
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
	v, err := p.plain.eval(ctx, nil, in.Value(), time.Time{})
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

// MaxConnections is Teleport's options.max_connections for in's certificate at this
// cluster: the smallest limit among the roles the identity stage gives it, 0 when none
// sets one. The identity is the one the engine caches per certificate; an identity
// without the value is an error, never "no limit".
func (e *Engine) MaxConnections(ctx context.Context, in *Input) (int64, error) {
	p := e.cur.Load()
	if p == nil {
		return 0, ErrNoBundle
	}
	id, err := e.identity(ctx, p, in)
	if err != nil {
		return 0, err
	}
	obj, ok := id.value.(ast.Object)
	if !ok {
		return 0, errors.New("policy: the identity is not an object")
	}
	req := obj.Get(ast.StringTerm("requirements"))
	if req == nil {
		return 0, errors.New("policy: the identity has no requirements")
	}
	ro, ok := req.Value.(ast.Object)
	if !ok {
		return 0, errors.New("policy: the identity's requirements are not an object")
	}
	t := ro.Get(ast.StringTerm("max_connections"))
	if t == nil {
		return 0, errors.New("policy: the identity has no max_connections")
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("policy: max_connections %v is not a number", t.Value)
	}
	v, ok := n.Int64()
	if !ok || v < 0 {
		return 0, fmt.Errorf("policy: max_connections %v is not a limit", n)
	}
	return v, nil
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

// The access stage reads the cached identity at data.tether.stage.identity, the clock as
// integer nanoseconds at data.tether.stage.now_ns and a node list at
// data.tether.stage.nodes, answered by the pooled query from the evaluation under way
// (pooledStage), so that its input is the request document itself.
var (
	stageIdentityRef = ast.MustParseRef("data.tether.stage.identity")
	stageNowRef      = ast.MustParseRef("data.tether.stage.now_ns")
	stageNodesRef    = ast.MustParseRef("data.tether.stage.nodes")
	stageNameFreeRef = ast.MustParseRef("data.tether.stage.deny_ignores_node_name")
)

// stage is what one evaluation reads beside its input.
type stage struct {
	identity ast.Value
	now      ast.Value // nanoseconds since 1970
	nodes    ast.Value
	nameFree ast.Value // prepared.denyIgnoresNodeName, for node lists
}

// stageResolver reads one of the stage's values (pooledStage answers it for the evaluation
// under way).
type stageResolver func(*stage) ast.Value

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
	d.class = reasonClass(&d)
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
