// Command tetherd is the Tether daemon: `tetherd start -c tether.yaml` runs a cluster's
// auth service and HTTPS web API; `tetherd configure` prints a commented sample
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
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tetherd",
		Short:         "Run a Tether cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(startCommand(), configureCommand())
	return withVersion(root)
}

func startCommand() *cobra.Command {
	var (
		path     string
		insecure bool
		debug    bool
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the cluster's auth service and web API",
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
			log, err := newLogger(cfg.Log)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			g, err := gateway.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			return g.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (see tetherd configure)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "as a leaf, accept any TLS certificate from root clusters (testing only)")
	cmd.Flags().BoolVarP(&debug, "debug", "d", false, "log at debug level")
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

func main() {
	if err := rootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}
