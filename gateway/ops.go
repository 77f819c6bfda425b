package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/metrics"
	"github.com/tetherproject/tether/policy/decisionlog"
	"github.com/tetherproject/tether/state"
)

// newAuditor is where every audit event of the process goes: the decision log's sinks
// when one is configured (slog then gets them at debug level, for --debug), otherwise
// slog at info; and the metrics' counters.
func newAuditor(log *slog.Logger, declog *decisionlog.Logger, cluster string, events *metrics.Events) audit.Auditor {
	alog := log.With("component", "audit")
	if declog == nil {
		return audit.Multi{audit.Log{Logger: alog}, events}
	}
	return audit.Multi{audit.Pipeline{Log: declog, Cluster: cluster}, audit.Log{Logger: alog, Level: slog.LevelDebug}, events}
}

// readyProbeKey is read by /readyz to check the store answers; it never exists.
const readyProbeKey = "live/readyz-probe"

// newDiag binds the diagnostic server of cfg.DiagAddr (nil when unset).
func (g *Gateway) newDiag() error {
	if g.cfg.DiagAddr == "" {
		return nil
	}
	reg, err := metrics.NewRegistry(metrics.NewCollector(metrics.Sources{
		Engine: g.engine, DecisionLog: g.declog, Tunnels: g.tunnel, Events: g.events,
	}))
	if err != nil {
		return err
	}
	// Ready: the store answers and a policy bundle is loaded. The tunnels to roots are not
	// part of it: a leaf whose root is away still serves its own users, and taking it out
	// of rotation would not bring the root back (tether_connected_leaves on the root and
	// tetherctl status on the leaf show tunnels).
	ready := map[string]metrics.Check{
		"store": func(ctx context.Context) error {
			if _, err := g.store.Get(ctx, readyProbeKey); err != nil && !errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("the store does not answer: %v", err)
			}
			return nil
		},
		"policy": func(context.Context) error {
			if g.engine.Revision() == "" {
				return errors.New("no policy bundle loaded yet")
			}
			return nil
		},
	}
	g.diag, err = metrics.Listen(g.cfg.DiagAddr, reg, ready, g.log)
	if err == nil && g.cfg.PprofEnabled() {
		g.diag.EnablePprof()
	}
	return err
}

// DiagAddr is the diagnostic server's bound address, or "" when it is off.
func (g *Gateway) DiagAddr() string {
	if g.diag == nil {
		return ""
	}
	return g.diag.Addr()
}

// RunNodeOnly runs a node agent alone (cluster_name empty): its audit events go to the
// decision log when one is configured, and diag_addr serves its metrics.
func RunNodeOnly(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	events := &metrics.Events{}
	var declog *decisionlog.Logger
	if dcfg, ok := cfg.DecisionLogConfig(); ok {
		dcfg.Logger = log
		var err error
		if declog, err = decisionlog.New(dcfg); err != nil {
			return fmt.Errorf("starting the decision log: %w", err)
		}
		defer closeDecisionLog(declog)
	}
	agent, err := NewNodeAgent(ctx, cfg, log, nil, newAuditor(log, declog, "", events))
	if err != nil {
		if ctx.Err() != nil {
			// Asked to stop (SIGTERM, SIGINT) while joining: a clean stop, not a failure.
			// Nothing was saved on the node.
			log.Info("stopped before the node finished joining", "reason", context.Cause(ctx))
			return nil
		}
		return err
	}
	if cfg.DiagAddr == "" {
		return agent.Run(ctx)
	}
	reg, err := metrics.NewRegistry(metrics.NewCollector(metrics.Sources{DecisionLog: declog, Events: events}))
	if err != nil {
		return err
	}
	diag, err := metrics.Listen(cfg.DiagAddr, reg, nil, log)
	if err != nil {
		return err
	}
	if cfg.PprofEnabled() {
		diag.EnablePprof()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- diag.Serve(ctx) }()
	err = agent.Run(ctx)
	cancel()
	<-errc
	return err
}
