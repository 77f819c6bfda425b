package main

import (
	osuser "os/user"
	"testing"

	"github.com/tetherproject/tether/gateway/auth"
)

// tether ssh reads its destination as OpenSSH and tsh do: -l wins over login@, and with
// neither the login is the local user's name.
func TestSSHDestination(t *testing.T) {
	me, err := osuser.Current()
	if err != nil {
		t.Skip("no local user:", err)
	}
	for _, tc := range []struct {
		arg, flag, login, node string
		bad                    bool
	}{
		{arg: "visitor@node-east", login: "visitor", node: "node-east"},
		{arg: "node-east", flag: "visitor", login: "visitor", node: "node-east"},
		{arg: "ubuntu@node-east", flag: "visitor", login: "visitor", node: "node-east"},
		{arg: "node-east", login: me.Username, node: "node-east"},
		{arg: "node-east.leaf", login: me.Username, node: "node-east.leaf"},
		{arg: "@node-east", bad: true},
		{arg: "visitor@", bad: true},
		{arg: "", flag: "visitor", bad: true},
	} {
		login, node, err := sshDestination(tc.arg, tc.flag)
		if tc.bad {
			if err == nil {
				t.Errorf("%q -l %q: accepted as %s@%s", tc.arg, tc.flag, login, node)
			}
			continue
		}
		if err != nil || login != tc.login || node != tc.node {
			t.Errorf("%q -l %q: %q %q %v, want %q %q", tc.arg, tc.flag, login, node, err, tc.login, tc.node)
		}
	}
}

func TestMaxPasswordLengthIsTheClusters(t *testing.T) {
	if maxPasswordLength != auth.MaxPasswordLength {
		t.Fatalf("tether refuses passwords over %d bytes, the cluster over %d", maxPasswordLength, auth.MaxPasswordLength)
	}
}

// A "--" right after the destination ends the options, as OpenSSH's getopt reads ssh
// host -- ls -la: tether ssh sent it to the node as part of the command ("sh: 0: Illegal
// option --" from the demo's node-east). A "--" further on is the command's own.
func TestSSHCommandLineDropsTheDashDashAfterTheDestination(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"visitor@node", "--", "ls", "-la"}, "ls -la"},
		{[]string{"visitor@node", "ls", "-la"}, "ls -la"},
		{[]string{"visitor@node", "--", "--", "x"}, "-- x"},
		{[]string{"visitor@node", "echo", "--"}, "echo --"},
		{[]string{"visitor@node", "--"}, ""},
		{[]string{"visitor@node"}, ""},
	} {
		if got := sshCommandLine(tc.args); got != tc.want {
			t.Errorf("sshCommandLine(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
