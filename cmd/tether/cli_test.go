package main

import (
	"bytes"
	"strings"
	"testing"
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
