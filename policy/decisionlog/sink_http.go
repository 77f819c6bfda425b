package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpSink uploads events in OPA's decision-log protocol: POST <url>, body a
// gzip-compressed JSON array of events no larger than limit (compressed),
// "Content-Type: application/json", "Content-Encoding: gzip", and a bearer
// token when configured. A 2xx answer delivers the request's events; anything
// else is an error, and the caller retries the events not yet delivered.
// Only the sink's delivery goroutine uses it.
type httpSink struct {
	url       string // target, for requests
	redacted  string // target without credentials, for errors
	token     string
	userAgent string
	client    *http.Client
	ownClient bool
	limit     int
	timeout   time.Duration

	gz    *gzip.Writer
	buf   bytes.Buffer
	ratio float64 // JSON bytes per compressed byte in the last body
}

func newHTTPSink(cfg Config) *httpSink {
	u := cfg.Upload
	target := strings.TrimRight(u.URL, "/") + "/" + strings.TrimLeft(u.Resource, "/")
	redacted := redactURL(target)
	s := &httpSink{
		url:       target,
		redacted:  redacted,
		token:     u.Token,
		userAgent: "tether-decisionlog/" + cfg.Version,
		client:    u.Client,
		limit:     u.SizeLimitBytes,
		timeout:   u.Timeout,
		ownClient: u.ownClient,
	}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownClient = true
	}
	s.gz = gzip.NewWriter(&s.buf)
	return s
}

// deliver uploads events in as many requests as the size limit needs, in
// order, and returns how many were delivered before the first failure.
func (s *httpSink) deliver(ctx context.Context, events [][]byte) (int, error) {
	done := 0
	for done < len(events) {
		n, body := s.chunk(events[done:])
		if err := s.post(ctx, body); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// chunk returns a prefix of events (at least one) whose compressed JSON array
// fits the limit, as long as it can cheaply find, and that body. The first try
// is sized by the compression ratio of the previous body, so a long batch
// (a spool segment) is not compressed whole for every request.
func (s *httpSink) chunk(events [][]byte) (int, []byte) {
	n := len(events)
	if s.ratio > 0 {
		budget, raw := int(float64(s.limit)*s.ratio*1.1), 2
		k := 0
		for k < n && raw+len(events[k])+1 <= budget {
			raw += len(events[k]) + 1
			k++
		}
		n = max(1, k)
	}
	for {
		body := s.compress(events[:n])
		raw := 1
		for _, e := range events[:n] {
			raw += len(e) + 1
		}
		s.ratio = float64(raw) / float64(len(body))
		if len(body) <= s.limit || n == 1 {
			// The transport may read a request body after Do returns,
			// so each request gets a body of its own.
			return n, bytes.Clone(body)
		}
		// Aim a little below the limit, and always shrink so that the
		// loop ends.
		guess := int(int64(n) * int64(s.limit) * 9 / 10 / int64(len(body)))
		n = max(1, min(n-1, guess))
	}
}

func (s *httpSink) compress(events [][]byte) []byte {
	s.buf.Reset()
	s.gz.Reset(&s.buf)
	_, _ = s.gz.Write([]byte{'['}) // writes to a bytes.Buffer do not fail
	for i, e := range events {
		if i > 0 {
			_, _ = s.gz.Write([]byte{','})
		}
		_, _ = s.gz.Write(e)
	}
	_, _ = s.gz.Write([]byte{']'})
	_ = s.gz.Close()
	return s.buf.Bytes()
}

func (s *httpSink) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("uploading decision logs to %s: %w", s.redacted, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", s.userAgent)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error carries the URL as given; it may hold credentials.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return fmt.Errorf("uploading decision logs to %s: %w", s.redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return fmt.Errorf("uploading decision logs to %s: server answered %s: %q", s.redacted, resp.Status, bytes.TrimSpace(msg))
}

func (*httpSink) sync() error { return nil }

func (s *httpSink) close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// redactURL returns u with any password replaced, for messages.
func redactURL(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Redacted()
	}
	return "(unparsable URL)"
}
