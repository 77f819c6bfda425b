package main

import (
	"bytes"
	"strings"
	"testing"
)

// tether ssh -o takes OpenSSH's options as tsh ssh -o does (Key=Value or "Key Value", any
// case): ForwardAgent and RequestTTY act as -A, -t and -T; the options the profile and the
// cluster decide (host key checking, identity, ports, jump hosts) are said to be ignored,
// never silently weakened; a malformed or unknown one is an error. Found by the acceptance
// pass: tether ssh -o StrictHostKeyChecking=no failed with "unknown shorthand flag: 'o'".
func TestSSHOptions(t *testing.T) {
	for _, tc := range []struct {
		opts              []string
		agent, tty, noTTY bool
		wantWarn, wantErr string
		wantNoWarn        bool
	}{
		{opts: []string{"ForwardAgent=yes"}, agent: true, wantNoWarn: true},
		{opts: []string{"forwardagent yes"}, agent: true, wantNoWarn: true},
		{opts: []string{"ForwardAgent=no"}, wantNoWarn: true},
		{opts: []string{"RequestTTY=force"}, tty: true, wantNoWarn: true},
		{opts: []string{"RequestTTY=yes"}, tty: true, wantNoWarn: true},
		{opts: []string{"RequestTTY=no"}, noTTY: true, wantNoWarn: true},
		{opts: []string{"RequestTTY=auto"}, wantNoWarn: true},
		{opts: []string{"StrictHostKeyChecking=no"}, wantWarn: "ignoring -o StrictHostKeyChecking"},
		{opts: []string{"UserKnownHostsFile=/dev/null", "ServerAliveInterval=30"}, wantWarn: "ignoring -o UserKnownHostsFile"},
		{opts: []string{"ForwardAgent=maybe"}, wantErr: "ForwardAgent"},
		{opts: []string{"ForwardAgent"}, wantErr: "Key=Value"},
		{opts: []string{"=yes"}, wantErr: "Key=Value"},
		{opts: []string{"NoSuchOption=1"}, wantErr: "unknown"},
	} {
		var warn bytes.Buffer
		var o sshOptions
		err := o.apply(tc.opts, &warn)
		name := strings.Join(tc.opts, " ")
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("-o %s: %v, want an error with %q", name, err, tc.wantErr)
			}
			continue
		case err != nil:
			t.Errorf("-o %s: %v", name, err)
			continue
		}
		if o.agent != tc.agent || o.tty != tc.tty || o.noTTY != tc.noTTY {
			t.Errorf("-o %s: agent %v tty %v noTTY %v, want %v %v %v", name, o.agent, o.tty, o.noTTY, tc.agent, tc.tty, tc.noTTY)
		}
		if tc.wantNoWarn && warn.Len() != 0 || !strings.Contains(warn.String(), tc.wantWarn) {
			t.Errorf("-o %s: warned %q, want %q", name, warn.String(), tc.wantWarn)
		}
	}
	// The flag itself: -o reaches the profile check (no "unknown shorthand flag").
	t.Setenv("TETHER_HOME", t.TempDir())
	cmd := rootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"ssh", "-o", "StrictHostKeyChecking=no", "-o", "ForwardAgent yes", "visitor@node", "true"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("tether ssh -o ...: %v, want the sign-in advice", err)
	}
}
