package forward

import (
	"testing"

	"github.com/tetherproject/tether/policy"
)

// TestDenyForSaysWhatWasDenied: a forwarding denial names the forwarding and carries the
// policy's reasons; a session denial keeps Teleport's message.
func TestDenyForSaysWhatWasDenied(t *testing.T) {
	t.Parallel()
	id := policy.Cert{Username: "alice", SigningCA: policy.SigningCA{Cluster: "root.example.com"}}
	for _, tc := range []struct {
		action  string
		reasons []string
		want    string
	}{
		{policy.ActionSSHPortForward, []string{`port forwarding is forbidden by role "r" (options.port_forwarding: false)`},
			`port forwarding denied for alice@root.example.com as visitor@leaf.example.com: port forwarding is forbidden by role "r" (options.port_forwarding: false)`},
		{policy.ActionSSHAgentForward, nil, "agent forwarding denied for alice@root.example.com as visitor@leaf.example.com: access denied"},
		{policy.ActionSSHSession, []string{"no"}, "user alice@root.example.com is not authorized to login as visitor@leaf.example.com: no"},
	} {
		if got := denyFor(tc.action, id, "visitor", "leaf.example.com", tc.reasons); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.action, got, tc.want)
		}
	}
}
