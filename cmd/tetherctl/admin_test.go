package main

import (
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/ca"

	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/state/redistest"
)

// TestVersion: tetherctl version and --version print the version a release sets with
// -ldflags -X (checked on a real build), and the development default otherwise.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := run(t, args...)
		if err != nil || !strings.HasPrefix(out, "tetherctl 0.1.0-dev ") || !strings.Contains(out, runtime.Version()) {
			t.Fatalf("tetherctl %v: %v %q", args, err, out)
		}
	}
	out, err := run(t, "version", "--format", "json")
	var v map[string]any
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v["version"] != "0.1.0-dev" {
		t.Fatalf("version --format json: %v %q", err, out)
	}
	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "tetherctl")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/tetherproject/tether/internal/buildinfo.Version=v1.2.3-test", ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		b, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.HasPrefix(string(b), "tetherctl v1.2.3-test ") {
			t.Fatalf("built tetherctl %v: %v %q", args, err, b)
		}
	}
}

// TestUnknownCommandsFail: a missing or unknown subcommand, or a stray argument, is an
// error with a message (exit status 1 from main), never the help with status 0.
func TestUnknownCommandsFail(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "tetherctl needs a command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "tetherctl"`},
		{[]string{"tokens"}, "tetherctl tokens needs a command: one of add, ls, rm"},
		{[]string{"tokens", "lst"}, `unknown command "lst" for "tetherctl tokens"`},
		{[]string{"users", "del", "alice"}, `unknown command "del" for "tetherctl users"`},
		{[]string{"policy", "bild"}, `unknown command "bild" for "tetherctl policy"`},
		{[]string{"version", "extra"}, "unknown command"},
		{[]string{"status", "extra"}, "unknown command"},
		{[]string{"get", "role", "user"}, `tetherctl get takes one argument, got "role" "user": tetherctl get (KIND[/NAME][,KIND[/NAME]...] | all)`},
		{[]string{"tokens", "ls", "extra"}, "unknown command"},
		{[]string{"get", "--bogus", "role"}, "unknown flag: --bogus"},
		// tctl habits: an unknown command with flags names the command, not a flag.
		{[]string{"unlock", "--user=alice", "--ttl=1h"}, `unknown command "unlock" for "tetherctl"`},
		{[]string{"gett", "role", "--data-dir", "/x"}, `unknown command "gett" for "tetherctl"`},
		{[]string{"tokens", "lst", "--format=json"}, `unknown command "lst" for "tetherctl tokens"`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"help", "tokens", "bogus"}, "unknown help topic"},
		{[]string{"help", "bogus"}, "unknown help topic"},
	} {
		out, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tetherctl %v: %v (output %q), want an error saying %q", tc.args, err, out, tc.want)
		}
	}
	// Asking for help is not an error.
	for _, args := range [][]string{{"tokens", "--help"}, {"help", "tokens"}} {
		if out, err := run(t, args...); err != nil || !strings.Contains(out, "Available Commands") {
			t.Errorf("%v: %v %q", args, err, out)
		}
	}
}

