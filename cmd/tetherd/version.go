package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/buildinfo"
)

// withVersion gives root `tetherd version` and `tetherd --version`.
func withVersion(root *cobra.Command) *cobra.Command {
	root.Version = buildinfo.Get().String()
	root.SetVersionTemplate("tetherd {{.Version}}\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print tetherd's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "tetherd", buildinfo.Get().String())
			return err
		},
	})
	return root
}
