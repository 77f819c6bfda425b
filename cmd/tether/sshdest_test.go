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
