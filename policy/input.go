package policy

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Actions a decision can be asked for.
const (
	ActionSSHSession   = "ssh.session"
	ActionNodeList     = "node.list"
	ActionClusterRoute = "cluster.route"
	ActionClusterList  = "cluster.list"
	ActionCertIssue    = "cert.issue"
	// ActionSSHPortForward and ActionSSHAgentForward are ssh.session requests (same login
	// and node) for port forwarding and agent forwarding (rego/forwarding.rego).
	ActionSSHPortForward  = "ssh.port_forward"
	ActionSSHAgentForward = "ssh.agent_forward"
)

// Input is the decision input document of docs/ARCHITECTURE.md. Zero-valued optional
// fields are omitted from the document rather than sent as null.
type Input struct {
	Action        string
	Cluster       string
	Now           time.Time
	Cert          Cert
	Login         string
	Node          *Node
	RemoteCluster *RemoteCluster
}

// Cert is what a verified user certificate says, plus who signed it.
type Cert struct {
	Type           string // "user" or "host"
	SigningCA      SigningCA
	Username       string
	KeyID          string
	Principals     []string
	Roles          []string
	Traits         map[string][]string
	ValidAfter     time.Time
	ValidBefore    time.Time
	RouteToCluster string
	IssuedVia      string
	MFAVerified    bool
}

// SigningCA names the certificate authority whose key signed a certificate.
type SigningCA struct {
	Cluster     string
	Fingerprint string // SHA256:... of the signing public key
}

// Node is the server a request is for.
type Node struct {
	Name   string
	Labels map[string]string
}

// RemoteCluster is the leaf cluster a request is for (on the root).
type RemoteCluster struct {
	Name   string
	Labels map[string]string
}

// Policy times are nanoseconds since 1970 in an int64 (Rego's time builtins), which spans
// these instants.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// Limits on what an input may hold; anything larger is refused before Rego runs.
const (
	maxInputStrings   = 4096
	maxInputStringLen = 4096
)

// Validate refuses inputs Rego must never see: missing action or time, non-UTF-8 text,
// and oversize collections.
func (in *Input) Validate() error {
	if err := in.validateRequest(); err != nil {
		return err
	}
	return in.Cert.validate()
}

// validateRequest is Validate without the certificate's own checks (its times and its
// strings' text), which the engine makes once per certificate: on an identity-cache miss
// (identityByKey). The certificate's strings still count towards the input's limit.
func (in *Input) validateRequest() error {
	if in.Action == "" {
		return fmt.Errorf("decision input: action is required")
	}
	if in.Now.IsZero() {
		return fmt.Errorf("decision input: now is required")
	}
	if err := checkTime("now", in.Now); err != nil {
		return err
	}
	v := stringCheck{n: in.Cert.strings()}
	in.walkRequestStrings(v.check)
	if v.bad != nil {
		return v.bad
	}
	if v.n > maxInputStrings {
		return fmt.Errorf("decision input: %d strings, more than %d", v.n, maxInputStrings)
	}
	return nil
}

// validate checks the certificate's times and text.
func (c *Cert) validate() error {
	if err := checkTime("cert.valid_after", c.ValidAfter); err != nil {
		return err
	}
	if err := checkTime("cert.valid_before", c.ValidBefore); err != nil {
		return err
	}
	var v stringCheck
	c.walkStrings(v.check)
	return v.bad
}

func checkTime(field string, t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("decision input: %s %s is outside the years 1678 to 2262 that policy times can hold", field, t.Format(time.RFC3339))
	}
	return nil
}

// stringCheck counts strings and keeps the first that is not valid UTF-8 or too long. The
// field's name is put together only for an error (this runs on every miss).
type stringCheck struct {
	n   int
	bad error
}

func (v *stringCheck) check(field, sub, s string) {
	v.n++
	switch {
	case v.bad != nil:
	case !utf8.ValidString(s):
		v.bad = fmt.Errorf("decision input: %s%s is not valid UTF-8", field, sub)
	case len(s) > maxInputStringLen:
		v.bad = fmt.Errorf("decision input: %s%s is %d bytes, more than %d", field, sub, len(s), maxInputStringLen)
	}
}

// strings is the number of strings walkStrings gives its function.
func (c *Cert) strings() int {
	n := 7 + len(c.Principals) + len(c.Roles) + len(c.Traits)
	for _, vs := range c.Traits {
		n += len(vs)
	}
	return n
}

