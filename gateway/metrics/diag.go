package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports why the process is not ready, or nil when it is.
type Check func(ctx context.Context) error

// Diag is the diagnostic HTTP server: /metrics (Prometheus text format), /healthz (the
// process serves HTTP) and /readyz (every readiness check passes; 503 with the failing
// checks otherwise). It serves plain HTTP: bind it to a loopback or management address.
type Diag struct {
	listener net.Listener
	srv      *http.Server
	log      *slog.Logger
}

// NewRegistry returns a registry with c and the Go runtime and process collectors.
func NewRegistry(c prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return reg, nil
}

// Listen binds addr and prepares the handlers; Serve serves them.
func Listen(addr string, reg *prometheus.Registry, ready map[string]Check, log *slog.Logger) (*Diag, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("diag_addr %s: %w (choose a free host:port, or leave diag_addr empty to turn the diagnostic server off)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var failed []string
		for name, check := range ready {
			if err := check(ctx); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			}
		}
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, f := range failed {
				_, _ = fmt.Fprintln(w, "not ready:", f)
			}
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	d := &Diag{listener: ln, log: log,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}}
	return d, nil
}

// Addr is the bound address.
func (d *Diag) Addr() string { return d.listener.Addr().String() }

// Serve serves until ctx ends.
func (d *Diag) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = d.srv.Shutdown(sctx)
	}()
	d.log.Info("diagnostic server listening", "addr", d.Addr(), "paths", "/metrics /healthz /readyz")
	if err := d.srv.Serve(d.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("diagnostic server: %w", err)
	}
	return nil
}

// Close releases the listener (when Serve never ran).
func (d *Diag) Close() error { return d.listener.Close() }

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) { l.log.Warn("serving metrics", "err", fmt.Sprint(v...)) }
