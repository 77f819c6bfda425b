package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/gateway/auth"
)

func TestUnknownCommandsAndArgumentsFail(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `unknown command "frob" for "tether"`},
		{[]string{"users"}, "tether users needs a command"},
		{[]string{"users", "frob"}, `unknown command "frob" for "tether users"`},
		{[]string{"login", "a", "b"}, "accepts at most 1 arg"},
		{[]string{"login", "--user=alice"}, "--proxy is required"},
		{[]string{"login", "--proxy=https://root.example.com:3080/", "--user=alice"}, "must be HOST:PORT"},
		{[]string{"login", "--proxy=root.example.com:3080"}, "--user is required"},
		{[]string{"login", "--proxy=root.example.com:3080", "--user=../x"}, "is not a user name"},
		{[]string{"status"}, "not logged in: run tether login"},
		{[]string{"status", "-f", "xml"}, "use text, json or yaml"},
		{[]string{"clusters"}, "not logged in: run tether login"},
		{[]string{"clusters", "extra"}, "unknown command"},
		{[]string{"users", "signup", "tok1", "tok2"}, "accepts at most 1 arg"},
		{[]string{"help", "frob"}, "unknown help topic"},
		{[]string{"--frob"}, "unknown flag"},
		{[]string{"sshh", "--cluster=leaf", "visitor@node"}, `unknown command "sshh" for "tether"`},
		{[]string{"users", "frob", "--proxy=x:1"}, `unknown command "frob" for "tether users"`},
		{[]string{"ssh", "--frob", "visitor@node"}, "unknown flag: --frob"},
	} {
		cmd := rootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tether %s: err = %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil || !strings.HasPrefix(out.String(), "tether ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
}

func TestLogoutWithoutAProfileSaysSo(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir())
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"logout"})
	if err := cmd.Execute(); err != nil || !strings.Contains(out.String(), "not logged in") {
		t.Fatalf("logout: %v %q", err, out.String())
	}
}

