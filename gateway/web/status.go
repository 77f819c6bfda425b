package web

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/buildinfo"
)

// StatusPath is the admin route `tetherctl status` reads.
const StatusPath = "/v1/admin/status"

// StatusResponse answers GET /v1/admin/status.
type StatusResponse struct {
	auth.Status
	Server buildinfo.Info `json:"server"`
	// TLSCAFiles are the files, on the cluster's machine, holding the TLS CA certificates
	// that sign the web API's certificate (the signing one first; two during a rotation):
	// what a leaf pins with root_ca_file.
	TLSCAFiles []string `json:"tls_ca_files"`
	// TLSCAPEM is the same certificates in PEM, for copying from elsewhere.
	TLSCAPEM string `json:"tls_ca_pem"`
}

// StatusInfo is what the status route needs beyond the auth service.
type StatusInfo struct {
	// CADir is the directory package ca keeps the cluster's authorities in
	// (data_dir/ca); the TLS CA's certificates are tls/key-N.crt under it.
	CADir string
}

// HandleStatus adds the admin route GET /v1/admin/status.
func (s *Server) HandleStatus(info StatusInfo) {
	s.mux.Handle("GET "+StatusPath, s.admin(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.cfg.Auth.Status(r.Context())
		if err != nil {
			s.fail(w, err)
			return
		}
		out := StatusResponse{Status: st, Server: buildinfo.Get(), TLSCAFiles: []string{}}
		var pemData bytes.Buffer
		certs := s.cfg.Auth.CA().TLS.CACerts()
		files := tlsCAFiles(info.CADir)
		for _, c := range certs {
			_ = pem.Encode(&pemData, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
			if f, ok := files[string(c.Raw)]; ok {
				out.TLSCAFiles = append(out.TLSCAFiles, f)
			}
		}
		out.TLSCAPEM = pemData.String()
		writeJSON(w, http.StatusOK, out)
	}))
}

// tlsCAFiles maps the DER of each certificate in dir/tls/key-*.crt to its file.
func tlsCAFiles(dir string) map[string]string {
	out := map[string]string{}
	if dir == "" {
		return out
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "tls", "key-*.crt"))
	sort.Strings(paths)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if b, _ := pem.Decode(data); b != nil && b.Type == "CERTIFICATE" {
			abs, err := filepath.Abs(p)
			if err != nil {
				abs = p
			}
			out[string(b.Bytes)] = abs
		}
	}
	return out
}
