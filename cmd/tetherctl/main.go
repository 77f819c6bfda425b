// Command tetherctl is Tether's admin tool (Teleport's tctl): resources, tokens, users and
// the cluster's status on a running cluster, and the offline policy commands (build a
// bundle, run the policy tests, ask what-if questions of resource files) that a policy CI
// runs with nothing running.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/tetherproject/tether/internal/cli"

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
	root.AddCommand(tokensCommand(), createCommand(), editCommand(), getCommand(), rmCommand(), updateCommand(), usersCommand())
	root.AddCommand(versionCommand(), statusCommand(), nodesCommand(), authCommand(), lockCommand())
	help := helpCommand()
	root.SetHelpCommand(help)
	// The flags that say how to reach a cluster belong to the commands that do, but tctl
	// users type them first, as its global flags: "tetherctl --data-dir X --help" and
	// "tetherctl -i id help status" are requests for help, not unknown flags. A command
	// still reads them from its own flags ("tetherctl --data-dir X status" parses them
	// in status, where cobra hands every argument after the command's name).
	for _, c := range []*cobra.Command{root, help} {
		var ignored connFlags
		ignored.registerOn(c.Flags(), "; read by the commands that reach a running cluster")
	}
	cli.RequireSubcommands(root)
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

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
