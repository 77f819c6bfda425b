package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/resource"
)

// kindDocs are the YAML documents get read for one kind.
type kindDocs struct {
	kind string
	docs []string
}

// printTables prints each kind's resources as a table, tctl-style, a blank line between
// kinds.
func printTables(w io.Writer, groups []kindDocs) error {
	byKind := map[string][]resource.Resource{}
	var order []string
	for _, g := range groups {
		if _, ok := byKind[g.kind]; !ok {
			order = append(order, g.kind)
			byKind[g.kind] = nil
		}
		for _, d := range g.docs {
			rs, err := resource.Parse([]byte(d), g.kind)
			if err != nil {
				return fmt.Errorf("reading the cluster's %s: %w", g.kind, err)
			}
			byKind[g.kind] = append(byKind[g.kind], rs...)
		}
	}
	printed := 0
	for _, kind := range order {
		// One kind asked for is shown even when empty (its header says there are none);
		// in a list or get all, empty kinds are left out.
		if len(order) > 1 && len(byKind[kind]) == 0 {
			continue
		}
		if printed > 0 {
			fmt.Fprintln(w)
		}
		header, rows := table(kind, byKind[kind], time.Now())
		printTable(w, header, rows)
		printed++
	}
	return nil
}

// table returns the columns and rows of kind's table.
func table(kind string, rs []resource.Resource, now time.Time) ([]string, [][]string) {
	rows := [][]string{}
	switch kind {
	case resource.KindRole:
		for _, r := range rs {
			role := r.(*resource.Role)
			rows = append(rows, []string{role.Metadata.Name, strings.Join(role.Spec.Allow.Logins, ","),
				selector(role.Spec.Allow.NodeLabels), selector(role.Spec.Allow.ClusterLabels), strings.Join(role.Spec.Deny.Logins, ",")})
		}
		return []string{"Role", "Allowed to login as", "Node Labels", "Cluster Labels", "Denied logins"}, rows
	case resource.KindUser:
		for _, r := range rs {
			u := r.(*resource.User)
			rows = append(rows, []string{u.Metadata.Name, strings.Join(u.Spec.Roles, ",")})
		}
		return []string{"User", "Roles"}, rows
	case resource.KindRemoteCluster:
		for _, r := range rs {
			rc := r.(*resource.RemoteCluster)
			hb := ""
			if !rc.Status.LastHeartbeat.IsZero() {
				hb = rc.Status.LastHeartbeat.UTC().Format(time.RFC3339)
			}
			status := rc.Status.Connection
			if status == "" {
				status = resource.ConnectionOffline
			}
			tr := rc.Status.Transport
			if status != resource.ConnectionOnline || tr == "" {
				tr = "-"
			}
			rows = append(rows, []string{rc.Metadata.Name, status, labelList(rc.Metadata.Labels), hb, tr})
		}
		return []string{"Name", "Status", "Cluster Labels", "Last Heartbeat", "Transport"}, rows
	case resource.KindNode:
		for _, r := range rs {
			n := r.(*resource.Node)
			host := n.Spec.Hostname
			if host == "" {
				host = n.Metadata.Name
			}
			addr := n.Spec.Addr
			if addr == "" {
				addr = "⟵ Tunnel"
			}
			status, hb := n.Status.Connection, ""
			if status == "" {
				status = "-" // registered by hand: no agent heartbeats
			}
			if !n.Status.LastHeartbeat.IsZero() {
				hb = n.Status.LastHeartbeat.UTC().Format(time.RFC3339)
			}
			rows = append(rows, []string{host, n.Metadata.Name, addr, labelList(n.Metadata.Labels), status, hb})
		}
		return []string{"Host", "Name", "Address", "Labels", "Status", "Last Heartbeat"}, rows
	case resource.KindTrustedCluster:
		for _, r := range rs {
			tc := r.(*resource.TrustedCluster)
			var maps []string
			for _, m := range tc.Spec.RoleMap {
				maps = append(maps, m.Remote+"->"+strings.Join(m.Local, "+"))
			}
			rows = append(rows, []string{tc.Metadata.Name, fmt.Sprint(tc.Spec.Enabled), tc.Spec.WebProxyAddr, strings.Join(maps, ",")})
		}
		return []string{"Name", "Enabled", "Web Proxy Address", "Role Map"}, rows
	case resource.KindCertAuthority:
		for _, r := range rs {
			c := r.(*resource.CertAuthority)
			keys := len(c.Spec.ActiveKeys.SSH) + len(c.Spec.ActiveKeys.TLS)
			extra := len(c.Spec.AdditionalTrustedKeys.SSH) + len(c.Spec.AdditionalTrustedKeys.TLS)
			rows = append(rows, []string{c.Spec.ClusterName, c.Spec.Type, fmt.Sprintf("%d active, %d additional", keys, extra)})
		}
		return []string{"Cluster", "Type", "Keys"}, rows
	case resource.KindToken:
		for _, r := range rs {
			t := r.(*resource.Token)
			rows = append(rows, tokenRow(t.Metadata.Name, t.Spec.Roles, t.Metadata.Labels, t.Metadata.Expires, now))
		}
		return tokenHeader, rows
	case resource.KindLock:
		for _, r := range rs {
			l := r.(*resource.Lock)
			exp := "never"
			if e := l.Spec.Expires; e != nil {
				left := "expired"
				if e.After(now) {
					left = e.Sub(now).Round(time.Second).String()
				}
				exp = fmt.Sprintf("%s (%s)", e.UTC().Format("02 Jan 06 15:04 UTC"), left)
			}
			rows = append(rows, []string{l.Metadata.Name, lockTarget(l.Spec.Target), auth.TerminalSafe(l.Spec.Message), exp})
		}
		return []string{"ID", "Target", "Message", "Expires"}, rows
	}
	for _, r := range rs {
		md := r.GetMetadata()
		rows = append(rows, []string{r.GetKind(), md.Name, labelList(md.Labels)})
	}
	return []string{"Kind", "Name", "Labels"}, rows
}

