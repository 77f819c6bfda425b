// Package auth is a cluster's auth service: it keeps the cluster's resources in the state
// store, its invitation tokens (hashed), both sides of the trust handshake, and the
// policy bundle built from all of them. Every change of a resource the policy reads
// (role, trusted_cluster, remote_cluster, cert_authority, lock) rebuilds the bundle with a
// new revision and loads it into the decision engine before the call that made the
// change returns; changes made by another replica sharing the store are picked up by Run.
//
// Keys in the store:
//
//	resources/<kind>/<name>                   one resource, YAML as resource.Marshal writes it
//	resources/cert_authority/<cluster>/<type> another cluster's CA (public keys only)
//	tokens/<hex sha256 of the token>          a token's type, labels, bound leaf name and expiry (never the token)
//	trust/<root>/used-token                   on a leaf: the SHA-256 of the token a trust was established with
//
// Cluster names in keys are normalised (resource.NormalizeClusterName): lower case, no
// trailing dot.
//
// The cluster's own CAs are not in the store: package ca keeps them (with their private
// keys) in the data directory, and the service adds their public halves to the bundle.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// Errors callers (the web API) branch on; returned errors wrap them with detail.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrBadRequest    = errors.New("bad request")
	// ErrTokenRejected: a wrong, expired or wrong-type token. Its text is the message the
	// handshake answers with.
	ErrTokenRejected = errors.New(trust.RejectedTokenMessage)
)

// Config configures New.
type Config struct {
	// ClusterName is this cluster's name. Required.
	ClusterName string
	// CA is this cluster's certificate authorities. Required.
	CA *ca.Cluster
	// CADir is where CA is saved (data_dir/ca); RotateCA saves each phase there. Empty
	// refuses rotations (nothing would survive a restart).
	CADir string
	// Store holds the resources. Required.
	Store state.Store
	// Engine receives every rebuilt bundle. Required.
	Engine *policy.Engine
	// OperatorModules are added to every bundle.
	OperatorModules []bundles.Module
	// MaxClockSkew goes into the bundle (config max_clock_skew); zero accepts no skew.
	MaxClockSkew time.Duration
	// Trust is the client this cluster, as a leaf, calls roots with.
	Trust trust.Client
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Auditor receives audit events; nil means a LogAuditor on Logger.
	Auditor Auditor
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterRotate, when set, is called after RotateCA moved a CA (saved, bundle rebuilt),
	// before RotateCA returns: what the process keeps outside the CA (the admin identity
	// file) is renewed there.
	AfterRotate func(ctx context.Context, typ ca.Type)
}

// Service is a cluster's auth service. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	// writeMu serialises resource writes so that checks (exists? immutable fields?) and
	// the write they guard are not interleaved with another admin's write.
	writeMu sync.Mutex
	// trustMu serialises a root's handshake writes with rm rc. It is separate from
	// writeMu, which a leaf holds while it calls its root, so that two clusters creating
	// trusts with each other at once cannot wait on each other. Order: writeMu, trustMu.
	trustMu sync.Mutex

	rebuildMu sync.Mutex
	gen       atomic.Int64                   // rebuilds so far; part of every revision
	loaded    atomic.Pointer[bundles.Bundle] // the bundle the engine decides with (tetherctl policy export)
	stale     atomic.Bool                    // the last rebuild failed; Run retries it

	tunnelStatus atomic.Pointer[func() []TunnelStatus] // the leaf's tunnels, for Status

	rotateMu sync.Mutex // one rotation step at a time (memory, disk and bundle agree)

	nodesMu sync.Mutex
	nodes   map[string]cachedNode // Nodes' parsed documents by store key

	lockPushGap gaps // per root: when its next lock set may be applied
	peerCAGap   gaps // per peer cluster: when its next changed CAs may be applied
}

const (
	resourcesPrefix = "resources/"
	tokensPrefix    = "tokens/"
	trustPrefix     = "trust/"
)

