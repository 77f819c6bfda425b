package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
)

// fetchNodes asks the proxy for the nodes of cluster p's user may reach.
func fetchNodes(cmd *cobra.Command, p *Profile, cluster string) ([]web.UserNode, error) {
	cfg, err := p.clientTLS()
	if err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(p.CertPath())
	if err != nil {
		return nil, fmt.Errorf("reading your SSH certificate: %v; run tether login again", err)
	}
	h := http.Header{}
	h.Set(web.SSHCertHeader, strings.TrimSpace(string(cert)))
	var resp web.UserNodesResponse
	if err := newAPIClient(p.Proxy, cfg).call(ctxOf(cmd), http.MethodGet, web.UserNodesPath+"?cluster="+url.QueryEscape(cluster), nil, &resp, h); err != nil {
		return nil, err
	}
	return resp.Nodes, nil
}

func lsCommand() *cobra.Command {
	var cluster, format string
	cmd := &cobra.Command{
		Use:   "ls [--cluster=X] [label=value...] [-f text|json]",
		Short: "List the nodes you may reach and the logins you may use on them",
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("-f %q: use text or json", format)
			}
			want := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: filter with label=value", a)
				}
				want[k] = v
			}
			p, err := loadProfile()
			if err != nil {
				return err
			}
			if cluster == "" {
				cluster = p.SelectedCluster
				if cluster == "" {
					cluster = p.Cluster
				}
			}
			nodes, err := fetchNodes(cmd, p, cluster)
			if err != nil {
				return err
			}
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
			w := cmd.OutOrStdout()
			if format == "json" {
				if out == nil {
					out = []web.UserNode{}
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
			fmt.Fprintln(tw, "Node Name\tCluster\tLabels\tLogins")
			for _, n := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Cluster, labelString(n.Labels), strings.Join(n.Logins, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster to list (default: the selected cluster)")
	cmd.Flags().StringVarP(&format, "format", "f", "text", "text or json")
	return cmd
}

// findNodeCluster finds the cluster of node among the clusters the user may see, when it
// is in exactly one; otherwise it says which clusters match. Leaf node lists are not
// forwarded by the root yet, so a leaf's node is found only with --cluster.
func findNodeCluster(cmd *cobra.Command, p *Profile, node string) (string, error) {
	clusters, err := fetchClusters(cmd, p)
	if err != nil {
		return "", err
	}
	var matches, unlisted []string
	for _, c := range clusters {
		if c.Name != p.Cluster && strings.HasSuffix(node, "."+c.Name) {
			return c.Name, nil
		}
		nodes, err := fetchNodes(cmd, p, c.Name)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			unlisted = append(unlisted, c.Name)
			continue
		}
		if err != nil {
			return "", err
		}
		for _, n := range nodes {
			if n.Name == node || n.Name+"."+c.Name == node {
				matches = append(matches, c.Name)
				break
			}
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(matches) > 1:
		return "", fmt.Errorf("node %s is in more than one cluster (%s): choose one with --cluster", node, strings.Join(matches, ", "))
	case len(unlisted) > 0:
		return "", fmt.Errorf("node %s is not among the nodes you may reach in %s; if it is in %s, give --cluster", node, p.Cluster, strings.Join(unlisted, " or "))
	}
	return "", fmt.Errorf("node %s is not among the nodes you may reach: run tether ls to see them", node)
}
