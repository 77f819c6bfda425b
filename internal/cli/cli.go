// Package cli holds what the command-line tools (tether, tetherctl) share about their
// command trees: how a command that only groups subcommands answers a missing or unknown
// one.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
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
			return err
		}
		if args := c.Flags().Args(); len(args) > 0 {
			return c.RunE(c, args)
		}
		return err
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
