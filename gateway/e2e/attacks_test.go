package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/resource"
)

// The attacks of issue 6 against real tetherd processes. Each test names the attack;
// the attacker's step comes first after the setup it needs.

func trustedClusterYAML(rootName, token, addr string) string {
	return fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: %s\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: \"access\"\n      local: [\"access\"]\n", rootName, token, addr, addr)
}

func inviteToken(t *testing.T, tetherctl string, root *proc, extra ...string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(mustCtl(t, tetherctl, root, append([]string{"tokens", "add", "--type=trusted_cluster", "--ttl=5m"}, extra...)...))
	if m == nil {
		t.Fatal("no token printed")
	}
	return m[1]
}

// cas returns the cert_authority resources a cluster's `tetherctl get cas` prints.
func cas(t *testing.T, tetherctl string, p *proc) []resource.CertAuthority {
	t.Helper()
	var out []resource.CertAuthority
	for _, doc := range strings.Split(mustCtl(t, tetherctl, p, "get", "cas"), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var c resource.CertAuthority
		if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func caOf(t *testing.T, all []resource.CertAuthority, cluster, typ string) resource.CertAuthority {
	t.Helper()
	for _, c := range all {
		if c.Spec.ClusterName == cluster && c.Spec.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s CA of %s", typ, cluster)
	return resource.CertAuthority{}
}

// postValidate sends a handshake request as an attacker would, with any body.
func postValidate(t *testing.T, addr string, req trust.ValidateRequest) (int, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the attacker does not care
	resp, err := c.Post("https://"+addr+trust.ValidatePath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestAttackerCannotTakeOverAJoinedLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := startTetherd(t, tetherd, "rootcluster.example.com")
	leaf := startTetherd(t, tetherd, "leafcluster.example.com", "--insecure")
	mustCtl(t, tetherctl, leaf, "create", file(t, trustedClusterYAML("rootcluster.example.com", inviteToken(t, tetherctl, root), root.addr)))
	mustCtl(t, tetherctl, root, "update", "rc/leafcluster.example.com", "--set-labels=env=prod")
	before := caOf(t, cas(t, tetherctl, root), "leafcluster.example.com", "host")

	// The attacker runs its own cluster under the leaf's name and holds a valid token.
	attacker := startTetherd(t, tetherd, "leafcluster.example.com", "--insecure")
	out, err := ctl(t, tetherctl, attacker, "create", file(t, trustedClusterYAML("rootcluster.example.com", inviteToken(t, tetherctl, root), root.addr)))
	if err == nil || !strings.Contains(out, "tetherctl rm rc/leafcluster.example.com") || !strings.Contains(out, "HTTP 409") {
		t.Fatalf("attacker's join: %v\n%s", err, out)
	}
	// The same with the name in another case and a trailing dot, sent by hand.
	evil, _ := ca.NewCluster("leafcluster.example.com", "")
	h, _ := evil.Host.Resource(false)
	wire := trust.FromResource(h)
	wire.ClusterName = "LEAFCLUSTER.Example.com."
	if status, body := postValidate(t, root.addr, trust.ValidateRequest{Token: inviteToken(t, tetherctl, root), CAs: []trust.CA{wire}}); status != 409 {
		t.Fatalf("upper-case name: HTTP %d %s", status, body)
	}
	after := caOf(t, cas(t, tetherctl, root), "leafcluster.example.com", "host")
	if before.Spec.ActiveKeys.SSH[0].PublicKey != after.Spec.ActiveKeys.SSH[0].PublicKey {
		t.Fatal("the leaf's host CA was replaced")
	}
	if rc := mustCtl(t, tetherctl, root, "get", "rc/leafcluster.example.com"); !strings.Contains(rc, "env: prod") {
		t.Fatalf("labels changed:\n%s", rc)
	}
	if n := strings.Count(root.stderr.String(), `msg="leaf cluster joined"`); n != 1 {
		t.Fatalf("the root logged %d joins:\n%s", n, root.stderr)
	}

	// The real leaf re-joins the way the message says.
	mustCtl(t, tetherctl, leaf, "rm", "trusted_cluster/rootcluster.example.com")
	mustCtl(t, tetherctl, root, "rm", "rc/leafcluster.example.com")
	mustCtl(t, tetherctl, leaf, "create", file(t, trustedClusterYAML("rootcluster.example.com", inviteToken(t, tetherctl, root), root.addr)))
	if got := caOf(t, cas(t, tetherctl, root), "leafcluster.example.com", "host"); got.Spec.ActiveKeys.SSH[0].PublicKey != before.Spec.ActiveKeys.SSH[0].PublicKey {
		t.Fatal("re-join stored another key")
	}
}

func TestAttackerReusingTheRootsOwnKeyIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := startTetherd(t, tetherd, "rootcluster.example.com")
	own := cas(t, tetherctl, root)
	for _, typ := range []string{"user", "host"} {
		t.Run("roots_"+typ+"_key_as_a_leaf_host_CA", func(t *testing.T) {
			key := caOf(t, own, "rootcluster.example.com", typ)
			wire := trust.CA{Type: "host", ClusterName: "evil-" + typ + ".example.com", SSHPublicKeys: []string{key.Spec.ActiveKeys.SSH[0].PublicKey}}
			status, body := postValidate(t, root.addr, trust.ValidateRequest{Token: inviteToken(t, tetherctl, root), CAs: []trust.CA{wire}})
			if status != 400 || !strings.Contains(body, "belongs to one cluster and CA type") {
				t.Fatalf("HTTP %d %s", status, body)
			}
			if rc := mustCtl(t, tetherctl, root, "get", "rc"); strings.Contains(rc, "evil") {
				t.Fatalf("remote cluster created:\n%s", rc)
			}
			if got := cas(t, tetherctl, root); len(got) != len(own) {
				t.Fatalf("%d CAs after the attack, %d before", len(got), len(own))
			}
		})
	}
	t.Run("a_guessed_token_names_nothing", func(t *testing.T) {
		wire := trust.CA{Type: "host", ClusterName: "evil.example.com", SSHPublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0vHyT5kI3I0fQy1xqF6nF3y8t8k5x7QK8o3Z4n1m2p"}}
		status, body := postValidate(t, root.addr, trust.ValidateRequest{Token: "0123456789abcdef0123456789abcdef", CAs: []trust.CA{wire}})
		if status != 403 || !strings.Contains(body, trust.RejectedTokenMessage) {
			t.Fatalf("HTTP %d %s", status, body)
		}
	})
}

func TestMaliciousRootCannotCutOffTheLeafsUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	leaf := startTetherd(t, tetherd, "leafcluster.example.com", "--insecure")
	leafUser := caOf(t, cas(t, tetherctl, leaf), "leafcluster.example.com", "user")
	fakeCA, _ := ca.NewCluster("evilroot.example.com", "")
	fh, _ := fakeCA.Host.Resource(false)
	// The "root" answers with its host CA and the leaf's own user CA key as its user CA.
	answer := trust.ValidateResponse{CAs: []trust.CA{trust.FromResource(fh),
		{Type: "user", ClusterName: "evilroot.example.com", SSHPublicKeys: []string{leafUser.Spec.ActiveKeys.SSH[0].PublicKey}}}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(answer)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	out, err := ctl(t, tetherctl, leaf, "create", file(t, trustedClusterYAML("evilroot.example.com", "0123456789abcdef0123456789abcdef", addr)))
	if err == nil || !strings.Contains(out, "belongs to one cluster and CA type") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	for _, c := range cas(t, tetherctl, leaf) {
		if c.Spec.ClusterName == "evilroot.example.com" {
			t.Fatal("the malicious root's CAs were stored")
		}
	}
	if out, err := ctl(t, tetherctl, leaf, "get", "trusted_cluster/evilroot.example.com"); err == nil {
		t.Fatalf("the trust was stored:\n%s", out)
	}
}

func TestBoundLabelledTokenAndATokenlessLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts processes")
	}
	tetherd, tetherctl := build(t, t.TempDir())
	root := startTetherd(t, tetherd, "rootcluster.example.com")
	leaf := startTetherd(t, tetherd, "leafcluster.example.com", "--insecure")
	other := startTetherd(t, tetherd, "other.example.com", "--insecure")
	token := inviteToken(t, tetherctl, root, "--name=leafcluster.example.com", "--labels", "env=prod")

	// Another cluster holding the bound token is refused as with any rejected token.
	out, err := ctl(t, tetherctl, other, "create", file(t, trustedClusterYAML("rootcluster.example.com", token, root.addr)))
	if err == nil || !strings.Contains(out, trust.RejectedTokenMessage) {
		t.Fatalf("other cluster with the bound token: %v\n%s", err, out)
	}
	mustCtl(t, tetherctl, leaf, "create", file(t, trustedClusterYAML("rootcluster.example.com", token, root.addr)))
	if rc := mustCtl(t, tetherctl, root, "get", "rc/leafcluster.example.com"); !strings.Contains(rc, "env: prod") {
		t.Fatalf("the token's labels did not reach the remote cluster:\n%s", rc)
	}
	mustCtl(t, tetherctl, root, "update", "rc/leafcluster.example.com", "--set-labels=env=stage")
	if rc := mustCtl(t, tetherctl, root, "get", "rc/leafcluster.example.com"); !strings.Contains(rc, "env: stage") {
		t.Fatalf("the root admin could not change the labels:\n%s", rc)
	}
	// The leaf keeps no token, not even with --with-secrets, nor anywhere in its data.
	tc := mustCtl(t, tetherctl, leaf, "get", "trusted_cluster/rootcluster.example.com", "--with-secrets")
	if strings.Contains(tc, token) || !strings.Contains(tc, "token: \"\"") {
		t.Fatalf("stored trust:\n%s", tc)
	}
	// The original file (token included) still disables and enables the trust.
	orig := trustedClusterYAML("rootcluster.example.com", token, root.addr)
	mustCtl(t, tetherctl, leaf, "create", "--force", file(t, strings.Replace(orig, "enabled: true", "enabled: false", 1)))
	mustCtl(t, tetherctl, leaf, "create", "--force", file(t, orig))
	if out := mustCtl(t, tetherctl, leaf, "get", "tc", "--format", "json"); !strings.Contains(out, `"enabled": true`) {
		t.Fatalf("not enabled again:\n%s", out)
	}
}
