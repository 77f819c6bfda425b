package decisionlog

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" when New must succeed
	}{
		{name: "zero_value_works", cfg: Config{}},
		{name: "negative_buffer_size", cfg: Config{BufferSize: -1}, wantErr: "BufferSize"},
		{name: "negative_spool_bound", cfg: Config{MaxSpoolBytes: -1}, wantErr: "MaxSpoolBytes"},
		{name: "retry_delays_reversed", cfg: Config{MinRetryDelay: time.Second, MaxRetryDelay: time.Millisecond}, wantErr: "MaxRetryDelay"},
		{name: "upload_delays_reversed", cfg: Config{Upload: UploadConfig{URL: "https://a.example", MinDelay: time.Second, MaxDelay: time.Millisecond}}, wantErr: "Upload.MaxDelay"},
		{name: "upload_URL_without_scheme", cfg: Config{Upload: UploadConfig{URL: "audit.example.com/v1"}}, wantErr: "Upload.URL"},
		{name: "upload_URL_password_is_not_echoed", cfg: Config{Upload: UploadConfig{URL: "ftp://u:hunter2@a.example"}}, wantErr: "xxxxx"},
		{name: "spool_dir_is_a_file", cfg: Config{SpoolDir: "/dev/null", Console: &bytes.Buffer{}}, wantErr: "spool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = testLogger(t)
			l, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				l.Close(context.Background())
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q, want it to mention %q (and no password)", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Config{Upload: UploadConfig{URL: "https://audit.example.com"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Upload
	if cfg.BufferSize != 10000 || cfg.FlushInterval != time.Second || cfg.MaxSpoolBytes != 256<<20 ||
		u.Resource != "/logs" || u.SizeLimitBytes != 32768 || u.MinDelay > u.MaxDelay || u.Timeout == 0 ||
		cfg.ID == "" || cfg.Version == "" || cfg.Console != nil {
		t.Errorf("defaults: %+v", cfg)
	}
	if got := newHTTPSink(cfg).url; got != "https://audit.example.com/logs" {
		t.Errorf("upload target %q, want https://audit.example.com/logs", got)
	}
}