// TestGlobalFlagsBeforeHelp: the flags that say how to reach a cluster (--data-dir, -i,
// --auth-server) may come anywhere, as tctl's global flags do; help asked for after them
// is help (exit status 0), not "unknown flag: --data-dir" (gaps brief, item 2), and they
// alone still need a command.
func TestGlobalFlagsBeforeHelp(t *testing.T) {
	dir := t.TempDir()
	var cases [][]string
	for _, g := range [][]string{{"--data-dir", dir}, {"--data-dir=" + dir}, {"-i", "id.pem"}, {"-iid.pem"}, {"--identity=id.pem"}, {"--auth-server", "127.0.0.1:3080"}, {"--auth-server=127.0.0.1:3080", "--data-dir", dir}} {
		for _, h := range [][]string{{"--help"}, {"-h"}, {"status", "--help"}, {"users", "--help"}, {"users", "add", "-h"}, {"help"}, {"help", "status"}, {"help", "users", "add"}} {
			before := append(append([]string{}, g...), h...)
			cases = append(cases, before)
			if h[0] != "help" && h[0][0] != '-' {
				// after the command, and after the subcommand
				cases = append(cases, append(append([]string{h[0]}, g...), h[1:]...))
				cases = append(cases, append(append(append([]string{}, h[:len(h)-1]...), g...), h[len(h)-1]))
			}
		}
	}
	for _, args := range cases {
		out, err := run(t, args...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("tetherctl %s: %v, output %q; want the help", strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{{"--data-dir", dir}, {"-i", "id.pem"}, {"--auth-server=127.0.0.1:3080"}} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "tetherctl needs a command") {
			t.Errorf("tetherctl %s: %v, want tetherctl needs a command", strings.Join(args, " "), err)
		}
	}
}

// TestTokenValueMustBeUnguessable: tokens add --value refuses fewer than 32 hexadecimal
// characters (128 bits) before calling the cluster.
func TestTokenValueMustBeUnguessable(t *testing.T) {
	for _, v := range []string{"", "abc", "0123456789abcdef0123456789abcde", strings.Repeat("z", 40), strings.Repeat("a", 31) + " ", strings.Repeat("a", 257)} {
		_, err := run(t, "tokens", "add", "--type=node", "--value", v, "--data-dir", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "128 bits") {
			t.Errorf("--value %q: %v, want a refusal naming 128 bits", v, err)
		}
	}
}

// TestAdminToolOnACluster runs the tctl habits against a running cluster: status, get all
// and comma lists, text tables, tokens add --value and --format json, ls --format, and
// a Teleport export created with one warning.
func TestAdminToolOnACluster(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	root.mustCtl(t, "create", writeFile(t, "r.yaml", "kind: role\nversion: v5\nmetadata: {name: dev}\nspec:\n  allow:\n    logins: [ubuntu]\n    node_labels: {env: [staging, dev]}\n  deny:\n    logins: [root]\n"))
	root.mustCtl(t, "users", "add", "alice", "--roles", "dev")

	t.Run("status", func(t *testing.T) {
		out := root.mustCtl(t, "status")
		for _, want := range []string{"Cluster          root.example.com", "Storage          embedded", "Remote clusters  0 online, 0 offline",
			"user CA          SHA256:", "host CA          SHA256:", "TLS CA           sha256:", "(standby)", "TLS CA file      " + root.dataDir} {
			if !strings.Contains(out, want) {
				t.Errorf("status does not show %q:\n%s", want, out)
			}
		}
		var st web.StatusResponse
		if err := json.Unmarshal([]byte(root.mustCtl(t, "status", "--format", "json")), &st); err != nil {
			t.Fatal(err)
		}
		if st.ClusterName != "root.example.com" || len(st.CAs) != 4 || st.Storage != "embedded" || len(st.TLSCAFiles) != 1 {
			t.Fatalf("status json: %+v", st)
		}
		// The file named is the CA that signs the web API's certificate: pinning it works.
		data, err := os.ReadFile(st.TLSCAFiles[0])
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := pem.Decode(data); b == nil || !strings.Contains(st.TLSCAPEM, strings.TrimSpace(string(data))) {
			t.Fatalf("TLS CA file %s does not hold the PEM status reports", st.TLSCAFiles[0])
		}
	})

	t.Run("get_comma_list_and_all", func(t *testing.T) {
		out := root.mustCtl(t, "get", "role,user")
		if !strings.Contains(out, "kind: role") || !strings.Contains(out, "kind: user") || strings.Index(out, "kind: user") < strings.Index(out, "name: dev") {
			t.Fatalf("get role,user:\n%s", out)
		}
		out = root.mustCtl(t, "get", "role/dev,user/alice", "--format", "json")
		var docs []map[string]any
		if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 2 {
			t.Fatalf("get role/dev,user/alice --format json: %v\n%s", err, out)
		}
		out = root.mustCtl(t, "get", "all")
		for _, kind := range []string{"kind: role", "kind: user", "kind: cert_authority"} {
			if !strings.Contains(out, kind) {
				t.Errorf("get all lacks %s", kind)
			}
		}
		out = root.mustCtl(t, "get", "all", "--format", "text")
		for _, want := range []string{"Role ", "User ", "Cluster          Type    Keys", "root.example.com user    1 active, 0 additional", "root.example.com tls     1 active, 0 additional", "root.example.com openssh 1 active, 0 additional"} {
			if !strings.Contains(out, want) {
				t.Errorf("get all --format text lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Name Status") || strings.Contains(out, "Host Name Address") {
			t.Errorf("get all --format text shows empty kinds:\n%s", out)
		}
		if _, err := root.ctl(t, "get", "role,,user"); err == nil || !strings.Contains(err.Error(), "empty item") {
			t.Errorf("get role,,user: %v", err)
		}
		if _, err := root.ctl(t, "get", "role,bogus"); err == nil || !strings.Contains(err.Error(), `unknown resource kind "bogus"`) {
			t.Errorf("get role,bogus: %v", err)
		}
	})

	t.Run("text_tables", func(t *testing.T) {
		out := root.mustCtl(t, "get", "role/dev,user", "--format", "text")
		want := "Role Allowed to login as Node Labels       Cluster Labels Denied logins\n" +
			"---- ------------------- ----------------- -------------- -------------\n" +
			"dev  ubuntu              env=[staging dev]                root\n" +
			"\n" +
			"User  Roles\n" +
			"----- -----\n" +
			"alice dev\n"
		if out != want {
			t.Fatalf("get role/dev,user --format text:\n%s\nwant:\n%s", out, want)
		}
		if out := root.mustCtl(t, "get", "rc", "--format", "text"); out != "Name Status Cluster Labels Last Heartbeat Transport\n---- ------ -------------- -------------- ---------\n" {
			t.Fatalf("get rc --format text:\n%q", out)
		}
		if out := root.mustCtl(t, "get", "node", "--format", "text"); !strings.HasPrefix(out, "Host Name Address Labels Status Last Heartbeat\n") {
			t.Fatalf("get node --format text:\n%q", out)
		}
	})

	t.Run("tokens_add_value_and_formats", func(t *testing.T) {
		value := "0123456789abcdef0123456789abcdef"
		out := root.mustCtl(t, "tokens", "add", "--type=trusted_cluster", "--ttl=10m", "--value", value, "--format", "json", "--labels", "env=prod")
		var added struct {
			Token   string            `json:"token"`
			Roles   []string          `json:"roles"`
			Labels  map[string]string `json:"labels"`
			Expires string            `json:"expires"`
		}
		if err := json.Unmarshal([]byte(out), &added); err != nil || added.Token != value || added.Roles[0] != "trusted_cluster" || added.Labels["env"] != "prod" || added.Expires == "" {
			t.Fatalf("tokens add --value --format json: %v\n%s", err, out)
		}
		// The admin-chosen token works: it is listed and a second add of it is refused.
		// As tctl tokens ls --format=json|yaml: the token resources (kind, metadata, spec).
		var items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Roles []string `json:"roles"`
			} `json:"spec"`
		}
		lsJSON := root.mustCtl(t, "tokens", "ls", "--format", "json")
		if err := json.Unmarshal([]byte(lsJSON), &items); err != nil || len(items) != 1 || items[0].Kind != "token" ||
			!strings.HasPrefix(items[0].Metadata.Name, value[:4]) || strings.Contains(lsJSON, value) || len(items[0].Spec.Roles) != 1 || items[0].Spec.Roles[0] != "trusted_cluster" {
			t.Fatalf("tokens ls --format json: %v\n%s", err, lsJSON)
		}
		var y map[string]any
		lsYAML := root.mustCtl(t, "tokens", "ls", "--format", "yaml")
		if err := yaml.Unmarshal([]byte(lsYAML), &y); err != nil || y["kind"] != "token" || strings.Contains(lsYAML, value) {
			t.Fatalf("tokens ls --format yaml: %v\n%s", err, lsYAML)
		}
		if _, err := root.ctl(t, "tokens", "add", "--type=trusted_cluster", "--value", value); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("adding the same token twice: %v", err)
		}
		if out := root.mustCtl(t, "get", "token", "--format", "text"); !regexp.MustCompile(`(?m)^0123… +trusted_cluster +env=prod +\d\d \w+ \d\d`).MatchString(out) {
			t.Fatalf("get token --format text:\n%s", out)
		}
		if out := root.mustCtl(t, "tokens", "add", "--type=node", "--format", "json"); !regexp.MustCompile(`"token": "[0-9a-f]{32}"`).MatchString(out) {
			t.Fatalf("tokens add --format json:\n%s", out)
		}
	})

	t.Run("users_ls_formats", func(t *testing.T) {
		var docs []map[string]any
		if err := json.Unmarshal([]byte(root.mustCtl(t, "users", "ls", "--format", "json")), &docs); err != nil || len(docs) != 1 || docs[0]["metadata"].(map[string]any)["name"] != "alice" {
			t.Fatalf("users ls --format json: %v %v", err, docs)
		}
		if out := root.mustCtl(t, "users", "ls", "--format", "yaml"); !strings.Contains(out, "kind: user") || !strings.Contains(out, "name: alice") {
			t.Fatalf("users ls --format yaml:\n%s", out)
		}
		if _, err := root.ctl(t, "users", "ls", "--format", "xml"); err == nil || !strings.Contains(err.Error(), "use text, json or yaml") {
			t.Fatalf("users ls --format xml: %v", err)
		}
	})

	t.Run("teleport_export_is_created_with_one_warning", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(testenv.Root(t), "resource", "testdata", "teleport-tctl-get.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The leaf-side trusted_cluster would dial a root: keep the roles and the user.
		docs := strings.Split(string(data), "\n---\n")
		out := root.mustCtl(t, "create", "-f", writeFile(t, "tctl.yaml", strings.Join(docs[:3], "\n---\n")+"\n"))
		if strings.Count(out, "WARNING:") != 1 || !strings.Contains(out, `role "dev": spec.allow.rules`) || !strings.Contains(out, `user "alice": spec.created_by`) {
			t.Fatalf("create of a tctl export: one warning listing the ignored fields expected:\n%s", out)
		}
		// Fields Tether ignores are not stored; the forwarding options it models are.
		if out := root.mustCtl(t, "get", "role/auditor"); strings.Contains(out, "client_idle_timeout") || strings.Contains(out, "revision") ||
			!strings.Contains(out, "forward_agent: true") || !strings.Contains(out, "port_forwarding: false") {
			t.Fatalf("stored role: Teleport's ignored fields dropped, forward_agent and port_forwarding kept, expected:\n%s", out)
		}
		_, err = root.ctl(t, "create", writeFile(t, "bad.yaml", "kind: role\nversion: v7\nmetadata: {name: x, revision: abc}\nspec:\n  allow:\n    node_labels: {'*': '*'}\n    node_labels_expression: 'labels.env == \"dev\"'\n  deny:\n    db_labels: {env: prod}\n    lgins: [root]\n"))
		if err == nil || !strings.Contains(err.Error(), "3 problems") || !strings.Contains(err.Error(), "bad.yaml:7:5") ||
			!strings.Contains(err.Error(), "bad.yaml:9:5") || !strings.Contains(err.Error(), `bad.yaml:10:5: role "x": unknown field "lgins"`) {
			t.Fatalf("create of a role that would widen access: %v", err)
		}
		if _, err := root.ctl(t, "get", "role/x"); err == nil {
			t.Fatal("the refused role was created")
		}
	})
}