func (in *Input) walkRequestStrings(f func(field, sub, s string)) {
	f("action", "", in.Action)
	f("cluster", "", in.Cluster)
	f("login", "", in.Login)
	if in.Node != nil {
		f("node.name", "", in.Node.Name)
		for k, v := range in.Node.Labels {
			f("node.labels key", "", k)
			f("node.labels.", k, v)
		}
	}
	if in.RemoteCluster != nil {
		f("remote_cluster.name", "", in.RemoteCluster.Name)
		for k, v := range in.RemoteCluster.Labels {
			f("remote_cluster.labels key", "", k)
			f("remote_cluster.labels.", k, v)
		}
	}
}

func (c *Cert) walkStrings(f func(field, sub, s string)) {
	f("cert.type", "", c.Type)
	f("cert.signing_ca.cluster", "", c.SigningCA.Cluster)
	f("cert.signing_ca.fingerprint", "", c.SigningCA.Fingerprint)
	f("cert.username", "", c.Username)
	f("cert.key_id", "", c.KeyID)
	f("cert.route_to_cluster", "", c.RouteToCluster)
	f("cert.issued_via", "", c.IssuedVia)
	for _, s := range c.Principals {
		f("cert.principals", "", s)
	}
	for _, s := range c.Roles {
		f("cert.roles", "", s)
	}
	for k, vs := range c.Traits {
		f("cert.traits key", "", k)
		for _, v := range vs {
			f("cert.traits.", k, v)
		}
	}
}

// timeString formats times as the input document does: RFC 3339, UTC, nanoseconds when set.
func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// CertValue is the certificate part of the input as a Rego value.
func (c *Cert) Value() ast.Value {
	o := ast.NewObject()
	put := func(k string, v ast.Value) { o.Insert(ast.InternedTerm(k), ast.NewTerm(v)) }
	putStr := func(k, v string) {
		if v != "" {
			put(k, ast.String(v))
		}
	}
	putStr("type", c.Type)
	if c.SigningCA != (SigningCA{}) {
		ca := ast.NewObject()
		ca.Insert(ast.InternedTerm("cluster"), ast.StringTerm(c.SigningCA.Cluster))
		ca.Insert(ast.InternedTerm("fingerprint"), ast.StringTerm(c.SigningCA.Fingerprint))
		put("signing_ca", ca)
	}
	putStr("username", c.Username)
	putStr("key_id", c.KeyID)
	put("principals", stringArray(c.Principals))
	put("roles", stringArray(c.Roles))
	tr := ast.NewObject()
	for _, k := range sortedKeys(c.Traits) {
		tr.Insert(ast.StringTerm(k), ast.NewTerm(stringArray(c.Traits[k])))
	}
	put("traits", tr)
	if !c.ValidAfter.IsZero() {
		put("valid_after", ast.String(timeString(c.ValidAfter)))
	}
	if !c.ValidBefore.IsZero() {
		put("valid_before", ast.String(timeString(c.ValidBefore)))
	}
	putStr("route_to_cluster", c.RouteToCluster)
	putStr("issued_via", c.IssuedVia)
	put("mfa_verified", ast.Boolean(c.MFAVerified))
	return o
}

// Value is the whole input document as a Rego value. cert may be a cached c.Value().
func (in *Input) Value() ast.Value { return in.valueWithCert(in.Cert.Value()) }

// The input document's keys, made once (ast.InternedTerm allocates for most of them).
var (
	keyAction        = ast.StringTerm("action")
	keyCluster       = ast.StringTerm("cluster")
	keyNow           = ast.StringTerm("now")
	keyCert          = ast.StringTerm("cert")
	keyLogin         = ast.StringTerm("login")
	keyNode          = ast.StringTerm("node")
	keyRemoteCluster = ast.StringTerm("remote_cluster")
	keyName          = ast.StringTerm("name")
	keyLabels        = ast.StringTerm("labels")
)

func (in *Input) valueWithCert(cert ast.Value) ast.Value { return in.valueWith(cert, nil) }

