package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/cli"
	"github.com/tetherproject/tether/resource"
)

func createCommand() *cobra.Command {
	var (
		conn  connFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "create [-f|--force] FILE",
		Short: "Create resources from a YAML file of one or more documents on a running cluster",
		Long: "Create resources from a YAML file of one or more documents. Without --force, a resource that " +
			"already exists is an error and nothing is written. On a leaf, creating a trusted_cluster " +
			"establishes trust with the root (its web_proxy_addr) using the invitation token.",
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(os.Stdin, resource.MaxInputSize+1))
			} else {
				data, err = readLimited(args[0])
			}
			if err != nil {
				return err
			}
			// Parse locally first: errors name the file and line without a round trip, and
			// the Teleport fields Tether ignores are listed once.
			_, warn, err := resource.ParseWithWarnings(data, args[0])
			if err != nil {
				return err
			}
			if warn != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", warn.String())
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			msgs, err := c.Create(ctxOf(cmd), data, args[0], force)
			for _, m := range msgs {
				fmt.Fprintln(cmd.OutOrStdout(), m)
			}
			return err
		},
	}
	conn.register(cmd)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite resources that exist")
	return cmd
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, resource.MaxInputSize+1))
}

func getCommand() *cobra.Command {
	var (
		conn        connFlags
		format      string
		withSecrets bool
	)
	cmd := &cobra.Command{
		Use:   "get (KIND[/NAME][,KIND[/NAME]...] | all)",
		Short: "Print resources of a running cluster (role, user, trusted_cluster, rc, cas, token, node, lock, oidc, or all)",
		Long: "Print resources of a running cluster. KIND is role, user, trusted_cluster, rc, cas, token, node, " +
			"lock or oidc; several may be given comma-separated (get role,user), and all prints every kind. " +
			"--format text prints tables as tctl does (rc, node, user, token and role get their own columns).",
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := parseGetRefs(args[0])
			if err != nil {
				return err
			}
			if format != "yaml" && format != "json" && format != "text" {
				return fmt.Errorf("--format %q: use yaml, json or text", format)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			var groups []kindDocs
			for _, ref := range refs {
				docs, err := c.Get(ctxOf(cmd), ref.kind, ref.name, withSecrets)
				if err != nil {
					return err
				}
				groups = append(groups, kindDocs{kind: ref.kind, docs: docs})
			}
			if format == "text" {
				return printTables(cmd.OutOrStdout(), groups)
			}
			var all []string
			for _, g := range groups {
				all = append(all, g.docs...)
			}
			return printResources(cmd.OutOrStdout(), all, format)
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&format, "format", "yaml", "output format: yaml, json or text")
	cmd.Flags().BoolVar(&withSecrets, "with-secrets", false, "include secrets (trusted_cluster tokens, CA private keys, OIDC client secrets)")
	return cmd
}

// allKinds are what get all prints, in this order.
var allKinds = []string{
	resource.KindRole, resource.KindUser, resource.KindTrustedCluster, resource.KindRemoteCluster,
	resource.KindCertAuthority, resource.KindToken, resource.KindNode, resource.KindLock, resource.KindOIDC,
}

type getRef struct{ kind, name string }

// parseGetRefs reads get's argument: KIND[/NAME] items separated by commas, or all.
func parseGetRefs(arg string) ([]getRef, error) {
	var refs []getRef
	seen := map[getRef]bool{}
	add := func(r getRef) {
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for _, part := range strings.Split(arg, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			return nil, fmt.Errorf("%q: an empty item in the list; write KIND[/NAME],KIND[/NAME] or all", arg)
		case strings.EqualFold(part, "all"):
			for _, k := range allKinds {
				add(getRef{kind: k})
			}
			continue
		}
		kind, name, err := parseRef(part, false)
		if err != nil {
			return nil, err
		}
		add(getRef{kind: kind, name: name})
	}
	return refs, nil
}

func rmCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{
		Use:   "rm KIND/NAME",
		Short: "Delete a resource of a running cluster (rm trusted_cluster/ROOT on a leaf, rm rc/LEAF on a root end a trust)",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			msg, err := c.Delete(ctxOf(cmd), kind, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	conn.register(cmd)
	return cmd
}

func updateCommand() *cobra.Command {
	var (
		conn      connFlags
		setLabels string
	)
	cmd := &cobra.Command{
		Use:   "update rc/NAME --set-labels k=v,...",
		Short: "Set a remote cluster's labels (root admins only; replaces all its labels)",
		Long: `Set a remote cluster's labels (root admins only; replaces all its labels). The roles'
cluster_labels decide, against these labels, which leaves a user of this root sees and
is routed to: a leaf they do not match reads as "not found".

That is this root's view only. A root user's certificate still works at the leaf's own
proxy when the leaf's role_map maps the user's roles, as in Teleport: to keep a root
user out of a leaf, the leaf's admin changes its role_map, disables or removes the
trust, or locks the user there (tetherctl lock on the leaf).`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			if kind != resource.KindRemoteCluster {
				return fmt.Errorf("update supports rc/NAME only")
			}
			if !cmd.Flags().Changed("set-labels") {
				return fmt.Errorf("nothing to update: give --set-labels key=value")
			}
			labels, err := parseLabels(setLabels)
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			if err := c.SetRemoteClusterLabels(ctxOf(cmd), name, labels); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Cluster %s has been updated\n", name)
			return nil
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&setLabels, "set-labels", "", "labels k=v,k2=v2 (replaces the existing ones)")
	return cmd
}
