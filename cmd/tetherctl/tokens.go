package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

func tokensCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{Use: "tokens", Short: "Manage invitation tokens of a running cluster"}
	conn.register(cmd)

	var (
		typ    string
		ttl    time.Duration
		labels string
		name   string
	)
	add := &cobra.Command{
		Use:   "add --type=trusted_cluster|node [--ttl=5m] [--labels k=v] [--name=LEAF]",
		Short: "Create an invitation token; it is shown only this once",
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
			roles := strings.Split(typ, ",")
			resp, err := c.AddToken(ctxOf(cmd), web.TokenRequest{Roles: roles, TTL: ttl.String(), Labels: lbls, Name: name})
			if err != nil {
				return err
			}
			return printTokenAdded(cmd.OutOrStdout(), roles, resp, ttl)
		},
	}
	add.Flags().StringVar(&typ, "type", "", "what the token is for: trusted_cluster or node")
	add.Flags().DurationVar(&ttl, "ttl", 30*time.Minute, "how long the token can be used")
	add.Flags().StringVar(&labels, "labels", "", "labels for what joins with the token, k=v,k2=v2 (a trusted_cluster token's become the remote_cluster's)")
	add.Flags().StringVar(&name, "name", "", "trusted_cluster tokens: the only leaf cluster name that may join with the token")
	_ = add.MarkFlagRequired("type")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List live tokens (by prefix: full tokens are not stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(ctxOf(cmd))
			if err != nil {
				return err
			}
			printTokens(cmd.OutOrStdout(), toks, time.Now())
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm TOKEN",
		Short: "Delete a token, by value or by the prefix tokens ls shows",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			if err := c.DeleteToken(ctxOf(cmd), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Token %s has been deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, ls, rm)
	return cmd
}

func printTokenAdded(w io.Writer, roles []string, resp web.TokenResponse, ttl time.Duration) error {
	if len(roles) == 1 && strings.EqualFold(roles[0], resource.TokenRoleTrustedCluster) {
		_, err := fmt.Fprintf(w, "The cluster invite token: %s\nThis token will expire in %s.\n\nUse this token when defining a trusted cluster resource on a remote cluster.\n",
			resp.Token, humanTTL(ttl))
		return err
	}
	_, err := fmt.Fprintf(w, "The invite token: %s\nThis token will expire in %s.\n", resp.Token, humanTTL(ttl))
	return err
}

func humanTTL(d time.Duration) string {
	if d%time.Minute == 0 {
		m := int(d / time.Minute)
		if m == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", m)
	}
	return d.String()
}

// printTokens prints tctl's token table.
func printTokens(w io.Writer, toks []web.TokenListItem, now time.Time) {
	if len(toks) == 0 {
		fmt.Fprintln(w, "No active tokens found.")
		return
	}
	rows := [][]string{}
	for _, t := range toks {
		var lbls []string
		for k, v := range t.Labels {
			lbls = append(lbls, k+"="+v)
		}
		sort.Strings(lbls)
		left := t.Expires.Sub(now).Round(time.Second)
		rows = append(rows, []string{t.Token, strings.Join(t.Roles, ","), strings.Join(lbls, ","),
			fmt.Sprintf("%s (%s)", t.Expires.UTC().Format("02 Jan 06 15:04 UTC"), left)})
	}
	printTable(w, []string{"Token", "Type", "Labels", "Expiry Time (UTC)"}, rows)
}

// printTable prints a table as tctl's asciitable does: header, dashes, rows, columns
// padded to their widest cell.
func printTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))))
			if i < len(cells)-1 {
				b.WriteString(" ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	dashes := make([]string, len(header))
	for i := range header {
		dashes[i] = strings.Repeat("-", widths[i])
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
}
