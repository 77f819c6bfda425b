// Command tetherd is the Tether daemon: `tetherd start -c tether.yaml` runs a cluster's
// auth service and HTTPS web API, and with node.enabled a node agent (beside the cluster,
// or alone when cluster_name is empty); `tetherd configure` prints a commented sample
// configuration.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway"
	"github.com/tetherproject/tether/gateway/config"
	"github.com/tetherproject/tether/gateway/node"
	"github.com/tetherproject/tether/internal/gctune"
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tetherd",
		Short:         "Run a Tether cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(startCommand(), configureCommand(), nodeSFTPCommand(), nodeNetCommand())
	return withVersion(root)
}

func startCommand() *cobra.Command {
	var (
		path     string
		insecure bool
		debug    bool
		diagAddr string
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the cluster's auth service and web API, and/or a node agent (node.enabled)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if insecure {
				cfg.Insecure = true
			}
			if debug {
				cfg.Log.Level = "debug"
			}
			if diagAddr != "" {
				if err := cfg.SetDiagAddr(diagAddr); err != nil {
					return err
				}
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			log.Debug("garbage collection", "gogc", gctune.Apply())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.NodeOnly() {
				return gateway.RunNodeOnly(ctx, cfg, log)
			}
			g, err := gateway.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			return g.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (see tetherd configure)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "as a leaf or a node agent, accept any TLS certificate from the root or cluster when joining (testing only)")
	cmd.Flags().BoolVarP(&debug, "debug", "d", false, "log at debug level (every decision's outcome, audit events, handshakes); with --diag-addr, also serve Go's profiles at /debug/pprof/")
	cmd.Flags().StringVar(&diagAddr, "diag-addr", "", "serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) on this host:port (overrides diag_addr)")
	return cmd
}

func newLogger(c config.Log) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level %q: use debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.Format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: use text or json", c.Format)
}

func configureCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "configure",
		Short: "Print a commented sample configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), config.Sample)
			return err
		},
	}
}

// nodeSFTPCommand is the hidden subcommand the node agent runs, as the login's user, for
// the sftp subsystem: the sftp protocol on stdin and stdout.
func nodeSFTPCommand() *cobra.Command {
	return &cobra.Command{
		Use:    node.SFTPSubcommand,
		Short:  "Serve sftp on stdin and stdout (run by the node agent as the login's user)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return node.ServeSFTP(os.Stdin, os.Stdout)
		},
	}
}

// nodeNetCommand is the hidden subcommand the node agent runs, as the login's user, to
// make port forwarding sockets: `node-net serve` (one SSH connection's dials, asked over
// descriptor 3), `node-net dial HOST:PORT` or `node-net listen 127.0.0.1:PORT`, handed
// back on descriptor 3. Flags are not parsed: a host is never an
// option. A failure is one line on stderr (the reason the user is shown) and exit 1.
func nodeNetCommand() *cobra.Command {
	return &cobra.Command{
		Use:                node.NetSubcommand + " serve | dial HOST:PORT | listen 127.0.0.1:PORT",
		Short:              "Make a port forwarding socket (run by the node agent as the login's user)",
		Hidden:             true,
		DisableFlagParsing: true,
		Run: func(cmd *cobra.Command, args []string) {
			if err := node.ServeNet(args); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		},
	}
}

func main() {
	if err := rootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
