package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// TestSSHByLabels: tether ssh login@key=value[,key=value] runs the command on every node
// of the cluster with those labels that the user may reach, as tsh ssh does, with each
// line under the node's name; one matching node is an ordinary session; the cluster still
// decides for each node.
func TestSSHByLabels(t *testing.T) {
	c := newSSHCluster(t)
	tetherctl := c.tetherctl
	node2 := runOpenSSHD(t, c.keygen, func(args ...string) string { return c.root.ctl(t, tetherctl, args...) }, "node2")
	doc := fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node2\n  labels:\n    env: test\n    tier: b\nspec:\n  addr: %s\n  hostname: node2\n", node2.addr)
	c.root.ctl(t, tetherctl, "create", writeTemp(t, doc))

	for _, tc := range []struct {
		name             string
		args             []string
		wantCode         int
		wantOut, wantErr []string
		exactOut         string
		notOut, notErr   []string
		stdin            string
	}{
		{
			name:    "runs_on_every_node_with_the_label_each_line_under_its_name",
			args:    []string{"ssh", "--cluster=" + c.cluster, c.login + "@env=test", "echo hi; echo there"},
			wantOut: []string{"[node1] hi\n[node1] there\n", "[node2] hi\n[node2] there\n"},
		},
		{
			name:    "without_cluster_the_selected_cluster_as_tether_ls",
			args:    []string{"ssh", c.login + "@env=test", "echo hi >&2"},
			wantErr: []string{"[node1] hi\n", "[node2] hi\n"},
		},
		{
			name:     "every_label_must_match_and_one_node_is_an_ordinary_session",
			args:     []string{"ssh", c.login + "@env=test,tier=b", "echo one; exit 3"},
			wantCode: 3,
			exactOut: "one\n",
		},
		{
			name:     "the_first_failing_node_gives_the_exit_status_and_the_failures_are_named",
			args:     []string{"ssh", c.login + "@env=test", "test $(hostname) = nobody || exit 4"},
			wantCode: 4,
			wantErr:  []string{"2 of 2 nodes did not succeed: node1 (exit 4), node2 (exit 4)"},
		},
		{
			name:     "the_cluster_decides_for_each_node",
			args:     []string{"ssh", "daemon@env=test", "echo ran"},
			wantCode: 255,
			wantErr:  []string{"[node1] ERROR:", "[node2] ERROR:", "not authorized"},
			notOut:   []string{"ran"},
		},
		{
			name:     "one_node_by_name_denied_exits_255_as_openssh",
			args:     []string{"ssh", "--cluster=" + c.cluster, "daemon@node1", "echo ran"},
			wantCode: 255,
			wantErr:  []string{"ERROR:", "not authorized"},
			notOut:   []string{"ran"},
		},
		{
			// OpenSSH's -n: the command reads nothing (while read h; do tether ssh -n
			// ...; done < hosts keeps its list); without it, stdin is the command's.
			name:     "dash_n_gives_the_command_no_input_as_openssh",
			args:     []string{"ssh", "-n", "--cluster=" + c.cluster, c.login + "@node1", "cat; echo done"},
			stdin:    "from-stdin\n",
			exactOut: "done\n",
		},
		{
			name:     "without_dash_n_the_command_reads_stdin",
			args:     []string{"ssh", "--cluster=" + c.cluster, c.login + "@node1", "cat; echo done"},
			stdin:    "from-stdin\n",
			exactOut: "from-stdin\ndone\n",
		},
		{
			name:     "dash_q_keeps_tethers_notes_off_stderr",
			args:     []string{"ssh", "-q", "-o", "ConnectTimeout=5", "--cluster=" + c.cluster, c.login + "@node1", "echo ok"},
			exactOut: "ok\n",
			notErr:   []string{"ignoring"},
		},
		{
			name:     "no_node_with_the_labels_says_so",
			args:     []string{"ssh", c.login + "@env=prod", "echo ran"},
			wantCode: 255,
			wantErr:  []string{"no node you may reach in cluster " + c.cluster + " has the labels env=prod"},
			notOut:   []string{"ran"},
		},
		{
			name:     "a_shell_needs_one_node",
			args:     []string{"ssh", c.login + "@env=test"},
			wantCode: 255,
			wantErr:  []string{"2 nodes in cluster " + c.cluster + " have the labels env=test: give a command"},
		},
		{
			name:     "forwarding_needs_one_node",
			args:     []string{"ssh", "-L", "17022:127.0.0.1:22", c.login + "@env=test", "true"},
			wantCode: 255,
			wantErr:  []string{"need one node"},
		},
		{
			name:     "a_bad_selector_says_how_to_write_one",
			args:     []string{"ssh", c.login + "@env=test,=x", "true"},
			wantCode: 255,
			wantErr:  []string{"key=value[,key=value...]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, runErr := c.alice.run(t, tc.stdin, tc.args...)
			code := exitCode(t, runErr)
			t.Logf("tether %s\nexit %d\nstdout:\n%sstderr:\n%s", strings.Join(tc.args, " "), code, out, errOut)
			fail := func(what string) {
				t.Helper()
				t.Fatalf("%s\nexit %d\nstdout:\n%s\nstderr:\n%s", what, code, out, errOut)
			}
			if code != tc.wantCode {
				fail(fmt.Sprintf("exit status %d, want %d", code, tc.wantCode))
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					fail(fmt.Sprintf("stdout lacks %q", w))
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					fail(fmt.Sprintf("stderr lacks %q", w))
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(out, w) {
					fail(fmt.Sprintf("stdout has %q", w))
				}
			}
			for _, w := range tc.notErr {
				if strings.Contains(errOut, w) {
					fail(fmt.Sprintf("stderr has %q", w))
				}
			}
			if tc.exactOut != "" && out != tc.exactOut {
				fail(fmt.Sprintf("stdout is not exactly %q", tc.exactOut))
			}
		})
	}
}

