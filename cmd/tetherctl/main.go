// Command tetherctl is Tether's admin tool (Teleport's tctl): resources, tokens, users and
// the cluster's status on a running cluster, and the offline policy commands (build a
// bundle, run the policy tests, ask what-if questions of resource files) that a policy CI
// runs with nothing running.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/buildinfo"
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tetherctl",
		Short:         "Administer a Tether cluster",
		Version:       buildinfo.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("tetherctl {{.Version}}\n")
	root.AddCommand(policyCommand())
	root.AddCommand(tokensCommand(), createCommand(), getCommand(), rmCommand(), updateCommand(), usersCommand())
	root.AddCommand(versionCommand(), statusCommand(), nodesCommand(), authCommand(), lockCommand())
	root.SetHelpCommand(helpCommand())
	requireSubcommands(root)
	return root
}

// helpCommand is cobra's help command, except that an unknown topic is an error.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return fmt.Errorf("unknown help topic %q: see tetherctl --help", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}

// requireSubcommands makes every command that only groups subcommands (tetherctl itself,
// tokens, users, policy) fail with a message on a missing or unknown subcommand. Cobra
// would print the help and exit 0, which lets a typo in a script pass silently.
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
		use := strings.Join(names, ", ")
		if len(args) == 0 {
			return fmt.Errorf("%s needs a command: one of %s (see %s --help)", c.CommandPath(), use, c.CommandPath())
		}
		return fmt.Errorf("unknown command %q for %q: use one of %s (see %s --help)", args[0], c.CommandPath(), use, c.CommandPath())
	}
}

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