// The seed guide (step 5) reads tsh status -f json with jq: '.active.roles | join(",")'
// and '.active.username'. tether status -f json carries the same "active" object.
func TestStatusJSONHasTshsActiveProfile(t *testing.T) {
	p := &Profile{Proxy: "root.example.com:3080", User: "alice", Cluster: "root.example.com", SelectedCluster: "root.example.com",
		Roles: []string{"access", "full-access"}, Logins: []string{"visitor"}, ValidBefore: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(statusDocument(p, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Active struct {
			ProfileURL string   `json:"profile_url"`
			Username   string   `json:"username"`
			Cluster    string   `json:"cluster"`
			Roles      []string `json:"roles"`
			Logins     []string `json:"logins"`
			ValidUntil string   `json:"valid_until"`
		} `json:"active"`
		Profiles *[]json.RawMessage `json:"profiles"`
		User     string             `json:"user"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	a := doc.Active
	if a.Username != "alice" || strings.Join(a.Roles, ",") != "access,full-access" || a.Cluster != "root.example.com" ||
		a.ProfileURL != "https://root.example.com:3080" || strings.Join(a.Logins, ",") != "visitor" || a.ValidUntil != "2026-12-02T14:00:00Z" || doc.User != "alice" {
		t.Fatalf("status -f json: %s", b)
	}
	// tsh's other profiles: Tether keeps one, so an empty list (scripts iterate it).
	if doc.Profiles == nil || len(*doc.Profiles) != 0 {
		t.Fatalf("status -f json has no empty \"profiles\" list: %s", b)
	}
	if _, err := exec.LookPath("jq"); err == nil { // the guide's own lines, when jq is installed
		for expr, want := range map[string]string{`.active.roles | join(",")`: "access,full-access", `.active.username`: "alice"} {
			cmd := exec.Command("jq", "-r", expr)
			cmd.Stdin = bytes.NewReader(b)
			out, err := cmd.Output()
			if err != nil || strings.TrimSpace(string(out)) != want {
				t.Errorf("jq -r '%s': %q %v, want %q", expr, out, err, want)
			}
		}
	}
}

// tether status on an expired profile shows it marked EXPIRED, as tsh status does, and
// still fails with the sign-in advice (nothing can be reached with it).
func TestStatusShowsAnExpiredProfile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("TETHER_HOME", home)
	p := &Profile{Proxy: "root.example.com:3080", User: "alice", Cluster: "root.example.com", SelectedCluster: "root.example.com",
		Roles: []string{"access"}, Logins: []string{"visitor"}, ValidBefore: time.Now().Add(-time.Hour)}
	p.dir = home
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"status", "-f", "json"}} {
		cmd := rootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "tether login") {
			t.Fatalf("%v: err = %v", args, err)
		}
		want := "[EXPIRED]"
		if len(args) > 1 {
			want = `"username": "alice"`
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "alice") {
			t.Fatalf("%v: output %q does not show the expired profile", args, out.String())
		}
	}
}

// tsh login with no flags signs in again where the profile points (tsh's habit, and the
// guide's "tsh login east" to select a leaf): the proxy and user come from the profile,
// expired or not. Until the acceptance pass tether said "--user is required".
func TestLoginWithoutFlagsUsesTheProfile(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := l.Addr().String()
	l.Close() // nothing answers: the sign-in stops at reaching the proxy
	home := t.TempDir()
	t.Setenv("TETHER_HOME", home)
	p := &Profile{Proxy: proxyAddr, User: "alice", Cluster: "root", ValidBefore: time.Now().Add(-time.Hour)}
	p.dir = home
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"login"}, {"login", "leaf-east"}, {"login", "--proxy=" + proxyAddr}} {
		cmd := rootCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetIn(strings.NewReader(""))
		cmd.SetArgs(args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "cannot reach the proxy at "+proxyAddr) {
			t.Errorf("tether %v: %v, want it to sign in at the profile's proxy", args, err)
		}
	}
	// Another proxy than the profile's: the user is not guessed.
	cmd := rootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"login", "--proxy=other.example.com:3080"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--user is required") {
		t.Errorf("login at another proxy without --user: %v", err)
	}
}

// A profile with less than half a minute left is still valid, and tether status must not call
// it EXPIRED while tether ssh still works with it (the acceptance pass saw "[EXPIRED]" 18 s
// before the end of a --ttl=1m sign-in: the minute rounding made 18 s zero).
func TestTimeLeftIsNotExpiredBeforeTheEnd(t *testing.T) {
	for _, c := range []struct {
		left time.Duration
		want string
	}{
		{20 * time.Second, "valid for 2"}, // 20s or 19s, depending on the clock between the calls
		{time.Second + 500*time.Millisecond, "valid for 1s"},
		{90 * time.Minute, "valid for 1h30m"},
		{12 * time.Hour, "valid for 12h0m"},
		{-time.Second, "EXPIRED"},
	} {
		if got := timeLeft(time.Now().Add(c.left)); !strings.HasPrefix(got, c.want) {
			t.Errorf("timeLeft(now+%v) = %q, want %q", c.left, got, c.want)
		}
	}
}

// tether login on a machine without a profile names both flags it needs at once: it
// asked for --user, then, given --user, for --proxy (found by the acceptance pass, as a
// new user typing tether login first).
func TestLoginWithoutProfileNamesBothFlags(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir())
	cmd := rootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs([]string{"login"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--proxy=HOST:PORT") || !strings.Contains(err.Error(), "--user=NAME") {
		t.Errorf("tether login without a profile: %v, want both --proxy=HOST:PORT and --user=NAME named", err)
	}
}

// tether clusters -f json carries tsh clusters -f json's field names (cluster_name,
// status, cluster_type, labels, selected) besides its own (name, type), so scripts
// written for tsh (jq -r '.[].cluster_name') work. Found by the acceptance pass: only
// name and type were there.
func TestClustersJSONHasTshFieldNames(t *testing.T) {
	rows := clustersJSON([]auth.ClusterInfo{
		{Name: "root.example.com", Type: "root", Status: "online"},
		{Name: "leaf-east", Type: "leaf", Status: "offline", Labels: map[string]string{"env": "demo"}},
	}, "leaf-east")
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"cluster_name": "root.example.com", "cluster_type": "root", "status": "online", "selected": false, "name": "root.example.com", "type": "root"},
		{"cluster_name": "leaf-east", "cluster_type": "leaf", "status": "offline", "selected": true, "name": "leaf-east", "type": "leaf", "labels": map[string]any{"env": "demo"}},
	}
	for i := range want {
		for k, v := range want[i] {
			if !reflect.DeepEqual(got[i][k], v) {
				t.Errorf("cluster %d: %s = %v, want %v (%s)", i, k, got[i][k], v, b)
			}
		}
	}
}

// TestTablesNeverSendControlCharactersToTheTerminal: labels come from servers (a node
// agent says what its labels are); a cell holding an escape sequence is printed escaped.
func TestTablesNeverSendControlCharactersToTheTerminal(t *testing.T) {
	var out strings.Builder
	printTable(&out, []string{"Node Name", "Labels"}, [][]string{
		{"n1", "env=prod\x1b]0;owned\x07"},
		{"n2", "a\u009b31m,b=\xff,c=\uFFFD,d=ü"},
	})
	got := out.String()
	if strings.ContainsFunc(got, func(r rune) bool { return r != '\n' && auth.IsControl(r) }) || !utf8.ValidString(got) {
		t.Fatalf("a control character or invalid UTF-8 reached the terminal: %q", got)
	}
	for _, want := range []string{`env=prod\x1b]0;owned\a`, `a\u009b31m,b=\xff,c=` + "\uFFFD,d=ü"} {
		if !strings.Contains(got, want) {
			t.Fatalf("table %q does not show %q", got, want)
		}
	}
}

// tether login --proxy=HOST without a port uses 3080, tsh's default web port and the one
// tetherd configure's sample listens on: the seed guide's tsh login
// --proxy=rootcluster.example.com --user=myuser, typed with tether, was refused ("must be
// HOST:PORT"). Nothing listens at 127.0.2.1, so the error names the address tried.
func TestLoginProxyWithoutAPortUsesTheDefaultWebPort(t *testing.T) {
	for _, proxy := range []string{"127.0.2.1", "127.0.2.1:3080"} {
		t.Setenv("TETHER_HOME", t.TempDir())
		cmd := rootCommand()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetIn(strings.NewReader(""))
		cmd.SetArgs([]string{"login", "--proxy=" + proxy, "--user=alice", "--insecure"})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "cannot reach the proxy at 127.0.2.1:3080") {
			t.Errorf("tether login --proxy=%s: %v, want the proxy 127.0.2.1:3080 tried", proxy, err)
		}
	}
	for _, bad := range []string{"https://127.0.2.1:3080/", "127.0.2.1:", ":3080", "a b"} {
		cmd := rootCommand()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetIn(strings.NewReader(""))
		cmd.SetArgs([]string{"login", "--proxy=" + bad, "--user=alice", "--insecure"})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("tether login --proxy=%q: %v, want the HOST:PORT error", bad, err)
		}
	}
}

// tether login checks --ttl before it reaches the proxy or asks anything: a mistyped
// --ttl was found out only after the password and the one-time code had been typed (the
// proxy refused it).
func TestLoginChecksTTLBeforeAskingThePassword(t *testing.T) {
	for _, ttl := range []string{"banana", "-5m", "0"} {
		t.Setenv("TETHER_HOME", t.TempDir())
		cmd := rootCommand()
		var stderr bytes.Buffer
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&stderr)
		cmd.SetIn(strings.NewReader("password\n123456\n"))
		cmd.SetArgs([]string{"login", "--proxy=127.0.2.1:3080", "--user=alice", "--insecure", "--ttl=" + ttl})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "--ttl") || strings.Contains(stderr.String(), "password") {
			t.Errorf("tether login --ttl=%s: %v (stderr %q), want a --ttl error before any question", ttl, err, stderr.String())
		}
	}
}

// tether proxy ssh with no node in its argument says so: 'visitor@' reached the proxy,
// which answered with its own request format ('no node named in ":22@root.example.com":
// ask for NODE:PORT@CLUSTER'). Found by the acceptance pass; checked before the profile is
// read, so no sign-in is needed here.
func TestProxySSHWithoutANodeSaysSo(t *testing.T) {
	for _, arg := range []string{"visitor@", "visitor@:22", "@", ".leaf-east:22"} {
		t.Setenv("TETHER_HOME", t.TempDir())
		cmd := rootCommand()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs([]string{"proxy", "ssh", arg})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "names no node") {
			t.Errorf("tether proxy ssh %q: %v, want 'names no node'", arg, err)
		}
	}
}

// tether ssh exits as OpenSSH's ssh does: with the remote command's status, or 255 when
// tether itself failed (not signed in, a bad option or forward, no destination, the node
// not found, the login denied), so a script tells a denied login from a command that exited 1
// (ssh -F with tether config already did). The other commands keep status 1. Found by the
// acceptance pass: a denied tether ssh exited 1, the same as a remote false.
func TestSSHFailuresExitWith255(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir())
	for _, tc := range []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"ssh", "visitor@node", "true"}, 255, "not logged in"},
		{[]string{"ssh", "--cluster=leaf", "visitor@node"}, 255, "not logged in"},
		{[]string{"ssh"}, 255, "needs a destination"},
		{[]string{"ssh", "--frob", "visitor@node"}, 255, "unknown flag: --frob"},
		{[]string{"ssh", "-L", "bogus", "visitor@node", "true"}, 255, "bad forwarding specification"},
		{[]string{"ssh", "-N", "visitor@node", "true"}, 255, "-N runs no command"},
		{[]string{"status"}, 1, "not logged in"},
		{[]string{"scp", "a", "b"}, 1, "no remote path"},
		{[]string{"frob"}, 1, "unknown command"},
	} {
		cmd := rootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		code, msg := exitStatus(err)
		if code != tc.wantCode || !strings.Contains(msg, tc.wantErr) {
			t.Errorf("tether %s: exit %d, message %q; want exit %d with %q", strings.Join(tc.args, " "), code, msg, tc.wantCode, tc.wantErr)
		}
	}
	// The remote command's status stays as it is; a refusal the proxy already printed
	// (an exitError under an sshFailure) is 255 with nothing more printed.
	for _, tc := range []struct {
		err      error
		wantCode int
		wantMsg  string
	}{
		{nil, 0, ""},
		{&exitError{Code: 3}, 3, ""},
		{&exitError{Code: 1}, 1, ""},
		{&sshFailure{&exitError{Code: 1}}, 255, ""},
		{errors.New("boom"), 1, "boom"},
		{&sshFailure{errors.New("denied")}, 255, "denied"},
	} {
		if code, msg := exitStatus(tc.err); code != tc.wantCode || msg != tc.wantMsg {
			t.Errorf("exitStatus(%v) = %d, %q; want %d, %q", tc.err, code, msg, tc.wantCode, tc.wantMsg)
		}
	}
}

// tether status and tether clusters take -f yaml as tsh status and tsh clusters do (and as
// tether ls does): the same document as -f json, key for key. Found by the acceptance pass
// (-f yaml was refused with "use text or json").
func TestStatusAndClustersTakeYAML(t *testing.T) {
	t.Setenv("TETHER_HOME", t.TempDir())
	for _, args := range [][]string{{"status", "-f", "yaml"}, {"clusters", "-f", "yaml"}, {"status", "--format=yaml"}} {
		cmd := rootCommand()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "not logged in") {
			t.Errorf("tether %s: %v, want the sign-in advice (yaml accepted)", strings.Join(args, " "), err)
		}
	}
	p := &Profile{Proxy: "root.example.com:3080", User: "alice", Cluster: "root.example.com", SelectedCluster: "root.example.com",
		Roles: []string{"access"}, Logins: []string{"visitor", "true"}, ValidBefore: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)}
	for name, doc := range map[string]any{
		"status": statusDocument(p, nil, nil),
		"clusters": clustersJSON([]auth.ClusterInfo{
			{Name: "root.example.com", Type: "root", Status: "online"},
			{Name: "leaf-east", Type: "leaf", Status: "online", Labels: map[string]string{"env": "demo", "n": "1"}},
		}, "root.example.com"),
	} {
		var js, ys bytes.Buffer
		if err := printDocument(&js, doc, "json"); err != nil {
			t.Fatal(err)
		}
		if err := printDocument(&ys, doc, "yaml"); err != nil {
			t.Fatal(err)
		}
		var fromJSON, fromYAML any
		if err := json.Unmarshal(js.Bytes(), &fromJSON); err != nil {
			t.Fatalf("%s: json: %v", name, err)
		}
		if err := yaml.Unmarshal(ys.Bytes(), &fromYAML); err != nil {
			t.Fatalf("%s: yaml: %v\n%s", name, err, ys.String())
		}
		// Through JSON again, so both sides hold the same Go types.
		b, err := json.Marshal(fromYAML)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var again any
		_ = json.Unmarshal(b, &again)
		if !reflect.DeepEqual(fromJSON, again) {
			t.Errorf("%s: -f yaml is not -f json's document:\n%s\nvs\n%s", name, ys.String(), js.String())
		}
		if strings.Contains(ys.String(), "{") || !strings.Contains(ys.String(), "\n") {
			t.Errorf("%s: -f yaml is not block YAML:\n%s", name, ys.String())
		}
	}
}
