package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		{[]string{"login", "--proxy=root.example.com", "--user=alice"}, "must be HOST:PORT"},
		{[]string{"login", "--proxy=root.example.com:3080"}, "--user is required"},
		{[]string{"login", "--proxy=root.example.com:3080", "--user=../x"}, "is not a user name"},
		{[]string{"status"}, "not logged in: run tether login"},
		{[]string{"status", "-f", "xml"}, "use text or json"},
		{[]string{"clusters"}, "not logged in: run tether login"},
		{[]string{"clusters", "extra"}, "unknown command"},
		{[]string{"users", "signup"}, "accepts 1 arg"},
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
		User string `json:"user"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	a := doc.Active
	if a.Username != "alice" || strings.Join(a.Roles, ",") != "access,full-access" || a.Cluster != "root.example.com" ||
		a.ProfileURL != "https://root.example.com:3080" || strings.Join(a.Logins, ",") != "visitor" || a.ValidUntil != "2026-12-02T14:00:00Z" || doc.User != "alice" {
		t.Fatalf("status -f json: %s", b)
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