// TestSSHStdioForward: tether ssh -W host:port joins stdin and stdout to host:port as the
// node reaches it, as OpenSSH's ssh -W (a ProxyCommand "tether ssh -W %h:%p node" for
// hosts behind a node); the cluster decides it as any forward. Found by the acceptance pass:
// tether ssh -W failed with "unknown shorthand flag: 'W'".
func TestSSHStdioForward(t *testing.T) {
	c := newSSHCluster(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, _ := bufio.NewReader(conn).ReadString('\n')
				_, _ = io.WriteString(conn, "echo: "+line)
			}()
		}
	}()
	addr := ln.Addr().String()
	out, errOut, err := c.alice.run(t, "hello\n", "ssh", "-W", addr, "--cluster="+c.cluster, c.login+"@node1")
	if code := exitCode(t, err); code != 0 || out != "echo: hello\n" {
		t.Fatalf("tether ssh -W %s: exit %d, stdout %q, stderr %q", addr, code, out, errOut)
	}
	// A login no role allows: refused by the cluster, nothing relayed, status 255.
	out, errOut, err = c.alice.run(t, "hello\n", "ssh", "-W", addr, "--cluster="+c.cluster, "daemon@node1")
	if code := exitCode(t, err); code != 255 || out != "" || !strings.Contains(errOut, "not authorized") {
		t.Fatalf("tether ssh -W as daemon: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"ssh", "-W", addr, c.login + "@node1", "true"},
		{"ssh", "-W", "no-port", c.login + "@node1"},
		{"ssh", "-W", addr, "-L", "1:127.0.0.1:2", c.login + "@node1"},
	} {
		_, errOut, err := c.alice.run(t, "", args...)
		if code := exitCode(t, err); code != 255 || !strings.Contains(errOut, "-W") {
			t.Errorf("tether %s: exit %d, stderr %q; want 255 with what -W takes", strings.Join(args, " "), code, errOut)
		}
	}
}
