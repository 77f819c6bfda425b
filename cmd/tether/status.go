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
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/web"
)

// leafRoles asks, for every leaf in parallel (each within clusterQueryTimeout), which
// roles the leaf maps the user to: the root asks the leaf through its tunnel and the leaf
// evaluates its own role_map. A leaf that cannot be asked is reported as offline or
// unknown with the reason, never guessed at.
func leafRoles(ctx context.Context, p *Profile, leaves []string) []leafStatus {
	out := make([]leafStatus, len(leaves))
	var wg sync.WaitGroup
	for i, name := range leaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, clusterQueryTimeout)
			defer cancel()
			var resp web.UserRolesResponse
			err := userGet(cctx, p, web.UserRolesPath+"?cluster="+url.QueryEscape(name), &resp)
			st := leafStatus{Name: name, State: "ok", MappedRoles: resp.Roles, RolesKnown: err == nil, Notes: resp.Notes}
			var ae *apiError
			switch {
			case err == nil:
				if st.MappedRoles == nil {
					st.MappedRoles = []string{}
				}
			case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
				st.State, st.MappedRoles, st.Error = "offline", nil, err.Error()
			default:
				st.State, st.MappedRoles, st.Error = "unknown", nil, err.Error()
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return out
}

// fetchClusters asks the proxy for the clusters p's user may see.
func fetchClusters(cmd *cobra.Command, p *Profile) ([]auth.ClusterInfo, error) {
	cfg, err := p.clientTLS()
	if err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(p.CertPath())
	if err != nil {
		return nil, fmt.Errorf("reading your SSH certificate: %v; run tether login again", err)
	}
	c := newAPIClient(p.Proxy, cfg)
	var resp web.ClustersResponse
	h := http.Header{}
	h.Set(web.SSHCertHeader, strings.TrimSpace(string(cert)))
	if err := c.call(ctxOf(cmd), http.MethodGet, web.ClustersPath, nil, &resp, h); err != nil {
		return nil, err
	}
	return resp.Clusters, nil
}

type statusJSON struct {
	ProfileDir      string       `json:"profile_dir"`
	Proxy           string       `json:"proxy"`
	User            string       `json:"user"`
	Cluster         string       `json:"cluster"`
	SelectedCluster string       `json:"selected_cluster"`
	Roles           []string     `json:"roles"`
	Logins          []string     `json:"logins"`
	ValidUntil      time.Time    `json:"valid_until"`
	Leaves          []leafStatus `json:"leaf_clusters"`
	LeavesError     string       `json:"leaf_clusters_error,omitempty"`
	// Active is the same profile under the names tsh status -f json uses, so that the
	// seed guide's jq lines (.active.roles, .active.username) work as written.
	Active activeProfileJSON `json:"active"`
	// Profiles are tsh's other profiles (other proxies signed in to): Tether keeps one
	// profile, so the list is empty, never absent.
	Profiles []activeProfileJSON `json:"profiles"`
}

// activeProfileJSON is tsh's "active" profile object (the fields Tether has).
type activeProfileJSON struct {
	ProfileURL string    `json:"profile_url"`
	Username   string    `json:"username"`
	Cluster    string    `json:"cluster"`
	Roles      []string  `json:"roles"`
	Logins     []string  `json:"logins"`
	ValidUntil time.Time `json:"valid_until"`
}

// statusDocument is what tether status -f json prints for p.
func statusDocument(p *Profile, leaves []leafStatus, clustersErr error) statusJSON {
	out := statusJSON{
		Profiles:   []activeProfileJSON{},
		ProfileDir: p.dir, Proxy: p.Proxy, User: p.User, Cluster: p.Cluster, SelectedCluster: p.SelectedCluster,
		Roles: nonNil(p.Roles), Logins: nonNil(p.Logins), ValidUntil: p.ValidBefore.UTC(), Leaves: []leafStatus{},
	}
	if clustersErr != nil {
		out.LeavesError = clustersErr.Error()
	}
	out.Leaves = append(out.Leaves, leaves...)
	selected := p.SelectedCluster
	if selected == "" {
		selected = p.Cluster
	}
	out.Active = activeProfileJSON{
		ProfileURL: "https://" + p.Proxy, Username: p.User, Cluster: selected,
		Roles: out.Roles, Logins: out.Logins, ValidUntil: out.ValidUntil,
	}
	return out
}

