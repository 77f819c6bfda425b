package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/web"
)

// maxLabelSessions bounds the nodes tether ssh login@label=value runs a command on at
// once.
const maxLabelSessions = 8

// labelSelector reads the node part of tether ssh's destination as tsh reads it: with an
// "=" it is a label selector, key=value[,key=value...], and every label must match (a
// node's name never holds "="). ok is false for a node name.
func labelSelector(node string) (want map[string]string, ok bool, err error) {
	if !strings.Contains(node, "=") {
		return nil, false, nil
	}
	want = map[string]string{}
	for _, kv := range strings.Split(node, ",") {
		k, v, found := strings.Cut(kv, "=")
		if !found || k == "" {
			return nil, true, fmt.Errorf("%q: select nodes with key=value[,key=value...] (as tether ls key=value)", node)
		}
		want[k] = v
	}
	return want, true, nil
}

// nodesWithLabels are the nodes that have every label of want, by name.
func nodesWithLabels(nodes []web.UserNode, want map[string]string) []web.UserNode {
	var out []web.UserNode
next:
	for _, n := range nodes {
		for k, v := range want {
			if n.Labels[k] != v {
				continue next
			}
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// runOnNodes runs command as login on each node of cluster, at most maxLabelSessions at
// once, as tsh ssh login@label=value does: each line a node writes is printed with
// "[node] " before it (stdout to stdout, stderr to stderr), and a node that cannot be
// reached or refuses says so on stderr under its name. It returns an exitError with the
// status of the first node, by name, that did not succeed (255 for one that could not
// run the command), and prints which nodes failed when more than one ran.
func runOnNodes(ctx context.Context, p *Profile, login, cluster, command string, nodes []string, port int, stdout, stderr io.Writer) error {
	var mu sync.Mutex // one line at a time on each stream
	codes := make([]int, len(nodes))
	sem := make(chan struct{}, maxLabelSessions)
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// The names come from the cluster's answer: printed escaped, as tether ls does.
			prefix := "[" + auth.TerminalSafe(node) + "] "
			out := &linePrefixer{w: stdout, mu: &mu, prefix: prefix}
			errOut := &linePrefixer{w: stderr, mu: &mu, prefix: prefix}
			codes[i] = runOnNode(ctx, p, login, cluster, command, node, port, out, errOut)
			out.flush()
			errOut.flush()
		}()
	}
	wg.Wait()
	var failed []string
	first := 0
	for i, c := range codes {
		if c != 0 {
			failed = append(failed, fmt.Sprintf("%s (exit %d)", auth.TerminalSafe(nodes[i]), c))
			if first == 0 {
				first = c
			}
		}
	}
	if first == 0 {
		return nil
	}
	if len(nodes) > 1 {
		fmt.Fprintf(stderr, "tether: %d of %d nodes did not succeed: %s\n", len(failed), len(nodes), strings.Join(failed, ", "))
	}
	return &exitError{Code: first}
}

// runOnNode runs command on one node with no terminal and no input, and returns its exit
// status (255 when it could not be run, said on stderr).
func runOnNode(ctx context.Context, p *Profile, login, cluster, command, node string, port int, stdout, stderr io.Writer) int {
	client, closeAll, err := dialNode(ctx, p, login, node, port, cluster)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %s\n", err)
		return 255
	}
	defer closeAll()
	sess, err := client.NewSession()
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			fmt.Fprintf(stderr, "ERROR: %s\n", openFailure(err))
		} else {
			fmt.Fprintf(stderr, "ERROR: node %s in cluster %s refused the session\n", node, cluster)
		}
		return 255
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = stdout, stderr
	err = sess.Run(command)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Signal() == "":
		return ee.ExitStatus()
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "the remote command was killed by signal %s\n", ee.Signal())
	default:
		fmt.Fprintln(stderr, "the session ended without an exit status (the connection was closed: the certificate expired, or access was revoked)")
	}
	return 255
}

// linePrefixer writes what it is given line by line to w, each line with prefix before
// it, holding mu for each line so that lines of several nodes do not mix; flush writes a
// last line without its newline.
type linePrefixer struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

// maxPrefixedLine bounds what linePrefixer holds back waiting for a newline.
const maxPrefixedLine = 64 << 10

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) >= maxPrefixedLine {
				l.emit(l.buf, true)
				l.buf = l.buf[:0]
			}
			return len(b), nil
		}
		l.emit(l.buf[:i+1], false)
		l.buf = l.buf[i+1:]
	}
}

func (l *linePrefixer) flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf, true)
		l.buf = nil
	}
}

func (l *linePrefixer) emit(line []byte, addNewline bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, l.prefix)
	_, _ = l.w.Write(line)
	if addNewline {
		_, _ = io.WriteString(l.w, "\n")
	}
}
