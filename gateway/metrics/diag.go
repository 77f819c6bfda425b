package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/tetherproject/tether/internal/listenerr"

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
	mux      *http.ServeMux
	log      *slog.Logger
	pprof    bool
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
		return nil, fmt.Errorf("%w (or leave diag_addr empty to turn the diagnostic server off)", listenerr.Wrap("diag_addr", addr, err))
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
	d := &Diag{listener: ln, log: log, mux: mux,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}}
	return d, nil
}

// EnablePprof serves Go's profiles under /debug/pprof/ (net/http/pprof: CPU profile,
// heap, goroutines, execution trace), as Teleport's diagnostic address does with
// --debug. Profiles reveal internals (stacks, timings) and a CPU profile or trace costs
// CPU while it runs, so tetherd enables them only at debug level. Call before Serve.
//
// A CPU profile or trace may run longer than the server's write timeout: its write
// deadline is moved to the asked duration plus 30 s.
func (d *Diag) EnablePprof() {
	d.pprof = true
	d.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	d.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	d.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	d.mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	d.mux.Handle("GET /debug/pprof/profile", longWrite(http.HandlerFunc(pprof.Profile)))
	d.mux.Handle("GET /debug/pprof/trace", longWrite(http.HandlerFunc(pprof.Trace)))
}

// maxProfile bounds a CPU profile or trace asked of /debug/pprof (seconds=).
const maxProfile = 10 * time.Minute

// longWrite lets a pprof handler that runs for ?seconds=N (default 30) write its answer:
// net/http/pprof refuses a duration at or beyond the server's WriteTimeout, so the
// request sees a server whose WriteTimeout covers it, and the connection's write
// deadline is moved to match.
func longWrite(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sec, err := strconv.ParseInt(r.FormValue("seconds"), 10, 64)
		if err != nil || sec <= 0 {
			sec = 30
		}
		if time.Duration(sec)*time.Second > maxProfile {
			http.Error(w, fmt.Sprintf("seconds=%d: at most %d", sec, int(maxProfile.Seconds())), http.StatusBadRequest)
			return
		}
		write := time.Duration(sec)*time.Second + 30*time.Second
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(write))
		ctx := context.WithValue(r.Context(), http.ServerContextKey, &http.Server{WriteTimeout: write})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
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
	paths := "/metrics /healthz /readyz"
	if d.pprof {
		paths += " /debug/pprof/"
	}
	d.log.Info("diagnostic server listening", "addr", d.Addr(), "paths", paths)
	if err := d.srv.Serve(d.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("diagnostic server: %w", err)
	}
	return nil
}

// Close releases the listener (when Serve never ran).
func (d *Diag) Close() error { return d.listener.Close() }

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) { l.log.Warn("serving metrics", "err", fmt.Sprint(v...)) }