// valueWith is valueWithCert with the node's labels given as a value already made
// (labelsCache), or built here when nodeLabels is nil.
func (in *Input) valueWith(cert, nodeLabels ast.Value) ast.Value {
	// This runs on every miss: the terms come from one block (termBlock), and each object
	// is made by one ast.NewObject call, which allocates its elements in one block where
	// Insert allocates per element and grows the object's map.
	n := 7
	if in.Node != nil {
		n += 3 + 2*len(in.Node.Labels)
	}
	if in.RemoteCluster != nil {
		n += 3 + 2*len(in.RemoteCluster.Labels)
	}
	tb := make(termBlock, 0, n)
	var items [7][2]*ast.Term
	items[0] = [2]*ast.Term{keyAction, tb.str(in.Action)}
	items[1] = [2]*ast.Term{keyCluster, tb.str(in.Cluster)}
	items[2] = [2]*ast.Term{keyNow, tb.str(timeString(in.Now))}
	items[3] = [2]*ast.Term{keyCert, tb.val(cert)}
	k := 4
	if in.Login != "" {
		items[k] = [2]*ast.Term{keyLogin, tb.str(in.Login)}
		k++
	}
	if in.Node != nil {
		if nodeLabels == nil {
			nodeLabels = tb.labels(in.Node.Labels)
		}
		items[k] = [2]*ast.Term{keyNode, tb.val(tb.named(in.Node.Name, nodeLabels))}
		k++
	}
	if in.RemoteCluster != nil {
		items[k] = [2]*ast.Term{keyRemoteCluster, tb.val(tb.namedLabels(in.RemoteCluster.Name, in.RemoteCluster.Labels))}
		k++
	}
	return ast.NewObject(items[:k]...)
}

// termBlock hands out terms from one allocation while it has room (and allocates each one
// on its own after that).
type termBlock []ast.Term

func (tb *termBlock) val(v ast.Value) *ast.Term {
	if len(*tb) == cap(*tb) {
		return ast.NewTerm(v)
	}
	*tb = append(*tb, ast.Term{Value: v})
	return &(*tb)[len(*tb)-1]
}

func (tb *termBlock) str(s string) *ast.Term { return tb.val(ast.String(s)) }

func (tb *termBlock) namedLabels(name string, labels map[string]string) ast.Value {
	return tb.named(name, tb.labels(labels))
}

// labels is a string map as an object.
func (tb *termBlock) labels(labels map[string]string) ast.Value {
	// An object's value does not depend on the order its keys are given in.
	l := make([][2]*ast.Term, 0, len(labels))
	for k, v := range labels {
		l = append(l, [2]*ast.Term{tb.str(k), tb.str(v)})
	}
	return ast.NewObject(l...)
}

// named is {"name": name, "labels": labels}.
func (tb *termBlock) named(name string, labels ast.Value) ast.Value {
	return ast.NewObject(
		[2]*ast.Term{keyName, tb.str(name)},
		[2]*ast.Term{keyLabels, tb.val(labels)})
}

// identityInput is what the identity stage sees: the certificate and the cluster.
func identityInput(cluster string, cert ast.Value) ast.Value {
	return ast.NewObject(
		[2]*ast.Term{keyCert, ast.NewTerm(cert)},
		[2]*ast.Term{keyCluster, ast.StringTerm(cluster)})
}

func namedLabels(name string, labels map[string]string) ast.Value {
	var tb termBlock
	return tb.namedLabels(name, labels)
}

func stringArray(ss []string) ast.Value {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.NewArray(terms...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// JSON returns the input document as plain JSON-compatible Go values, for decision logs,
// `opa eval` and explanations.
func (in *Input) JSON() (map[string]any, error) {
	v, err := ast.JSON(in.Value())
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// Clone returns a deep copy of in: no slice or map is shared with the original, so the
// copy may be read on another goroutine while the caller reuses its input.
func (in *Input) Clone() *Input {
	cp := *in
	cp.Cert.Principals = slices.Clone(in.Cert.Principals)
	cp.Cert.Roles = slices.Clone(in.Cert.Roles)
	if in.Cert.Traits != nil {
		cp.Cert.Traits = make(map[string][]string, len(in.Cert.Traits))
		for k, v := range in.Cert.Traits {
			cp.Cert.Traits[k] = slices.Clone(v)
		}
	}
	if in.Node != nil {
		cp.Node = &Node{Name: in.Node.Name, Labels: maps.Clone(in.Node.Labels)}
	}
	if in.RemoteCluster != nil {
		cp.RemoteCluster = &RemoteCluster{Name: in.RemoteCluster.Name, Labels: maps.Clone(in.RemoteCluster.Labels)}
	}
	return &cp
}