type leafStatus struct {
	Name string `json:"name"`
	// State is "ok" (the leaf answered), "offline" (no tunnel) or "unknown" (see Error).
	State string `json:"state"`
	// MappedRoles are the leaf's local roles for the user, from its own role_map; null
	// when the leaf could not be asked.
	MappedRoles []string `json:"mapped_roles"`
	RolesKnown  bool     `json:"mapped_roles_known"`
	// Notes are the leaf's words on roles left out (no rule matched, a missing role).
	Notes []string `json:"mapped_roles_notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

func statusCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status [-f text|json|yaml]",
		Short: "Show who you are signed in as, where, until when, and the leaf clusters you may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" && format != "yaml" {
				return fmt.Errorf("-f %q: use text, json or yaml", format)
			}
			p, err := loadProfile()
			if err != nil {
				// An expired profile is still shown, marked EXPIRED, as tsh status does;
				// the error (exit 1) says to sign in again.
				if old, rerr := readProfile(); rerr == nil && old.expired(time.Now()) {
					if format != "text" {
						_ = printDocument(cmd.OutOrStdout(), statusDocument(old, nil, err), format)
					} else {
						_ = printStatus(cmd.OutOrStdout(), old, nil)
					}
				}
				return err
			}
			clusters, cerr := fetchClusters(cmd, p)
			var leafNames []string
			for _, c := range clusters {
				if c.Type == "leaf" {
					leafNames = append(leafNames, c.Name)
				}
			}
			leaves := leafRoles(ctxOf(cmd), p, leafNames)
			if format != "text" {
				return printDocument(cmd.OutOrStdout(), statusDocument(p, leaves, cerr), format)
			}
			return printStatus(cmd.OutOrStdout(), p, func(w io.Writer) {
				if cerr != nil {
					fmt.Fprintf(w, "  Leaf clusters:      could not be listed: %v\n", cerr)
					return
				}
				if len(leaves) == 0 {
					fmt.Fprintf(w, "  Leaf clusters:      none you may see\n")
					return
				}
				fmt.Fprintf(w, "  Leaf clusters:\n")
				for _, l := range leaves {
					switch {
					case l.State == "ok" && len(l.MappedRoles) == 0:
						fmt.Fprintf(w, "    %s: no roles (%s)\n", l.Name, strings.Join(l.Notes, "; "))
					case l.State == "ok":
						fmt.Fprintf(w, "    %s: roles %s\n", l.Name, strings.Join(l.MappedRoles, ", "))
					default:
						fmt.Fprintf(w, "    %s: roles %s (%s)\n", l.Name, l.State, l.Error)
					}
				}
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "text", "output format: text, json or yaml (the JSON document as YAML, as tsh)")
	return cmd
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// printStatus prints the profile as tsh status does; more adds lines at the end.
func printStatus(w io.Writer, p *Profile, more func(io.Writer)) error {
	fmt.Fprintf(w, "> Profile URL:        https://%s\n", p.Proxy)
	fmt.Fprintf(w, "  Logged in as:       %s\n", p.User)
	fmt.Fprintf(w, "  Cluster:            %s\n", p.SelectedCluster)
	if p.SelectedCluster != p.Cluster {
		fmt.Fprintf(w, "  Root cluster:       %s\n", p.Cluster)
	}
	fmt.Fprintf(w, "  Roles:              %s\n", strings.Join(p.Roles, ", "))
	fmt.Fprintf(w, "  Logins:             %s\n", strings.Join(p.Logins, ", "))
	fmt.Fprintf(w, "  Valid until:        %s [%s]\n", p.ValidBefore.Local().Format("2006-01-02 15:04:05 -0700 MST"), timeLeft(p.ValidBefore))
	fmt.Fprintf(w, "  Profile directory:  %s\n", p.dir)
	if p.Insecure {
		fmt.Fprintf(w, "  WARNING:            signed in with --insecure: the proxy's TLS certificate is not verified\n")
	}
	if more != nil {
		more(w)
	}
	return nil
}

func clustersCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "clusters [-f text|json|yaml]",
		Short: "List the root cluster and the leaf clusters you may see",
		Long: `List the root cluster and the leaf clusters you may see: the root's admins label the
leaves, and your roles' cluster_labels decide which you see and are routed to.

That is the root's view. A leaf's own proxy decides by its own role_map: where it maps
your roles, your certificate works there even for a leaf the root hides from you.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" && format != "yaml" {
				return fmt.Errorf("-f %q: use text, json or yaml", format)
			}
			p, err := loadProfile()
			if err != nil {
				return err
			}
			clusters, err := fetchClusters(cmd, p)
			if err != nil {
				return err
			}
			if format != "text" {
				return printDocument(cmd.OutOrStdout(), clustersJSON(clusters, p.SelectedCluster), format)
			}
			header := []string{"Cluster Name", "Status", "Cluster Type", "Labels", "Selected"}
			var rows [][]string
			for _, c := range clusters {
				sel := ""
				if c.Name == p.SelectedCluster {
					sel = "*"
				}
				rows = append(rows, []string{c.Name, c.Status, c.Type, labelString(c.Labels), sel})
			}
			printTable(cmd.OutOrStdout(), header, rows)
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "text", "output format: text, json or yaml (the JSON document as YAML, as tsh)")
	return cmd
}

// clusterJSON is one cluster of tether clusters -f json: the cluster as the proxy lists it,
// with tsh clusters -f json's names for the same fields (cluster_name, cluster_type) so that
// scripts written for tsh work, and whether it is the selected cluster.
type clusterJSON struct {
	auth.ClusterInfo
	ClusterName string `json:"cluster_name"`
	ClusterType string `json:"cluster_type"`
	Selected    bool   `json:"selected"`
}

// clustersJSON is the list tether clusters -f json prints (never null).
func clustersJSON(clusters []auth.ClusterInfo, selected string) []clusterJSON {
	rows := []clusterJSON{}
	for _, c := range clusters {
		rows = append(rows, clusterJSON{ClusterInfo: c, ClusterName: c.Name, ClusterType: c.Type, Selected: c.Name == selected})
	}
	return rows
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// printTable prints the seed guide's table: a header, a line of dashes under each
// column, the rows. Cells come from servers (node and cluster labels): a control
// character in one is printed escaped, never sent to the terminal.
func printTable(w io.Writer, header []string, rows [][]string) {
	rows = slices.Clone(rows)
	for i, r := range rows {
		rows[i] = make([]string, len(r))
		for j, c := range r {
			rows[i][j] = auth.TerminalSafe(c)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	dashes := make([]string, len(header))
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	for i := range header {
		dashes[i] = strings.Repeat("-", widths[i])
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	fmt.Fprintln(tw, strings.Join(dashes, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
}

// printDocument writes doc as indented JSON, or with format "yaml" as the same document in
// block YAML: the JSON's keys, in its order (the JSON is read back as YAML, which it is, and
// written without its flow style), so the two formats never differ but in syntax.
func printDocument(w io.Writer, doc any, format string) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if format != "yaml" {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle clears the flow and quoting styles JSON's syntax gave n and its children; the
// encoder quotes again only the strings that need it ("true", "1", ...).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