// New checks cfg, builds and loads the first bundle, and returns the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.ClusterName == "" || cfg.CA == nil || cfg.Store == nil || cfg.Engine == nil {
		return nil, errors.New("auth: ClusterName, CA, Store and Engine are required")
	}
	if cfg.CA.Name != cfg.ClusterName {
		return nil, fmt.Errorf("auth: the CAs belong to %s, not %s", cfg.CA.Name, cfg.ClusterName)
	}
	if err := resource.CheckClusterName(cfg.ClusterName); err != nil {
		return nil, fmt.Errorf("auth: cluster_name: %w", err)
	}
	if n := resource.NormalizeClusterName(cfg.ClusterName); n != cfg.ClusterName {
		// Cluster names are compared in this form; the cluster's own must already be in it
		// so that every comparison with it is a plain string comparison.
		return nil, fmt.Errorf("auth: cluster_name %q: write it as %q (lower case, no trailing dot)", cfg.ClusterName, n)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Auditor == nil {
		cfg.Auditor = LogAuditor{Logger: cfg.Logger.With("component", "audit", "cluster", cfg.ClusterName)}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "auth", "cluster", cfg.ClusterName)}
	err := s.Rebuild(ctx)
	switch {
	case errors.Is(err, state.ErrUnavailable):
		// Storage down at start: decide with this cluster's own CAs and nothing else
		// (no roles, so every request is denied) until Run reaches the store.
		s.log.Error("storage unavailable at start; denying everything until it is back", "err", err)
		err = s.load(ctx, nil)
		s.stale.Store(true)
	case errors.Is(err, bundles.ErrDuplicateCAKey):
		// Stored CAs claim one key twice (written around the checks, e.g. by two
		// replicas at once): there is no previous bundle to keep, so decide with this
		// cluster's own CAs only (everything denied) and stay up so that an admin can
		// remove the offending cluster (the error names it).
		s.log.Error("stored certificate authorities share a key; denying everything until an admin removes one of them", "err", err)
		err = s.load(ctx, nil)
		s.stale.Store(true)
	}
	if err != nil {
		return nil, err
	}
	if !s.stale.Load() {
		if err := s.dropUsedTokens(ctx); err != nil {
			s.log.Error("could not drop the invitation tokens of established trusts; retried at the next start", "err", err)
		}
	}
	return s, nil
}

// ClusterName returns this cluster's name.
func (s *Service) ClusterName() string { return s.cfg.ClusterName }

// CA returns this cluster's certificate authorities.
func (s *Service) CA() *ca.Cluster { return s.cfg.CA }

// Engine returns the decision engine the service keeps loaded.
func (s *Service) Engine() *policy.Engine { return s.cfg.Engine }

// Revision returns the revision of the bundle the engine decides with.
func (s *Service) Revision() string { return s.cfg.Engine.Revision() }

// policyKind reports whether resources of kind go into the bundle.
func policyKind(kind string) bool {
	switch kind {
	case resource.KindRole, resource.KindTrustedCluster, resource.KindRemoteCluster,
		resource.KindCertAuthority, resource.KindLock:
		return true
	}
	return false
}

// Rebuild builds the bundle from the store's resources and the cluster's own CAs and
// loads it. Every call produces a new revision: the content digest plus a generation.
// On error the engine keeps deciding with the bundle it has.
func (s *Service) Rebuild(ctx context.Context) error {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	items, err := s.cfg.Store.List(ctx, resourcesPrefix)
	if err != nil {
		s.stale.Store(true)
		return fmt.Errorf("rebuilding the policy bundle: listing resources: %w", err)
	}
	if err := s.load(ctx, items); err != nil {
		s.stale.Store(true)
		return err
	}
	s.stale.Store(false)
	return nil
}