// TestTetherdUsesRedisTLS: tetherd built from tether.yaml keeps its resources in a
// redis-server reached on its TLS port, which requires a client certificate; status says
// redis, and what tetherctl creates is on the server.
func TestTetherdUsesRedisTLS(t *testing.T) {
	pki, err := redistest.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Config{TLS: &redistest.TLS{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CAFile, RequireClientCert: true,
	}})
	c := startCluster(t, "redis-tls.example.com", "storage:\n  type: redis\n  redis:\n    addr: "+srv.TLSAddr()+
		"\n    tls:\n      enabled: true\n      ca_file: "+pki.CAFile+"\n      cert_file: "+pki.ClientCert+
		"\n      key_file: "+pki.ClientKey+"\n      server_name: "+redistest.ServerName+"\n")
	c.mustCtl(t, "create", writeFile(t, "r.yaml", "kind: role\nversion: v5\nmetadata: {name: over-tls}\nspec: {}\n"))
	if out := c.mustCtl(t, "status"); !strings.Contains(out, "Storage          redis") {
		t.Fatalf("status:\n%s", out)
	}
	if !strings.Contains(c.mustCtl(t, "get", "role/over-tls"), "name: over-tls") {
		t.Fatal("role not read back")
	}
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(srv.Port()), "--scan", "--pattern", "tether/*role/over-tls").Output()
	if err != nil || !strings.Contains(string(out), "over-tls") {
		t.Fatalf("the role is not on the TLS-only server: %v %q", err, out)
	}
}

