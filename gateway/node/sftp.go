package node

import (
	"errors"
	"io"
	"os"

	"github.com/pkg/sftp"
)

// SFTPSubcommand is tetherd's hidden subcommand that serves sftp on stdin and stdout.
// The agent runs it as the login's user for the sftp subsystem, so every file operation
// happens with that user's permissions, never the agent's.
const SFTPSubcommand = "node-sftp"

// ServeSFTP serves the sftp protocol on in and out until the client ends it, in the
// current directory (the login's home). It is what `tetherd node-sftp` runs.
func ServeSFTP(in io.Reader, out io.WriteCloser) error {
	wd, err := os.Getwd()
	if err != nil {
		wd = "/"
	}
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{in, out}, sftp.WithServerWorkingDirectory(wd))
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