// load builds the bundle from the given resource items and this cluster's own CAs and
// loads it.
func (s *Service) load(ctx context.Context, items []state.Item) error {
	var res []resource.Resource
	own, err := s.cfg.CA.Resources(false)
	if err != nil {
		return fmt.Errorf("rebuilding the policy bundle: %w", err)
	}
	for _, c := range own {
		res = append(res, c)
	}
	for _, it := range items {
		kind := strings.SplitN(strings.TrimPrefix(it.Key, resourcesPrefix), "/", 2)[0]
		if !policyKind(kind) {
			continue
		}
		r, err := decodeOne(it)
		if err != nil {
			// Skipping it could drop a lock or a deny: keep the previous bundle instead.
			return fmt.Errorf("rebuilding the policy bundle: unreadable resource %s: %w", it.Key, err)
		}
		if ca, ok := r.(*resource.CertAuthority); ok && ca.Spec.ClusterName == s.cfg.ClusterName {
			continue // only package ca speaks for this cluster's own CAs
		}
		res = append(res, r)
	}
	b, err := bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions: bundles.ShapeOptions{
			ClusterName:  s.cfg.ClusterName,
			MaxClockSkew: s.cfg.MaxClockSkew,
			Resources:    res,
		},
		OperatorModules: s.cfg.OperatorModules,
	})
	if err != nil {
		return fmt.Errorf("rebuilding the policy bundle: %w", err)
	}
	b.Revision = fmt.Sprintf("%s.%d", b.Revision, s.gen.Add(1))
	if err := s.cfg.Engine.Load(ctx, b); err != nil {
		return fmt.Errorf("loading the policy bundle: %w", err)
	}
	s.loaded.Store(b)
	s.log.Debug("policy bundle loaded", "revision", b.Revision)
	for stage, ev := range s.cfg.Engine.Evaluators() {
		if strings.HasPrefix(ev, policy.EvaluatorTopdown+": ") { // fell back, not asked for
			s.log.Warn("a policy stage is evaluated by topdown, not its plan (decisions are the same, slower)", "stage", stage, "why", ev, "revision", b.Revision)
		}
	}
	return nil
}

// LoadedBundle returns the bundle the engine decides with (its Revision is what the
// decision log records), or nil before the first load.
func (s *Service) LoadedBundle() *bundles.Bundle { return s.loaded.Load() }

// rebuildAfter is called after a write; a failed rebuild is logged and reported, the
// write stays.
func (s *Service) rebuildAfter(ctx context.Context) error {
	if err := s.Rebuild(ctx); err != nil {
		s.log.Error("policy bundle not rebuilt after a change; decisions use the previous bundle", "err", err)
		return fmt.Errorf("the change was stored but the policy bundle could not be rebuilt: %w", err)
	}
	return nil
}

// Run rebuilds the bundle whenever another writer (a replica sharing the store) changes a
// resource the policy reads, until ctx ends. Changes this service makes are rebuilt
// synchronously as well; a rebuild is idempotent.
func (s *Service) Run(ctx context.Context) error {
	for {
		w, err := s.cfg.Store.Watch(ctx, resourcesPrefix)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("watching resources failed; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		// Catch up with what changed while no watcher ran.
		_ = s.rebuildAfter(ctx)
		s.watch(ctx, w)
		w.Close()
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Service) watch(ctx context.Context, w state.Watcher) {
	pending := false
	var lastRetry time.Time
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil && ctx.Err() == nil {
					s.log.Warn("resource watch ended; re-listing", "err", err)
				}
				return
			}
			kind := strings.SplitN(strings.TrimPrefix(ev.Item.Key, resourcesPrefix), "/", 2)[0]
			if policyKind(kind) {
				pending = true
			}
		case <-tick.C:
			// Coalesce bursts of events into one rebuild; retry a failed one now and then.
			retry := s.stale.Load() && time.Since(lastRetry) > 2*time.Second
			if pending || retry {
				pending = false
				lastRetry = time.Now()
				_ = s.rebuildAfter(ctx)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// kindError is an error of one of the kinds above whose message is only its own text.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
