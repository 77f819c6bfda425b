package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/cli"
	"github.com/tetherproject/tether/internal/relaycopy"
	"github.com/tetherproject/tether/resource"
)

// proxyPipeSize is the buffer tether proxy ssh asks for on the pipes OpenSSH gives its
// ProxyCommand (Linux's default is 64 KiB, two of OpenSSH's 32 KiB channel packets, so
// ssh waits for tether proxy ssh to drain the pipe every other packet, one more turn of
// its poll loop each time). With 1 MiB (the default /proc/sys/fs/pipe-max-size) an
// OpenSSH scp through the path cost ssh and scp half the CPU per MiB
// (docs/ARCHITECTURE.md, "scp through a leaf: where the CPU goes").
const proxyPipeSize = 1 << 20

func proxyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "proxy", Short: "Connect OpenSSH to nodes through the proxy"}
	var cluster string
	sshCmd := &cobra.Command{
		Use:   "ssh [--cluster=X] [login@]node[.cluster][:port]",
		Short: "Pipe stdin and stdout to a node's SSH server through the proxy (OpenSSH's ProxyCommand: tether proxy ssh --cluster=X %r@%h:%p)",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := args[0]
			if i := strings.LastIndexByte(target, '@'); i >= 0 {
				target = target[i+1:]
			}
			host, portStr, err := net.SplitHostPort(target)
			if err != nil {
				host, portStr = target, "22"
			}
			port, err := strconv.Atoi(portStr)
			if err != nil || port <= 0 || port > 65535 {
				return fmt.Errorf("%q: the port must be a number", args[0])
			}
			if host == "" || strings.HasPrefix(host, ".") {
				return fmt.Errorf("%q names no node: give [login@]node[.cluster][:port]", args[0])
			}
			p, err := loadProfile()
			if err != nil {
				return err
			}
			if cluster == "" {
				cluster = p.defaultCluster()
			}
			node, err := proxyNodeOfName(host, cluster)
			if err != nil {
				return err
			}
			signer, _, err := userSigner(p)
			if err != nil {
				return err
			}
			conn, exit, closeAll, err := proxyNodeConn(ctxOf(cmd), p, signer, node, port, cluster, os.Stderr)
			if err != nil {
				return err
			}
			defer closeAll()
			growPipe(os.Stdin, proxyPipeSize)
			growPipe(os.Stdout, proxyPipeSize)
			go func() {
				_, _ = relaycopy.Copy(conn, os.Stdin)
				_ = conn.(interface{ CloseWrite() error }).CloseWrite()
			}()
			_, _ = relaycopy.Copy(os.Stdout, conn)
			conn.Close()
			if code := <-exit; code != 0 {
				return &exitError{Code: code}
			}
			return nil
		},
	}
	sshCmd.Flags().StringVar(&cluster, "cluster", "", "the node's cluster (default: the selected cluster)")
	cmd.AddCommand(sshCmd)
	return cmd
}

// proxyNodeOfName is the node that host, the %h OpenSSH gives or a name typed on the
// command line, names in cluster: host without ".CLUSTER", compared whatever its case
// (OpenSSH lowercases %h; cluster names are lowercase). A final dot is refused with what to
// type instead: OpenSSH checks the node's host certificate against the name with the dot,
// which no certificate names, so the session would fail after the proxy had been asked.
func proxyNodeOfName(host, cluster string) (string, error) {
	if trimmed, ok := strings.CutSuffix(host, "."); ok && trimmed != "" {
		return "", fmt.Errorf("%q ends in a dot: type %s (OpenSSH checks the node's host certificate against the name as typed, and certificates name nodes without the final dot)", host, trimmed)
	}
	return nodeOfName(host, cluster), nil
}

// nodeOfName is name without ".CLUSTER", the cluster's name compared whatever its case
// (cluster names are lowercase; users and OpenSSH's %h may type it otherwise); name as is
// when it does not end so.
func nodeOfName(name, cluster string) string {
	suffix := "." + resource.NormalizeClusterName(cluster)
	if len(name) > len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix) {
		return name[:len(name)-len(suffix)]
	}
	return name
}

// userNodeName is a node name as a user typed it for tether ssh or scp, without a final
// dot: tether checks the node's host certificate itself, under the cluster's name, so the
// fully-qualified form works as it does for DNS names.
func userNodeName(typed string) string {
	if n, ok := strings.CutSuffix(typed, "."); ok && n != "" {
		return n
	}
	return typed
}
