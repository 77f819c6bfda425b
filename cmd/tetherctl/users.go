package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/adminclient"
	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/cli"
	"github.com/tetherproject/tether/resource"
)

func usersCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{Use: "users", Short: "Manage local users of a running cluster"}
	conn.register(cmd)

	var roles, logins, addTTL string
	add := &cobra.Command{
		Use:   "add NAME --roles a,b [--logins x,y]",
		Short: "Create a user",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			u := &resource.User{Kind: resource.KindUser, Version: "v2", Metadata: resource.Metadata{Name: args[0]}}
			u.Spec.Roles = splitList(roles)
			if l := splitList(logins); len(l) > 0 {
				u.Spec.Traits = map[string][]string{"logins": l}
			}
			if err := putUser(cmd, c, u, false); err != nil {
				var ae *adminclient.Error
				if errors.As(err, &ae) && ae.Status == http.StatusConflict {
					return fmt.Errorf("user %q already exists: tetherctl users update %s --set-roles=... changes its roles, tetherctl users reset %s gives it a new sign-up token", args[0], args[0], args[0])
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "User %q has been created\n", args[0])
			return printSignup(cmd, c, args[0], addTTL)
		},
	}
	add.Flags().StringVar(&roles, "roles", "", "the user's roles, comma-separated")
	add.Flags().StringVar(&logins, "logins", "", "the user's logins trait, comma-separated")
	add.Flags().StringVar(&addTTL, "ttl", "1h", "how long the sign-up token is valid")
	_ = add.MarkFlagRequired("roles")

	var resetTTL string
	reset := &cobra.Command{
		Use:   "reset NAME [--ttl 1h]",
		Short: "Clear a user's password and second factor and issue a new sign-up token",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			resp, err := c.IssueSignup(ctxOf(cmd), args[0], resetTTL)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "User %q has been reset: the password and second factor are cleared\n", args[0])
			printSignupToken(cmd, c, args[0], resp)
			return nil
		},
	}
	reset.Flags().StringVar(&resetTTL, "ttl", "1h", "how long the sign-up token is valid")

	var setRoles, setLogins string
	update := &cobra.Command{
		Use:   "update NAME [--set-roles a,b] [--set-logins x,y]",
		Short: "Change a user's roles or logins",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("set-roles") && !cmd.Flags().Changed("set-logins") {
				return fmt.Errorf("nothing to update: give --set-roles or --set-logins")
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			u, err := getUser(cmd, c, args[0])
			if err != nil {
				return err
			}
			var changes []string
			if cmd.Flags().Changed("set-roles") {
				u.Spec.Roles = splitList(setRoles)
				changes = append(changes, "New roles: "+strings.Join(u.Spec.Roles, ","))
			}
			if cmd.Flags().Changed("set-logins") {
				if u.Spec.Traits == nil {
					u.Spec.Traits = map[string][]string{}
				}
				u.Spec.Traits["logins"] = splitList(setLogins)
				changes = append(changes, "New logins: "+strings.Join(u.Spec.Traits["logins"], ","))
			}
			if err := putUser(cmd, c, u, true); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "User %s has been updated:\n", args[0])
			for _, ch := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "\t%s\n", ch)
			}
			return nil
		},
	}
	update.Flags().StringVar(&setRoles, "set-roles", "", "replace the user's roles, comma-separated")
	update.Flags().StringVar(&setLogins, "set-logins", "", "replace the user's logins trait, comma-separated")

	ls := listCommand(&conn, resource.KindUser, "List users", func(w io.Writer, docs []string) error {
		var rows [][]string
		for _, d := range docs {
			rs, err := resource.Parse([]byte(d), "user")
			if err != nil {
				return err
			}
			u := rs[0].(*resource.User)
			rows = append(rows, []string{u.Metadata.Name, strings.Join(u.Spec.Roles, ",")})
		}
		printTable(w, []string{"User", "Roles"}, rows)
		return nil
	})
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a user",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := conn.client()
			if err != nil {
				return err
			}
			if _, err := c.Delete(ctxOf(cmd), resource.KindUser, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "User %q has been deleted\n", args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "Certificates already issued to %s stay valid until they expire; to end them now: tetherctl lock --user=%s\n", args[0], args[0])
			return nil
		},
	}
	cmd.AddCommand(add, update, ls, rm, reset)
	return cmd
}

// splitList reads a comma-separated list: blanks trimmed, empty items and repeats dropped
// (the first occurrence keeps its place).
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func getUser(cmd *cobra.Command, c *adminclient.Client, name string) (*resource.User, error) {
	docs, err := c.Get(ctxOf(cmd), resource.KindUser, name, true)
	if err != nil {
		return nil, err
	}
	rs, err := resource.Parse([]byte(docs[0]), "user/"+name)
	if err != nil {
		return nil, err
	}
	return rs[0].(*resource.User), nil
}

func putUser(cmd *cobra.Command, c *adminclient.Client, u *resource.User, force bool) error {
	if err := u.Validate(); err != nil {
		return err
	}
	data, err := resource.Marshal(u)
	if err != nil {
		return err
	}
	_, err = c.Create(ctxOf(cmd), data, "user/"+u.Metadata.Name, force)
	return err
}

// printSignup issues a sign-up token for name and prints it with the command the user
// runs: the admin never sees, nor sets, the user's password.
func printSignup(cmd *cobra.Command, c *adminclient.Client, name, ttl string) error {
	resp, err := c.IssueSignup(ctxOf(cmd), name, ttl)
	if err != nil {
		return fmt.Errorf("issuing a sign-up token for %s: %w (run tetherctl users reset %s to try again)", name, err, name)
	}
	printSignupToken(cmd, c, name, resp)
	return nil
}

// printSignupToken prints an issued sign-up token and the command the user runs.
func printSignupToken(cmd *cobra.Command, c *adminclient.Client, name string, resp web.SignupTokenResponse) {
	st, err := c.Status(ctxOf(cmd))
	caHint := ""
	if err == nil && len(st.TLSCAFiles) > 0 {
		caHint = " --ca-file=" + st.TLSCAFiles[0]
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Sign-up token for %s (valid until %s, usable once):\n\n  %s\n\n", name, resp.Expires.UTC().Format(time.RFC3339), resp.Token)
	fmt.Fprintf(out, "Give it to %s, who sets a password and enrols a one-time code app with:\n\n  tether users signup --proxy=%s%s %s\n\n", name, resp.Proxy, caHint, resp.Token)
	if caHint != "" {
		fmt.Fprintf(out, "(--ca-file is this cluster's TLS CA; copy the file to the user unless the proxy has a publicly trusted certificate)\n")
	}
	fmt.Fprintf(out, "(On a machine other users share, leave the token off the command: it is then read from TETHER_SIGNUP_TOKEN or asked for, since anyone there can read a running command's arguments.)\n")
}