// lockTarget writes a lock's target as field=value pairs, in the order tetherctl lock's
// flags name them.
func lockTarget(t resource.LockTarget) string {
	var out []string
	for _, f := range []struct{ name, value string }{
		{"user", t.User}, {"role", t.Role}, {"login", t.Login}, {"node", t.Node}, {"remote_cluster", t.RemoteCluster},
	} {
		if f.value != "" {
			out = append(out, f.name+"="+auth.TerminalSafe(f.value))
		}
	}
	return strings.Join(out, ",")
}

var tokenHeader = []string{"Token", "Type", "Labels", "Expiry Time (UTC)"}

func tokenRow(token string, roles []string, labels map[string]string, expires *time.Time, now time.Time) []string {
	exp := ""
	if expires != nil {
		exp = fmt.Sprintf("%s (%s)", expires.UTC().Format("02 Jan 06 15:04 UTC"), expires.Sub(now).Round(time.Second))
	}
	return []string{token, strings.Join(roles, ","), labelList(labels), exp}
}

// labelList writes labels as k=v,k2=v2, sorted.
func labelList(l map[string]string) string {
	var out []string
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// selector writes a label selector as k=v,k2=[v1 v2], sorted.
func selector(l resource.Labels) string {
	var out []string
	for k, vs := range l {
		if len(vs) == 1 {
			out = append(out, k+"="+vs[0])
		} else {
			out = append(out, k+"=["+strings.Join(vs, " ")+"]")
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// printStructured writes v as indented JSON or as YAML (through its JSON form, so both
// use the same field names).
func printStructured(w io.Writer, v any, format string) error {
	switch format {
	case "json":
		return writeJSON(w, v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	return fmt.Errorf("unsupported format %q", format)
}

// checkListFormat accepts the formats of the ls commands.
func checkListFormat(format string) error {
	switch format {
	case "text", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--format %q: use text, json or yaml", format)
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
		return writeJSON(w, out)
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

// listCommand is an `ls [--format text|json|yaml]` subcommand listing every resource of
// kind: as documents for json and yaml, through text for the table.
func listCommand(conn *connFlags, kind, short string, text func(io.Writer, []string) error) *cobra.Command {
	var format string
	ls := &cobra.Command{
		Use:   "ls [--format text|json|yaml]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListFormat(format); err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			docs, err := c.Get(ctxOf(cmd), kind, "", false)
			if err != nil {
				return err
			}
			if format == "text" {
				return text(cmd.OutOrStdout(), docs)
			}
			return printResources(cmd.OutOrStdout(), docs, format)
		},
	}
	ls.Flags().StringVar(&format, "format", "text", "output format: text, json or yaml")
	return ls
}