// TestLeafPinsTheFileStatusNames: the TLS CA file `tetherctl status` names on the root is
// what a leaf's root_ca_file needs to join without --insecure; a leaf pinning another
// cluster's CA is refused at the TLS handshake and nothing is joined.
func TestLeafPinsTheFileStatusNames(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	var st web.StatusResponse
	if err := json.Unmarshal([]byte(root.mustCtl(t, "status", "--format", "json")), &st); err != nil || len(st.TLSCAFiles) != 1 {
		t.Fatalf("status: %v %+v", err, st)
	}
	stranger := startCluster(t, "stranger.example.com", "")
	var other web.StatusResponse
	if err := json.Unmarshal([]byte(stranger.mustCtl(t, "status", "--format", "json")), &other); err != nil || len(other.TLSCAFiles) != 1 {
		t.Fatalf("status: %v %+v", err, other)
	}
	visitor := "kind: role\nversion: v5\nmetadata: {name: visitor}\nspec: {allow: {logins: [visitor], node_labels: {'*': '*'}}}\n"

	wrong := startCluster(t, "wrong.example.com", "root_ca_file: "+other.TLSCAFiles[0]+"\n")
	wrong.mustCtl(t, "create", writeFile(t, "v.yaml", visitor))
	_, err := wrong.ctl(t, "create", writeFile(t, "tc.yaml", trustedClusterYAML(root, addToken(t, root), true)))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a leaf pinning another cluster's CA joined: %v", err)
	}
	if out := root.mustCtl(t, "get", "rc", "--format", "text"); strings.Contains(out, "wrong.example.com") {
		t.Fatalf("the refused leaf is a remote cluster:\n%s", out)
	}

	leaf := startCluster(t, "leaf.example.com", "root_ca_file: "+st.TLSCAFiles[0]+"\n")
	leaf.mustCtl(t, "create", writeFile(t, "v.yaml", visitor))
	leaf.mustCtl(t, "create", writeFile(t, "tc.yaml", trustedClusterYAML(root, addToken(t, root), true)))
	// The leaf's tunnel comes up: online, over QUIC.
	testenv.Eventually(t, 15*time.Second, func() error {
		if out := root.mustCtl(t, "status"); !strings.Contains(out, "Remote clusters  1 online, 0 offline") {
			return fmt.Errorf("root status after the join:\n%s", out)
		}
		if out := root.mustCtl(t, "get", "rc", "--format", "text"); !regexp.MustCompile(`(?m)^leaf\.example\.com\s+online\s.*\squic\s*$`).MatchString(out) {
			return fmt.Errorf("get rc --format text:\n%s", out)
		}
		if out := leaf.mustCtl(t, "status"); !regexp.MustCompile(`(?m)^Tunnel\s+root\.example\.com: connected over quic \(ssh for sessions: idle\) since \S+ to 127\.0\.0\.1:\d+$`).MatchString(out) {
			return fmt.Errorf("leaf status:\n%s", out)
		}
		return nil
	})
}

