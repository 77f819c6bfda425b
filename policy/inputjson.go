package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// MaxInputJSON bounds the size of a decision input document read from JSON.
const MaxInputJSON = 1 << 20

type inputJSON struct {
	Action        string          `json:"action"`
	Cluster       string          `json:"cluster"`
	Now           string          `json:"now"`
	Cert          *certJSON       `json:"cert"`
	Login         string          `json:"login,omitempty"`
	Node          *namedLabelJSON `json:"node,omitempty"`
	RemoteCluster *namedLabelJSON `json:"remote_cluster,omitempty"`
}

type certJSON struct {
	Type           string              `json:"type"`
	SigningCA      *signingCAJSON      `json:"signing_ca"`
	Username       string              `json:"username"`
	KeyID          string              `json:"key_id,omitempty"`
	Principals     []string            `json:"principals"`
	Roles          []string            `json:"roles"`
	Traits         map[string][]string `json:"traits"`
	ValidAfter     string              `json:"valid_after"`
	ValidBefore    string              `json:"valid_before"`
	RouteToCluster string              `json:"route_to_cluster,omitempty"`
	IssuedVia      string              `json:"issued_via,omitempty"`
	MFAVerified    bool                `json:"mfa_verified"`
}

type signingCAJSON struct {
	Cluster     string `json:"cluster"`
	Fingerprint string `json:"fingerprint"`
}

type namedLabelJSON struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// ParseInputJSON reads a decision input document (the JSON `opa eval -i` takes). Unknown
// fields, wrong types, bad times, non-UTF-8 text and oversize documents are errors.
func ParseInputJSON(data []byte) (*Input, error) {
	if len(data) > MaxInputJSON {
		return nil, fmt.Errorf("decision input: %d bytes, more than %d", len(data), MaxInputJSON)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("decision input: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw inputJSON
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decision input: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decision input: unexpected data after the JSON object")
	}
	in := &Input{Action: raw.Action, Cluster: raw.Cluster, Login: raw.Login}
	var err error
	if in.Now, err = parseTime("now", raw.Now, true); err != nil {
		return nil, err
	}
	if c := raw.Cert; c != nil {
		in.Cert = Cert{Type: c.Type, Username: c.Username, KeyID: c.KeyID, Principals: c.Principals,
			Roles: c.Roles, Traits: c.Traits, RouteToCluster: c.RouteToCluster, IssuedVia: c.IssuedVia,
			MFAVerified: c.MFAVerified}
		if c.SigningCA != nil {
			in.Cert.SigningCA = SigningCA(*c.SigningCA)
		}
		if in.Cert.ValidAfter, err = parseTime("cert.valid_after", c.ValidAfter, false); err != nil {
			return nil, err
		}
		if in.Cert.ValidBefore, err = parseTime("cert.valid_before", c.ValidBefore, false); err != nil {
			return nil, err
		}
	}
	if n := raw.Node; n != nil {
		in.Node = &Node{Name: n.Name, Labels: n.Labels}
	}
	if rc := raw.RemoteCluster; rc != nil {
		in.RemoteCluster = &RemoteCluster{Name: rc.Name, Labels: rc.Labels}
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return in, nil
}

func parseTime(field, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, fmt.Errorf("decision input: %s is required (RFC 3339, e.g. 2026-11-23T19:45:35Z)", field)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("decision input: %s: %q is not an RFC 3339 time", field, s)
	}
	return t, nil
}
