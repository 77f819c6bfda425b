package decisionlog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// Defaults for the zero values of Config and UploadConfig.
const (
	DefaultBufferSize    = 10000       // events per sink, as OPA's buffer_size_limit_events
	DefaultFlushInterval = time.Second // file fsync interval
	DefaultMaxSpoolBytes = 256 << 20   // per sink
	DefaultMinRetryDelay = 100 * time.Millisecond
	DefaultMaxRetryDelay = 30 * time.Second
	DefaultResource      = "/logs"          // OPA's decision-log resource
	DefaultUploadLimit   = 32 << 10         // compressed bytes per request, as OPA's upload_size_limit_bytes
	DefaultUploadMin     = time.Second      // shortest wait before a partial batch is uploaded
	DefaultUploadMax     = 2 * time.Second  // longest wait before a partial batch is uploaded
	DefaultUploadTimeout = 30 * time.Second // one upload request, answer included
)

// Config configures a Logger. Its zero value is usable: it writes JSON lines
// to os.Stdout with the default masks and no spool.
type Config struct {
	// ID is the "id" label of every event, naming this gateway instance.
	// Default: a random UUID chosen by New.
	ID string
	// Version is the "version" label. Default: the main module's version
	// from the build information, or "devel".
	Version string
	// Cluster is the "cluster" label: the name of the cluster this gateway
	// decides for. Omitted when empty.
	Cluster string
	// Labels are added to every event's labels; ID, Version and Cluster take
	// precedence over labels of the same name.
	Labels map[string]string

	// Masks are applied to every event after DefaultMasks.
	Masks []MaskRule
	// NoDefaultMasks turns DefaultMasks off, leaving only Masks.
	NoDefaultMasks bool

	// BufferSize bounds each sink's queue (Log drops an event for a sink
	// whose queue is full) and, separately, the events the sink holds in
	// batches in memory before it spools them. Default: DefaultBufferSize.
	BufferSize int
	// FlushInterval is how often the file sink fsyncs what it wrote, and how
	// often dropped events are reported in the log. Default:
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// SpoolDir is where sinks keep batches they cannot deliver yet, one
	// subdirectory per sink ("file", "console", "http"). Empty: no spool, so
	// events that do not fit in memory while a sink is down are dropped.
	// One Logger at a time may use a directory.
	SpoolDir string
	// MaxSpoolBytes bounds each sink's spool. Default: DefaultMaxSpoolBytes.
	MaxSpoolBytes int64
	// MinRetryDelay and MaxRetryDelay bound the exponential backoff between
	// attempts to deliver a batch that failed. Defaults:
	// DefaultMinRetryDelay, DefaultMaxRetryDelay.
	MinRetryDelay, MaxRetryDelay time.Duration

	// FilePath, when set, appends JSON lines to this file (created 0600).
	FilePath string
	// Console, when set, receives JSON lines (os.Stdout for OPA's console
	// logger). It must not block forever: Close waits for a write in flight.
	Console io.Writer
	// Upload, when its URL is set, uploads events in OPA's protocol.
	Upload UploadConfig

	// Logger receives the Logger's own diagnostics (failures, drops,
	// recoveries), never event contents. Default: slog.Default().
	Logger *slog.Logger
}

// UploadConfig configures the HTTP sink, which speaks OPA's decision-log
// upload protocol: a POST to URL+Resource whose body is a gzip-compressed JSON
// array of events.
type UploadConfig struct {
	// URL is the service's base URL, "https://audit.example.com/v1". Empty:
	// no upload.
	URL string
	// Resource is the path appended to URL. Default: DefaultResource.
	Resource string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// TokenFile, when set, holds the bearer token (surrounding whitespace
	// trimmed); it is read by New, and Token must then be empty. Keeping the
	// token in a file keeps it out of the configuration and the environment.
	TokenFile string
	// CAFile, when set, is a PEM file of the CAs that the service's TLS
	// certificate must chain to, instead of the system roots.
	CAFile string
	// CertFile and KeyFile, when set (both), are a client certificate and
	// key presented to the service (mutual TLS).
	CertFile, KeyFile string
	// Client sends the requests. Default: a client of its own with
	// http.DefaultTransport's settings (and CAFile, CertFile and KeyFile).
	// Client cannot be combined with CAFile, CertFile or KeyFile.
	Client *http.Client
	// SizeLimitBytes is the largest compressed body of one request; a single
	// event that alone exceeds it is sent alone. Default: DefaultUploadLimit.
	SizeLimitBytes int
	// MinDelay and MaxDelay bound how long events wait to fill a batch: a
	// batch is uploaded when it reaches the size limit, or after a random
	// delay between MinDelay and MaxDelay (jitter spreads gateways' uploads
	// apart). Defaults: DefaultUploadMin, DefaultUploadMax.
	MinDelay, MaxDelay time.Duration
	// Timeout bounds one request, answer included. Default:
	// DefaultUploadTimeout.
	Timeout time.Duration

	ownClient bool // Client was built from CAFile, CertFile and KeyFile
}

