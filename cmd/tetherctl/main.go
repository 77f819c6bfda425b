// Command tetherctl is Tether's admin tool (Teleport's tctl). Today it holds the offline
// policy commands: build a bundle, run the policy tests, and ask what-if questions of a
// set of resource files, so a policy CI needs nothing running.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tetherctl",
		Short:         "Administer a Tether cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(policyCommand())
	root.AddCommand(tokensCommand(), createCommand(), getCommand(), rmCommand(), updateCommand(), usersCommand())
	return root
}

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
