package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

// nodesCommand is tctl's `nodes add`: a node token and the node section that joins a
// Tether node agent with it.
func nodesCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{Use: "nodes", Short: "Add Tether node agents to a running cluster"}
	conn.register(cmd)
	var (
		ttl    time.Duration
		labels string
		name   string
	)
	add := &cobra.Command{
		Use:   "add [--name=NODE] [--labels k=v] [--ttl=30m]",
		Short: "Create a node token and print the node section of tether.yaml that joins with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			resp, err := c.AddToken(ctxOf(cmd), web.TokenRequest{Roles: []string{resource.TokenRoleNode}, TTL: ttl.String(), Labels: lbls})
			if err != nil {
				return err
			}
			addr := conn.authServer
			if addr == "" {
				path := conn.identityFile
				if path == "" {
					path = filepath.Join(conn.dataDir, identity.FileName)
				}
				if id, err := identity.Load(path); err == nil {
					addr = id.AuthServer
				}
			}
			caFile := "/path/to/cluster-ca.pem"
			if st, err := c.Status(ctxOf(cmd)); err == nil && len(st.TLSCAFiles) > 0 {
				caFile = st.TLSCAFiles[0]
			}
			return printNodeAdded(cmd.OutOrStdout(), resp, ttl, name, addr, caFile)
		},
	}
	add.Flags().DurationVar(&ttl, "ttl", 30*time.Minute, "how long the token can be used")
	add.Flags().StringVar(&labels, "labels", "", "labels every node joining with the token gets, k=v,k2=v2 (they win over the node's own)")
	add.Flags().StringVar(&name, "name", "", "the node's name, for the printed configuration (default: its host name)")
	cmd.AddCommand(add)
	return cmd
}

func printNodeAdded(w io.Writer, resp web.TokenResponse, ttl time.Duration, name, addr, caFile string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "The invite token: %s\nThis token will expire in %s.\n\n", resp.Token, humanTTL(ttl))
	fmt.Fprintf(&b, "Run this on the new node: copy %s (the cluster's TLS CA) there, put this in its tether.yaml\n", caFile)
	b.WriteString("(data_dir keeps its identity: the token is needed for the first start only) and run\n`tetherd start -c tether.yaml`:\n\n")
	fmt.Fprintf(&b, "data_dir: /var/lib/tether\nnode:\n  enabled: true\n")
	if name != "" {
		fmt.Fprintf(&b, "  name: %s\n", name)
	}
	fmt.Fprintf(&b, "  listen_addr: 0.0.0.0:3022\n  public_addr: NODE-ADDRESS:3022\n  auth_server: %s\n  token: %s\n  ca_pin_file: %s\n", addr, resp.Token, caFile)
	_, err := io.WriteString(w, b.String())
	return err
}
