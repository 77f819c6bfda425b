// Command tether is Tether's user tool (Teleport's tsh): sign up with a token from an
// admin, sign in at a root cluster's proxy (password and one-time code) for an SSH user
// certificate and a TLS client certificate, and see who you are and which clusters you
// may reach. The profile it writes under ~/.tether (TETHER_HOME) is what the commands
// that reach servers build on.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/buildinfo"
	"github.com/tetherproject/tether/internal/gctune"
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tether",
		Short:         "Sign in to a Tether cluster and see where you may go",
		Version:       buildinfo.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("tether {{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(loginCommand(), logoutCommand(), statusCommand(), clustersCommand(), usersCommand(), versionCommand())
	root.AddCommand(sshCommand(), scpCommand(), proxyCommand(), configCommand(), lsCommand())
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return fmt.Errorf("unknown help topic %q: see tether --help", strings.Join(args, " "))
			}
			return target.Help()
		},
	})
	requireSubcommands(root)
	return root
}

// requireSubcommands makes a command that only groups subcommands fail on a missing or
// unknown one, instead of printing its help and exiting 0.
func requireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommands(c)
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
		if len(args) == 0 {
			return fmt.Errorf("%s needs a command: one of %s (see %s --help)", c.CommandPath(), strings.Join(names, ", "), c.CommandPath())
		}
		return fmt.Errorf("unknown command %q for %q: use one of %s (see %s --help)", args[0], c.CommandPath(), strings.Join(names, ", "), c.CommandPath())
	}
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tether's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "tether", buildinfo.Get().String())
			return err
		},
	}
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func main() {
	gctune.Apply()
	if err := rootCommand().Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.Code)
		}
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
