package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tetherproject/tether/gateway/auth"

	"gopkg.in/yaml.v3"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
)

// userGet calls a user endpoint of the proxy (the TLS client certificate and the SSH
// certificate from login) and decodes its answer into out.
func userGet(ctx context.Context, p *Profile, path string, out any) error {
	cfg, err := p.clientTLS()
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(p.CertPath())
	if err != nil {
		return fmt.Errorf("reading your SSH certificate: %v; run tether login again", err)
	}
	h := http.Header{}
	h.Set(web.SSHCertHeader, strings.TrimSpace(string(cert)))
	return newAPIClient(p.Proxy, cfg).call(ctx, http.MethodGet, path, nil, out, h)
}

// fetchNodes asks the proxy for the nodes of cluster p's user may reach; for a leaf the
// root asks the leaf, which answers from its own policy.
func fetchNodes(ctx context.Context, p *Profile, cluster string) ([]web.UserNode, error) {
	var resp web.UserNodesResponse
	if err := userGet(ctx, p, web.UserNodesPath+"?cluster="+url.QueryEscape(cluster), &resp); err != nil {
		return nil, err
	}
	return resp.Nodes, nil
}

// clusterQueryTimeout bounds one cluster's answer when tether asks several at once.
const clusterQueryTimeout = 25 * time.Second

// nodesOf is one cluster's node list, or why it could not be had.
type nodesOf struct {
	cluster string
	nodes   []web.UserNode
	err     error
}

// fetchAllNodes asks for the node lists of clusters in parallel, each within
// clusterQueryTimeout; results come in the order of clusters.
func fetchAllNodes(ctx context.Context, p *Profile, clusters []string) []nodesOf {
	out := make([]nodesOf, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, clusterQueryTimeout)
			defer cancel()
			nodes, err := fetchNodes(cctx, p, c)
			out[i] = nodesOf{cluster: c, nodes: nodes, err: err}
		}()
	}
	wg.Wait()
	return out
}

