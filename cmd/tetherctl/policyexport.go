package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/bundles"
)

// policyExportCommand downloads the bundle a running cluster decides with, so security
// teams can opa eval / opa test exactly what guards the site, at the revision its
// decision log names.
func policyExportCommand() *cobra.Command {
	var (
		conn   connFlags
		output string
		dir    string
	)
	cmd := &cobra.Command{
		Use:   "export (-o bundle.tar.gz | --dir DIR)",
		Short: "Download the bundle a running cluster decides with (the revision its decision log records)",
		Long: `Download the policy bundle a running cluster decides with: its resources shaped as
data.tether, Tether's Rego library and the operator modules, at the revision every
decision-log event of that cluster records. opa eval -b accepts it:

  tetherctl policy export -o live.tar.gz
  opa eval -b live.tar.gz -i input.json 'data.tether.authz.decision'

The input of a logged decision ("input" of a decision-log line) gives the decision the
cluster made, for the revision the line names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (output == "") == (dir == "") {
				return errors.New("give one of -o FILE.tar.gz or --dir DIR")
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			data, rev, err := c.PolicyBundle(ctxOf(cmd))
			if err != nil {
				return err
			}
			// Read it back with the same checks as any bundle: what is written is a
			// bundle opa and tetherctl policy accept.
			b, err := bundles.ReadTarGz(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("the cluster sent a bundle that cannot be read: %w", err)
			}
			if output != "" {
				if err := os.WriteFile(output, data, 0o600); err != nil {
					return err
				}
			} else if err := bundles.WriteDir(dir, b); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "bundle revision %s written to %s\n", rev, output+dir)
			return err
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the bundle as a .tar.gz")
	cmd.Flags().StringVar(&dir, "dir", "", "write the bundle as a directory (empty or absent)")
	return cmd
}
