package policy

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/resource"
)

const (
	leafName = "leaf.example.com"
	rootName = "root.example.com"
)

// caKey is a generated SSH CA public key and its fingerprint.
type caKey struct {
	authorized  string
	fingerprint string
}

func newCAKey(t testing.TB) caKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return caKey{
		authorized:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))),
		fingerprint: ssh.FingerprintSHA256(sp),
	}
}

// fixture is the benchmark and differential-test world: a leaf with 100 roles, a trusted
// root with 50 role_map rules (30 exact, 15 globs, 5 regexes with captures), one operator
// module, and certificates from both clusters.
type fixture struct {
	rootUser, leafUser, leafHost caKey
	yaml                         string
	operator                     string
}

const fixtureOperatorModule = `package tether.custom

# Nobody logs in as root on production, whatever their roles say.
deny contains msg if {
	input.action == "ssh.session"
	input.login == "root"
	input.node.labels.env == "prod"
	msg := "root logins on production nodes are forbidden"
}

# Break-glass: bob gets the auditor role everywhere.
grants contains "role-099" if input.cert.username == "bob"
`

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{rootUser: newCAKey(t), leafUser: newCAKey(t), leafHost: newCAKey(t), operator: fixtureOperatorModule}
	var b strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, `---
kind: role
version: v5
metadata:
  name: role-%03d
spec:
  allow:
    logins: [login-%d, "{{internal.logins}}", "{{email.local(external.email)}}"]
    node_labels:
      env: ["stage-*", "dev", "^qa-[0-9]+$"]
      team: ["team-%d", "{{external.team}}"]
  deny:
    logins: [login-denied-%d]
`, i, i%7, i%10, i%5)
		if i%10 == 9 {
			fmt.Fprintf(&b, `    node_labels:
      env: prod
`)
		}
		if i == 42 {
			b.WriteString("  options:\n    require_session_mfa: true\n")
		}
		if i == 43 {
			b.WriteString("  options:\n    max_cert_age: 2h\n")
		}
	}
	// The seed guide's roles.
	b.WriteString(`---
kind: role
version: v5
metadata: {name: visitor}
spec:
  allow:
    logins: [visitor]
    node_labels: {'*': '*'}
---
kind: role
version: v5
metadata: {name: stage-access}
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels: {env: stage}
  deny:
    logins: [root]
`)
	var rm strings.Builder
	rm.WriteString("    - {remote: access, local: [visitor]}\n    - {remote: full-access, local: [stage-access]}\n")
	for i := 0; i < 28; i++ {
		fmt.Fprintf(&rm, "    - {remote: r-exact-%d, local: [role-%03d]}\n", i, i)
	}
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&rm, "    - {remote: 'g-%d-*', local: [role-%03d, 'role-$1']}\n", i, 30+i)
	}
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&rm, "    - {remote: '^rx-%d-(.*)$', local: ['role-$1']}\n", i)
	}
	fmt.Fprintf(&b, `---
kind: trusted_cluster
version: v2
metadata: {name: %s}
spec:
  enabled: true
  token: abcd123-insecure-do-not-use-this
  tunnel_addr: %s:443
  web_proxy_addr: %s:443
  role_map:
%s---
kind: cert_authority
version: v2
metadata: {name: %s}
spec:
  type: user
  cluster_name: %s
  active_keys:
    ssh:
      - public_key: %s
---
kind: cert_authority
version: v2
metadata: {name: %s}
spec:
  type: user
  cluster_name: %s
  active_keys:
    ssh:
      - public_key: %s
---
kind: cert_authority
version: v2
metadata: {name: %s}
spec:
  type: host
  cluster_name: %s
  active_keys:
    ssh:
      - public_key: %s
`, rootName, rootName, rootName, rm.String(),
		rootName, rootName, f.rootUser.authorized,
		leafName, leafName, f.leafUser.authorized,
		leafName, leafName, f.leafHost.authorized)
	f.yaml = b.String()
	return f
}