func lsCommand() *cobra.Command {
	var cluster, format string
	cmd := &cobra.Command{
		Use:   "ls [--cluster=X] [label=value...] [-f text|json|yaml|names]",
		Short: "List the nodes you may reach and the logins you may use on them",
		Long: `List the nodes of a cluster you may reach and the logins you may use on them, as
that cluster's own policy decides.

-f json prints what tsh ls --format=json prints: a JSON array of node resources,
{"kind": "node", "version": "v2", "metadata": {"name", "labels"}, "spec": {"hostname",
"addr"}}: metadata.name is the name tether ssh takes; spec.hostname is the node's host
name or, when it has none, its name.
What only Tether says is under "tether": {"cluster", "logins"}. -f yaml prints the same
resources in YAML; -f names prints one node name a line (the name tether ssh takes).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" && format != "yaml" && format != "names" {
				return fmt.Errorf("-f %q: use text, json, yaml or names", format)
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
				cluster = p.defaultCluster()
			}
			nodes, err := fetchNodes(ctxOf(cmd), p, cluster)
			if err != nil {
				return err
			}
			return printNodes(cmd.OutOrStdout(), nodesWithLabels(nodes, want), format)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster to list (default: the selected cluster)")
	cmd.Flags().StringVarP(&format, "format", "f", "text", "text; json or yaml (node resources, as tsh ls --format=json|yaml); names (one node name a line)")
	return cmd
}

// findNodeCluster finds the cluster of node among the clusters the user may see (the
// root and every visible leaf, asked in parallel, each leaf answering from its own
// policy): one match is the answer; several name the clusters to choose from with
// --cluster; none says where it looked. Clusters that could not be asked are reported
// on stderr and are fatal only when nothing matched; a cluster that refused the user its
// list says why in the "not found" message ("cluster X refused to list its nodes: locked
// by lock ...").
func findNodeCluster(cmd *cobra.Command, p *Profile, node string) (string, error) {
	clusters, err := fetchClusters(cmd, p)
	if err != nil {
		return "", err
	}
	var names []string
	for _, c := range clusters {
		names = append(names, c.Name)
	}
	switch c := clusterOfName(node, names); {
	case c == p.Cluster:
		// NODE.ROOT: the root's node, found by its name (a node may be named with dots).
		names = []string{c}
	case c != "":
		return c, nil
	}
	var matches, searched, refused, failed []string
	for _, r := range fetchAllNodes(ctxOf(cmd), p, names) {
		var denied *apiError
		switch {
		case errors.As(r.err, &denied) && denied.Status == http.StatusForbidden:
			// The cluster (or the root for it) refused the user a list: a lock, an
			// untrusted or unmapped certificate. Its reason is why nothing was found there.
			refused = append(refused, r.err.Error())
			continue
		case r.err != nil:
			failed = append(failed, r.err.Error())
			continue
		}
		searched = append(searched, r.cluster)
		for _, n := range r.nodes {
			if n.Name == node || n.Name == nodeOfName(node, r.cluster) {
				matches = append(matches, r.cluster)
				break
			}
		}
	}
	switch {
	case len(matches) == 1:
		for _, f := range append(refused, failed...) {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: not searched: %s\n", f)
		}
		return matches[0], nil
	case len(matches) > 1:
		opts := make([]string, len(matches))
		for i, m := range matches {
			opts[i] = "--cluster=" + m
		}
		return "", fmt.Errorf("node %s is in more than one cluster (%s): choose one with %s", node, strings.Join(matches, ", "), strings.Join(opts, " or "))
	}
	msg := fmt.Sprintf("node %s not found in clusters %s", node, strings.Join(searched, ", "))
	switch {
	case len(searched) == 0 && len(refused) > 0:
		msg = fmt.Sprintf("node %s not found", node)
	case len(searched) == 0:
		msg = fmt.Sprintf("node %s not found: no cluster could be searched", node)
	}
	for _, r := range refused {
		msg += "; " + r
	}
	if len(failed) > 0 {
		msg += "; not searched: " + strings.Join(failed, "; ")
	}
	return "", errors.New(msg + " (tether ls --cluster=NAME lists a cluster's nodes)")
}

// clusterOfName is the cluster that node names as NODE.CLUSTER (the cluster's name in any
// case), or "" when it names none.
// The longest matching cluster name wins: db.root.example.com is root.example.com's, not
// that of a leaf named example.com (as the proxy reads ProxyJump's NODE.CLUSTER).
func clusterOfName(node string, clusters []string) string {
	best := ""
	for _, c := range clusters {
		if nodeOfName(node, c) != node && len(c) > len(best) {
			best = c
		}
	}
	return best
}

// nodeResource is a node as tsh ls --format=json prints it (Teleport's node resource,
// kind node, version v2), with what only Tether says about it under "tether".
type nodeResource struct {
	Kind     string `json:"kind"`
	Version  string `json:"version"`
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		// Hostname is the node's host name, or its name when it has none. tether ssh
		// takes the node's name (metadata.name), which differs from it for a node
		// registered with a host name of its own.
		Hostname string `json:"hostname"`
		Addr     string `json:"addr"`
	} `json:"spec"`
	Tether struct {
		// Cluster is the node's cluster, the --cluster to reach it with.
		Cluster string `json:"cluster"`
		// Logins are the logins the user may use on the node, as the cluster's policy
		// decided.
		Logins []string `json:"logins"`
	} `json:"tether"`
}

func nodeResourceOf(n web.UserNode) nodeResource {
	r := nodeResource{Kind: "node", Version: "v2"}
	r.Metadata.Name, r.Metadata.Labels = n.Name, n.Labels
	if r.Metadata.Labels == nil {
		r.Metadata.Labels = map[string]string{}
	}
	r.Spec.Hostname, r.Spec.Addr = n.Hostname, n.Addr
	if r.Spec.Hostname == "" {
		r.Spec.Hostname = n.Name
	}
	r.Tether.Cluster, r.Tether.Logins = n.Cluster, n.Logins
	if r.Tether.Logins == nil {
		r.Tether.Logins = []string{}
	}
	return r
}

// printNodes writes nodes as format says: a table, or a JSON array of node resources
// in the shape tsh ls --format=json prints.
func printNodes(w io.Writer, nodes []web.UserNode, format string) error {
	switch format {
	case "json", "yaml":
		out := make([]nodeResource, len(nodes))
		for i, n := range nodes {
			out[i] = nodeResourceOf(n)
		}
		if format == "yaml" { // yaml.v3 names the fields as the JSON tags do (lower case)
			return yaml.NewEncoder(w).Encode(out)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "names": // the names tether ssh takes, one a line
		for _, n := range nodes {
			if _, err := fmt.Fprintln(w, auth.TerminalSafe(n.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	var rows [][]string
	for _, n := range nodes {
		addr := n.Addr
		if addr == "" {
			addr = n.Hostname
		}
		rows = append(rows, []string{n.Name, addr, labelString(n.Labels), strings.Join(n.Logins, ",")})
	}
	printTable(w, []string{"Node Name", "Address", "Labels", "Logins"}, rows)
	return nil
}
