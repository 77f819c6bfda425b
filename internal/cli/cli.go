// Package cli holds what the command-line tools (tether, tetherctl) share about their
// command trees: how a command that only groups subcommands answers a missing or unknown
// one.
package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// RequireSubcommands makes every command under cmd (cmd included) that only groups
// subcommands fail with a message on a missing or unknown subcommand. Cobra would print
// the help and exit 0, which lets a typo in a script pass silently.
func RequireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		RequireSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Run != nil || cmd.RunE != nil {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	// A flag cobra cannot parse here belongs to the mistyped command before it
	// ("lock --user=alice"): name that command, not the flag. Subcommands inherit this
	// function, so it acts only for cmd itself.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if c != cmd {
			return PlainFlagError(err)
		}
		if args := c.Flags().Args(); len(args) > 0 {
			return c.RunE(c, args)
		}
		return PlainFlagError(err)
	})
	cmd.RunE = func(c *cobra.Command, args []string) error {
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		use := strings.Join(names, ", ")
		if len(args) == 0 {
			return fmt.Errorf("%s needs a command: one of %s (see %s --help)", c.CommandPath(), use, c.CommandPath())
		}
		return fmt.Errorf("unknown command %q for %q: use one of %s (see %s --help)", args[0], c.CommandPath(), use, c.CommandPath())
	}
}

// PlainFlagError is err, a flag value pflag could not read, said as the flag and what it
// wants (--ttl "zz" is not a duration such as 30m or 10h), without Go's parser errors
// (time: invalid duration, strconv.ParseInt: ...). Other errors are returned as they are.
func PlainFlagError(err error) error {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return err
	}
	want := "a valid value"
	switch t := ive.GetFlag().Value.Type(); {
	case t == "duration":
		want = "a duration such as 30m or 10h"
	case t == "bool":
		want = "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || strings.HasPrefix(t, "float"):
		want = "a number"
	}
	return fmt.Errorf("--%s %q is not %s", ive.GetFlag().Name, ive.GetValue(), want)
}

// ExactArgs is cobra.ExactArgs(n) said with the command's usage line, so that a missing or
// extra argument tells what to give ("tetherctl create takes one argument, got none:
// tetherctl create [-f|--force] FILE"), not cobra's "accepts 1 arg(s), received 0".
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		want := "one argument"
		if n != 1 {
			want = fmt.Sprintf("%d arguments", n)
		}
		got := "none"
		if len(args) > 0 {
			quoted := make([]string, len(args))
			for i, a := range args {
				quoted[i] = fmt.Sprintf("%q", a)
			}
			got = strings.Join(quoted, " ")
		}
		return fmt.Errorf("%s takes %s, got %s: %s (see %s --help)", cmd.CommandPath(), want, got, strings.TrimSuffix(cmd.UseLine(), " [flags]"), cmd.CommandPath())
	}
}
