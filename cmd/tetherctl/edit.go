package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/internal/cli"
	"github.com/tetherproject/tether/resource"
)

// notEditable are the kinds edit refuses, each with what changes it instead.
var notEditable = map[string]string{
	resource.KindRemoteCluster: "remote clusters are made by the trust handshake; set their labels with tetherctl update rc/NAME --set-labels",
	resource.KindCertAuthority: "certificate authorities are not edited by hand; rotate them with tetherctl auth rotate",
	resource.KindToken:         "tokens are not edited; add one with tetherctl tokens add and remove one with tetherctl tokens rm",
}

func editCommand() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{
		Use:   "edit KIND/NAME",
		Short: "Edit a resource of a running cluster in $VISUAL or $EDITOR (vi), as tctl edit does",
		Long: "Edit a resource of a running cluster: tetherctl fetches it as YAML (secrets masked; a mask " +
			"left in place keeps the stored secret), opens it in $VISUAL, else $EDITOR, else vi, and when the " +
			"editor exits with the file changed writes it back as create --force would. The file must still " +
			"hold that one resource (its kind and name cannot change). When the result is refused (bad YAML, " +
			"an unknown field, a rule the cluster enforces) nothing is written, the edited file is kept and " +
			"its path printed, so the edit is not lost: fix it and run tetherctl create --force FILE.",
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			if why, ok := notEditable[kind]; ok {
				return fmt.Errorf("%s/%s: %s", kind, name, why)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			docs, err := c.Get(ctxOf(cmd), kind, name, false)
			if err != nil {
				return err
			}
			if len(docs) != 1 {
				return fmt.Errorf("%s/%s: the cluster returned %d documents, want one", kind, name, len(docs))
			}
			before := []byte(docs[0])
			dir, err := os.MkdirTemp("", "tetherctl-edit-")
			if err != nil {
				return err
			}
			file := filepath.Join(dir, kind+"-"+safeFileName(name)+".yaml")
			if err := os.WriteFile(file, before, 0o600); err != nil {
				os.RemoveAll(dir)
				return err
			}
			keep := false
			defer func() {
				if !keep {
					os.RemoveAll(dir)
				}
			}()
			if err := runEditor(cmd, file); err != nil {
				return fmt.Errorf("%w; nothing was changed", err)
			}
			after, err := readLimited(file)
			if err != nil {
				return err
			}
			if bytes.Equal(bytes.TrimSpace(after), bytes.TrimSpace(before)) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %q: no changes made\n", kind, name)
				return nil
			}
			kept := func(err error) error {
				keep = true
				return fmt.Errorf("%w\nnothing was changed; your edit is kept in %s (fix it and run tetherctl create --force %s)", err, file, file)
			}
			rs, warn, err := resource.ParseWithWarnings(after, file)
			if err != nil {
				return kept(err)
			}
			if len(rs) != 1 || rs[0].GetKind() != kind || rs[0].GetMetadata().Name != name {
				return kept(fmt.Errorf("the file must hold the one resource %s/%s; to make another, use tetherctl create", kind, name))
			}
			if warn != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", warn.String())
			}
			msgs, err := c.Create(ctxOf(cmd), after, file, true)
			for _, m := range msgs {
				fmt.Fprintln(cmd.OutOrStdout(), m)
			}
			if err != nil {
				return kept(err)
			}
			return nil
		},
	}
	conn.register(cmd)
	return cmd
}

// runEditor opens file in $VISUAL, else $EDITOR, else vi. The variable may hold arguments
// ("code --wait"), so it runs through the shell, as git runs its editor; the file is
// passed as a separate argument, never spliced into the command line.
func runEditor(cmd *cobra.Command, file string) error {
	editor := strings.TrimSpace(os.Getenv("VISUAL"))
	if editor == "" {
		editor = strings.TrimSpace(os.Getenv("EDITOR"))
	}
	if editor == "" {
		editor = "vi"
	}
	e := exec.CommandContext(ctxOf(cmd), "/bin/sh", "-c", editor+` "$1"`, editor, file)
	e.Stdin = os.Stdin
	// *os.File writers (the terminal) reach the editor as they are.
	e.Stdout, e.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := e.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("the editor (%s) exited with status %d", editor, exit.ExitCode())
		}
		return fmt.Errorf("running the editor (%s): %v", editor, err)
	}
	return nil
}

// safeFileName keeps a resource name usable as part of a file name.
func safeFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r < ' ' {
			return '_'
		}
		return r
	}, name)
}