// TestTetherdUploadsDecisionLogsSecurely: with upload_token_file, upload_ca_file and masks
// in tether.yaml, tetherd's decisions reach an HTTPS collector whose certificate only the
// CA file vouches for, with the token from the file, and the configured mask applied.
func TestTetherdUploadsDecisionLogsSecurely(t *testing.T) {
	type upload struct {
		auth   string
		events []map[string]any
	}
	got := make(chan upload, 100)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var evs []map[string]any
		if err := json.NewDecoder(zr).Decode(&evs); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got <- upload{auth: r.Header.Get("Authorization"), events: evs}
	}))
	defer srv.Close()
	dir := t.TempDir()
	caFile := writeFile(t, "collector-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("decision-log-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := startCluster(t, "root.example.com", "")
	leaf := startCluster(t, "leaf.example.com", "policy:\n  decision_log:\n    upload_url: "+srv.URL+"\n    upload_token_file: "+tokenFile+
		"\n    upload_ca_file: "+caFile+"\n    masks:\n      - path: /input/node/labels\n")
	if _, err := decideOnLeaf(t, leaf, rootUserCert(t, root)); err == nil {
		t.Fatal("a stranger's certificate verified")
	}
	// A certificate the leaf's own user CA signed reaches the engine.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ssh.NewPublicKey(pub)
	cert, err := leaf.gw.Auth().CA().User.IssueUser(ca.UserCertRequest{PublicKey: key, Username: "alice", Logins: []string{"visitor"}, Roles: []string{"access"}, TTL: time.Hour, MaxTTL: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decideOnLeaf(t, leaf, cert); err != nil {
		t.Fatal(err)
	}
	// Audit events share the uploads (they have a type and no input): read uploads until
	// one holds a decision.
	deadline := time.After(20 * time.Second)
	for {
		select {
		case u := <-got:
			if u.auth != "Bearer decision-log-secret" {
				t.Fatalf("Authorization %q", u.auth)
			}
			var in map[string]any
			for _, ev := range u.events {
				if _, ok := ev["decision_id"]; ok {
					in, _ = ev["input"].(map[string]any)
					break
				}
			}
			if in == nil {
				continue
			}
			node, _ := in["node"].(map[string]any)
			if node == nil || node["labels"] != nil || node["name"] != "ip-172-3-2-205" {
				t.Fatalf("event input %v: want node labels erased by the configured mask", in)
			}
			return
		case <-deadline:
			t.Fatal("no decision in the decision log uploads within 20s")
		}
	}
}
