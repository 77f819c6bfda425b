package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/cli"
	"github.com/tetherproject/tether/resource"
)

func tokensCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{Use: "tokens", Short: "Manage invitation tokens of a running cluster"}
	conn.register(cmd)

	var (
		typ       string
		ttl       time.Duration
		labels    string
		name      string
		value     string
		addFormat string
	)
	add := &cobra.Command{
		Use:   "add --type=trusted_cluster|node [--ttl=5m] [--labels k=v] [--name=LEAF] [--value TOKEN] [--format text|json]",
		Short: "Create an invitation token; it is shown only this once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addFormat != "text" && addFormat != "json" {
				return fmt.Errorf("--format %q: use text or json", addFormat)
			}
			if err := checkTokenTTL(ttl); err != nil {
				return err
			}
			if cmd.Flags().Changed("value") {
				if err := checkTokenValue(value); err != nil {
					return err
				}
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			roles := strings.Split(typ, ",")
			resp, err := c.AddToken(ctxOf(cmd), web.TokenRequest{Roles: roles, TTL: ttl.String(), Labels: lbls, Name: name, Value: value})
			if err != nil {
				return err
			}
			if addFormat == "json" {
				return writeJSON(cmd.OutOrStdout(), tokenAddedJSON{Token: resp.Token, Roles: roles, Labels: lbls, Expires: resp.Expires})
			}
			return printTokenAdded(cmd.OutOrStdout(), roles, resp, ttl)
		},
	}
	add.Flags().StringVar(&typ, "type", "", "what the token is for: trusted_cluster or node")
	add.Flags().DurationVar(&ttl, "ttl", 30*time.Minute, "how long the token can be used")
	add.Flags().StringVar(&labels, "labels", "", "labels for what joins with the token, k=v,k2=v2 (a trusted_cluster token's become the remote_cluster's)")
	add.Flags().StringVar(&name, "name", "", "trusted_cluster tokens: the only leaf cluster name that may join with the token")
	add.Flags().StringVar(&value, "value", "", "the token itself, chosen by the admin: at least 32 hexadecimal characters (128 bits), e.g. from openssl rand -hex 16")
	add.Flags().StringVar(&addFormat, "format", "text", "output format: text or json")
	_ = add.MarkFlagRequired("type")

	var lsFormat string
	ls := &cobra.Command{
		Use:   "ls [--format text|json|yaml]",
		Short: "List live tokens (by prefix: full tokens are not stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListFormat(lsFormat); err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			if lsFormat != "text" {
				// tctl tokens ls --format=json|yaml prints the token resources, as get token.
				docs, err := c.Get(ctxOf(cmd), resource.KindToken, "", false)
				if err != nil {
					return err
				}
				return printResources(cmd.OutOrStdout(), docs, lsFormat)
			}
			toks, err := c.ListTokens(ctxOf(cmd))
			if err != nil {
				return err
			}
			printTokens(cmd.OutOrStdout(), toks, time.Now())
			return nil
		},
	}
	ls.Flags().StringVar(&lsFormat, "format", "text", "output format: text, json or yaml")
	rm := &cobra.Command{
		Use:   "rm TOKEN",
		Short: "Delete a token, by value or by the prefix tokens ls shows",
		Args:  cli.ExactArgs(1),
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
		_, err := fmt.Fprintf(w, "The cluster invite token: %s\nThis token will expire in %s.\n\nUse this token when defining a trusted cluster resource on a remote cluster.\n%s",
			resp.Token, humanTTL(ttl), tokenShownOnce)
		return err
	}
	_, err := fmt.Fprintf(w, "The invite token: %s\nThis token will expire in %s.\n%s", resp.Token, humanTTL(ttl), tokenShownOnce)
	return err
}

// tokenShownOnce ends tokens add's answer: unlike tctl's, tokens ls cannot show a token again.
const tokenShownOnce = "Copy it now: the cluster stores tokens hashed, so tetherctl tokens ls shows only its first characters.\n"

// checkTokenTTL refuses a token lifetime of zero or less: the cluster would take zero as
// its default while tetherctl printed it.
func checkTokenTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("--ttl %s: give a positive duration such as 5m or 1h", ttl)
	}
	return nil
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
	// tctl's four columns, and a fifth when a token is bound to one leaf name
	// (tokens add --name): the only name that can join with it.
	bound := false
	for _, t := range toks {
		bound = bound || t.Name != ""
	}
	header := tokenHeader
	if bound {
		header = append(append([]string(nil), tokenHeader...), "Joins As")
	}
	rows := [][]string{}
	for _, t := range toks {
		row := tokenRow(t.Token, t.Roles, t.Labels, &t.Expires, now)
		if bound {
			name := t.Name
			if name == "" {
				name = "any name"
			}
			row = append(row, name)
		}
		rows = append(rows, row)
	}
	printTable(w, header, rows)
}

// tokenAddedJSON is what tokens add --format json prints, as tctl's.
type tokenAddedJSON struct {
	Token   string            `json:"token"`
	Roles   []string          `json:"roles"`
	Labels  map[string]string `json:"labels,omitempty"`
	Expires time.Time         `json:"expires"`
}

// minTokenHex is the shortest token tokens add --value accepts: 32 hexadecimal
// characters, 128 bits.
const minTokenHex = 32

// checkTokenValue accepts an admin-chosen token only if it is hard to guess.
func checkTokenValue(v string) error {
	if len(v) < minTokenHex || len(v) > 256 {
		return fmt.Errorf("--value has %d characters: a token must be %d to 256 hexadecimal characters (at least 128 bits), for example from `openssl rand -hex 16`", len(v), minTokenHex)
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return fmt.Errorf("--value holds %q: a token must be hexadecimal characters only (at least %d of them, 128 bits), for example from `openssl rand -hex 16`", c, minTokenHex)
		}
	}
	return nil
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
