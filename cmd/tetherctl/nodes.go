package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

// nodesCommand is tctl's `nodes add` (a node token and the node section that joins a
// Tether node agent with it, or an OpenSSH server registered) and `nodes ls`.
func nodesCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{Use: "nodes", Short: "Add Tether node agents or OpenSSH servers to a running cluster, list its nodes"}
	conn.register(cmd)
	var (
		ttl    time.Duration
		labels string
		name   string
		addr   string
	)
	add := &cobra.Command{
		Use:   "add [--name=NODE] [--labels k=v] [--ttl=30m] | add --name=NODE --addr=HOST:PORT [--labels k=v]",
		Short: "Create a node token and print the node section of tether.yaml that joins with it; with --addr, register an OpenSSH server",
		Long: `Without --addr: creates a node token and prints the node section of tether.yaml with
which a Tether node agent (tetherd start) joins the cluster.

With --addr: registers an OpenSSH server (no agent, no token) as the node NAME at HOST:PORT,
and prints what its sshd needs: a host certificate of the cluster's host CA for NAME
(tetherctl auth sign) and the cluster's openssh CA as TrustedUserCAKeys (tetherctl auth
export --type=openssh). The openssh CA signs only the cluster's own 5-minute certificates
for one decided connection, so users' login certificates do not open the server.
The cluster only ever dials a registered node's address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkTokenTTL(ttl); err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if addr != "" {
				if cmd.Flags().Changed("ttl") {
					return errors.New("--ttl is the node token's lifetime; an OpenSSH server (--addr) joins with no token: leave --ttl out")
				}
				doc, err := openSSHNode(name, addr, lbls)
				if err != nil {
					return err
				}
				c, err := conn.client()
				if err != nil {
					return err
				}
				if _, err := c.Create(ctxOf(cmd), doc, "nodes add", false); err != nil {
					return err
				}
				return printOpenSSHNodeAdded(cmd.OutOrStdout(), name, addr, conn.dataDir)
			}
			c, err := conn.client()
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
	add.Flags().StringVar(&name, "name", "", "the node's name, for the printed configuration (default: its host name); required with --addr")
	add.Flags().StringVar(&addr, "addr", "", "register an OpenSSH server listening at HOST:PORT as the node --name (no token)")
	ls := listCommand(&conn, resource.KindNode, "List the cluster's nodes (as get node; text: Host, Name, Address, Labels, Status, Last Heartbeat)",
		func(w io.Writer, docs []string) error {
			return printTables(w, []kindDocs{{kind: resource.KindNode, docs: docs}})
		})
	cmd.AddCommand(add, ls)
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

// openSSHNode is the node resource of an OpenSSH server at addr.
func openSSHNode(name, addr string, labels map[string]string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("--addr registers an OpenSSH server: give its node name with --name=NODE too")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("--addr %q must be HOST:PORT, the OpenSSH server's address as the cluster dials it, for example --addr=10.0.0.5:22", addr)
	}
	n := resource.Node{Kind: resource.KindNode, Version: "v2",
		Metadata: resource.Metadata{Name: name, Labels: labels},
		Spec:     resource.NodeSpec{Addr: addr, Hostname: name}}
	return yaml.Marshal(&n)
}

func printOpenSSHNodeAdded(w io.Writer, name, addr, dataDir string) error {
	_, err := fmt.Fprintf(w, `node %q has been registered: the cluster dials %s for it.
On that server, give sshd a host certificate for %s and the cluster's openssh CA:

  tetherctl --data-dir %s auth sign --host=%s --pub=/etc/ssh/ssh_host_ed25519_key.pub > /etc/ssh/ssh_host_ed25519_key-cert.pub
  tetherctl --data-dir %s auth export --type=openssh > /etc/ssh/tether_openssh_ca.pub

and in sshd_config:

  HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub
  TrustedUserCAKeys /etc/ssh/tether_openssh_ca.pub
`, name, addr, name, dataDir, name, dataDir)
	return err
}