// loadFiles reads TokenFile into Token and builds Client from CAFile,
// CertFile and KeyFile; each error names the file and what to fix.
func (u *UploadConfig) loadFiles() error {
	if u.TokenFile != "" {
		b, err := os.ReadFile(u.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the upload token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		switch {
		case tok == "":
			return fmt.Errorf("upload token file %s is empty", u.TokenFile)
		case strings.ContainsAny(tok, "\r\n"):
			return fmt.Errorf("upload token file %s holds more than one line: put only the token in it", u.TokenFile)
		}
		u.Token = tok
	}
	if u.CAFile == "" && u.CertFile == "" {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return fmt.Errorf("reading the upload CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("upload CA file %s holds no PEM certificate", u.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if u.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(u.CertFile, u.KeyFile)
		if err != nil {
			return fmt.Errorf("loading the upload client certificate %s and key %s: %w", u.CertFile, u.KeyFile, err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	u.Client, u.ownClient = &http.Client{Transport: tr}, true
	return nil
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// field that is wrong.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.BufferSize < 0 {
		errs = append(errs, fmt.Errorf("BufferSize %d is negative", cfg.BufferSize))
	}
	if cfg.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("FlushInterval %v is negative", cfg.FlushInterval))
	}
	if cfg.MaxSpoolBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxSpoolBytes %d is negative", cfg.MaxSpoolBytes))
	}
	if cfg.MinRetryDelay < 0 || cfg.MaxRetryDelay < 0 {
		errs = append(errs, errors.New("MinRetryDelay and MaxRetryDelay must not be negative"))
	}
	u := &cfg.Upload
	if u.SizeLimitBytes < 0 {
		errs = append(errs, fmt.Errorf("Upload.SizeLimitBytes %d is negative", u.SizeLimitBytes))
	}
	if u.MinDelay < 0 || u.MaxDelay < 0 || u.Timeout < 0 {
		errs = append(errs, errors.New("Upload.MinDelay, Upload.MaxDelay and Upload.Timeout must not be negative"))
	}
	if u.TokenFile != "" && u.Token != "" {
		errs = append(errs, errors.New("Upload.Token and Upload.TokenFile are both set: keep one"))
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		errs = append(errs, errors.New("Upload.CertFile and Upload.KeyFile go together: set both or neither"))
	}
	if u.Client != nil && (u.CAFile != "" || u.CertFile != "") {
		errs = append(errs, errors.New("Upload.Client cannot be combined with Upload.CAFile, CertFile or KeyFile"))
	}
	if u.URL == "" && (u.TokenFile != "" || u.Token != "" || u.CAFile != "" || u.CertFile != "") {
		errs = append(errs, errors.New("upload credentials or TLS files are set but Upload.URL is empty"))
	}
	if u.URL != "" {
		pu, err := url.Parse(u.URL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("Upload.URL: %w", err))
		case pu.Scheme != "http" && pu.Scheme != "https", pu.Host == "":
			errs = append(errs, fmt.Errorf("Upload.URL %q: want an http or https URL with a host, such as https://audit.example.com/v1", pu.Redacted()))
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	if u.URL != "" {
		if err := u.loadFiles(); err != nil {
			return cfg, err
		}
	}

	if cfg.ID == "" {
		cfg.ID = newUUID()
	}
	if cfg.Version == "" {
		cfg.Version = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			cfg.Version = bi.Main.Version
		}
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxSpoolBytes == 0 {
		cfg.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	if cfg.MinRetryDelay == 0 {
		cfg.MinRetryDelay = DefaultMinRetryDelay
	}
	if cfg.MaxRetryDelay == 0 {
		cfg.MaxRetryDelay = max(DefaultMaxRetryDelay, cfg.MinRetryDelay)
	}
	if cfg.MaxRetryDelay < cfg.MinRetryDelay {
		return cfg, fmt.Errorf("MaxRetryDelay %v is shorter than MinRetryDelay %v", cfg.MaxRetryDelay, cfg.MinRetryDelay)
	}
	if cfg.FilePath == "" && cfg.Console == nil && u.URL == "" {
		cfg.Console = os.Stdout
	}
	if u.Resource == "" {
		u.Resource = DefaultResource
	}
	if u.SizeLimitBytes == 0 {
		u.SizeLimitBytes = DefaultUploadLimit
	}
	if u.MinDelay == 0 {
		u.MinDelay = DefaultUploadMin
	}
	if u.MaxDelay == 0 {
		u.MaxDelay = max(DefaultUploadMax, u.MinDelay)
	}
	if u.MaxDelay < u.MinDelay {
		return cfg, fmt.Errorf("Upload.MaxDelay %v is shorter than Upload.MinDelay %v", u.MaxDelay, u.MinDelay)
	}
	if u.Timeout == 0 {
		u.Timeout = DefaultUploadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// labels returns the labels every event carries.
func (cfg Config) labels() map[string]string {
	l := make(map[string]string, len(cfg.Labels)+3)
	for k, v := range cfg.Labels {
		l[k] = v
	}
	l["id"] = cfg.ID
	l["version"] = cfg.Version
	if cfg.Cluster != "" {
		l["cluster"] = cfg.Cluster
	}
	return l
}
