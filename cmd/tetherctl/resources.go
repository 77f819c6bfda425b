package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

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
		Args: cobra.ExactArgs(1),
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
			// Parse locally first: errors name the file and line without a round trip.
			if _, err := resource.Parse(data, args[0]); err != nil {
				return err
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
		Use:   "get KIND[/NAME]",
		Short: "Print resources of a running cluster (role, user, trusted_cluster, rc, cas, token, node, lock, oidc)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			if format != "yaml" && format != "json" {
				return fmt.Errorf("--format %q: use yaml or json", format)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			docs, err := c.Get(ctxOf(cmd), kind, name, withSecrets)
			if err != nil {
				return err
			}
			return printResources(cmd.OutOrStdout(), docs, format)
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&format, "format", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&withSecrets, "with-secrets", false, "include secrets (trusted_cluster tokens, CA private keys, OIDC client secrets)")
	return cmd
}

// printResources writes YAML documents separated by ---, or a JSON array.
func printResources(w io.Writer, docs []string, format string) error {
	if format == "json" {
		out := []any{}
		for _, d := range docs {
			var v any
			if err := yaml.Unmarshal([]byte(d), &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		b, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	for i, d := range docs {
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		fmt.Fprint(w, d)
		if !strings.HasSuffix(d, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}

func rmCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{
		Use:   "rm KIND/NAME",
		Short: "Delete a resource of a running cluster (rm trusted_cluster/ROOT on a leaf, rm rc/LEAF on a root end a trust)",
		Args:  cobra.ExactArgs(1),
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
		Args:  cobra.ExactArgs(1),
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
