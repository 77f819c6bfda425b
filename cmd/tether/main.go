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

	"github.com/tetherproject/tether/internal/cli"

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
	cli.RequireSubcommands(root)
	return root
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
		code, msg := exitStatus(err)
		if msg != "" {
			fmt.Fprintln(os.Stderr, "ERROR:", msg)
		}
		os.Exit(code)
	}
}

// exitStatus is the status tether exits with for err and the message it prints first ("" for
// none): tether ssh's own failures are 255, as OpenSSH's ssh (the refusals the proxy printed
// already, an exitError under the sshFailure, add nothing); an exitError is its code (a
// remote command's status) with nothing printed; anything else is 1 with its message.
func exitStatus(err error) (code int, msg string) {
	if err == nil {
		return 0, ""
	}
	var sf *sshFailure
	if errors.As(err, &sf) {
		var ee *exitError
		if errors.As(sf.err, &ee) {
			return 255, ""
		}
		return 255, err.Error()
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.Code, ""
	}
	return 1, err.Error()
}