func (f *fixture) bundle(t testing.TB) *bundles.Bundle {
	t.Helper()
	res, err := resource.Parse([]byte(f.yaml), "fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions:    bundles.ShapeOptions{ClusterName: leafName, Resources: res},
		OperatorModules: []bundles.Module{{Path: "fixture.rego", Raw: []byte(f.operator)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) engine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Load(context.Background(), f.bundle(t)); err != nil {
		t.Fatal(err)
	}
	return e
}

var fixtureNow = time.Date(2026, 11, 23, 19, 45, 35, 0, time.UTC)

// rootCert is a certificate Alice got from the root.
func (f *fixture) rootCert(user string, roles, principals []string) Cert {
	return Cert{
		Type:        "user",
		SigningCA:   SigningCA{Cluster: rootName, Fingerprint: f.rootUser.fingerprint},
		Username:    user,
		Principals:  principals,
		Roles:       roles,
		Traits:      map[string][]string{"logins": principals, "team": {"team-3"}, "email": {user + "@example.com"}},
		ValidAfter:  fixtureNow.Add(-time.Hour),
		ValidBefore: fixtureNow.Add(11 * time.Hour),
	}
}

// randomInput draws a request from the fixture's space: certificates from the root and
// the leaf (some forged, expired or unmapped), logins and nodes that do and do not match.
func (f *fixture) randomInput(r *rand.Rand) *Input {
	remoteRoles := []string{"access", "full-access", "access", "full-access", "r-exact-3", "r-exact-17", "g-2-007", "g-4-x", "rx-1-042", "rx-3-nope", "unmapped", "default-implicit-role", "g-9-", "R-EXACT-3"}
	var roles []string
	for n := r.IntN(4); n > 0; n-- {
		roles = append(roles, remoteRoles[r.IntN(len(remoteRoles))])
	}
	logins := []string{"visitor", "root", "login-3", "login-denied-2", "alice", "ubuntu", "x y"}
	var principals []string
	for n := r.IntN(4); n > 0; n-- {
		principals = append(principals, logins[r.IntN(len(logins))])
	}
	users := []string{"alice", "bob", "carol"}
	c := f.rootCert(users[r.IntN(len(users))], roles, principals)
	switch r.IntN(12) {
	case 0:
		c.SigningCA = SigningCA{Cluster: leafName, Fingerprint: f.leafUser.fingerprint}
		c.Roles = []string{fmt.Sprintf("role-%03d", r.IntN(110)), "visitor"}
	case 1:
		c.SigningCA.Fingerprint = "SHA256:forged"
	case 2:
		c.SigningCA = SigningCA{Cluster: leafName, Fingerprint: f.leafHost.fingerprint}
	case 3:
		c.ValidBefore = fixtureNow.Add(-time.Minute)
	case 4:
		c.ValidAfter = fixtureNow.Add(10 * time.Minute)
	case 5:
		c.Type = "host"
	case 6:
		c.MFAVerified = true
	}
	envs := []string{"stage", "stage-2", "dev", "prod", "qa-7", "qa-x", ""}
	teams := []string{"team-3", "team-3", "team-3", "team-4", "team-0", ""}
	labels := map[string]string{}
	if e := envs[r.IntN(len(envs))]; e != "" {
		labels["env"] = e
	}
	if t := teams[r.IntN(len(teams))]; t != "" {
		labels["team"] = t
	}
	in := &Input{
		Action:  ActionSSHSession,
		Cluster: leafName,
		Now:     fixtureNow.Add(time.Duration(r.IntN(4*3600)) * time.Second),
		Cert:    c,
		Login:   logins[r.IntN(len(logins))],
		Node:    &Node{Name: fmt.Sprintf("node-%d", r.IntN(5)), Labels: labels},
	}
	if len(principals) > 0 && r.IntN(10) < 7 {
		in.Login = principals[r.IntN(len(principals))]
	}
	// Half the requests are the everyday kind: a mapped role, a login the certificate
	// carries, a node its roles select; most of them are allowed.
	if r.IntN(2) == 0 {
		good := [][]string{{"access"}, {"r-exact-3"}, {"g-2-007", "full-access"}, {"rx-1-042"}, {"r-exact-17", "unmapped"}}
		in.Cert.Roles = good[r.IntN(len(good))]
		in.Cert.Principals = []string{"visitor", "login-3", "alice"}
		in.Cert.Traits["logins"] = in.Cert.Principals
		in.Login = in.Cert.Principals[r.IntN(3)]
		in.Node.Labels = map[string]string{"env": []string{"stage-1", "dev", "qa-3"}[r.IntN(3)], "team": "team-3"}
	}
	if r.IntN(10) == 0 {
		in.Action = ActionNodeList
		in.Login = ""
	}
	return in
}
