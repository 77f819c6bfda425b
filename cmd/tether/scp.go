package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tetherproject/tether/gateway/auth"

	"github.com/pkg/sftp"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// tether scp copies files to and from a node over the sftp subsystem, through the same
// path as tether ssh (proxy, the leaf's tunnel, the leaf's ssh.session decision), as
// OpenSSH's scp does by default since 9.0.

// scpPath is one argument of tether scp: a local path, or login@node:path.
type scpPath struct {
	Login, Node, Path string
	Remote            bool
}

// parseSCPPath reads login@node:path as remote; anything else (including a path with a
// colon after a slash, ./a:b) is local, as scp does.
func parseSCPPath(s string) (scpPath, error) {
	colon := strings.IndexByte(s, ':')
	if colon < 0 || strings.ContainsRune(s[:colon], '/') {
		if s == "" {
			return scpPath{}, errors.New("an empty path")
		}
		return scpPath{Path: s}, nil
	}
	host, p := s[:colon], s[colon+1:]
	login, node, ok := strings.Cut(host, "@")
	if !ok || login == "" || node == "" || strings.ContainsAny(login, "@ ") || strings.ContainsAny(node, "@ ") {
		return scpPath{}, fmt.Errorf("%q: a remote path is login@node:path (tether ls lists the nodes and your logins)", s)
	}
	if p == "" {
		p = "."
	}
	return scpPath{Login: login, Node: node, Path: p, Remote: true}, nil
}

func scpCommand() *cobra.Command {
	var (
		cluster   string
		recursive bool
		quiet     bool
		preserve  bool
		port      int
	)
	cmd := &cobra.Command{
		Use:   "scp [-r] [-p] [-q] [--cluster=X] source... target",
		Short: "Copy files to or from a node (login@node:path) over sftp, through the proxy, as a login your roles allow",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var paths []scpPath
			for _, a := range args {
				sp, err := parseSCPPath(a)
				if err != nil {
					return err
				}
				paths = append(paths, sp)
			}
			srcs, dst := paths[:len(paths)-1], paths[len(paths)-1]
			var remote *scpPath
			for i := range paths {
				if !paths[i].Remote {
					continue
				}
				if remote != nil && (paths[i].Login != remote.Login || paths[i].Node != remote.Node) {
					return errors.New("copies between two nodes are not supported: copy to this machine first")
				}
				remote = &paths[i]
			}
			switch {
			case remote == nil:
				return errors.New("no remote path: name one as login@node:path (use cp for local copies)")
			case dst.Remote:
				for _, s := range srcs {
					if s.Remote {
						return errors.New("copies between two remote paths are not supported: copy to this machine first")
					}
				}
			default:
				for _, s := range srcs {
					if !s.Remote {
						return fmt.Errorf("%s is local and so is the target: name the node's side as login@node:path", s.Path)
					}
				}
			}
			p, err := loadProfile()
			if err != nil {
				return err
			}
			node := userNodeName(remote.Node)
			if cluster == "" {
				if cluster, err = findNodeCluster(cmd, p, node); err != nil {
					return err
				}
			}
			node = nodeOfName(node, cluster)
			client, closeAll, err := dialNode(ctxOf(cmd), p, remote.Login, node, 22, cluster)
			if err != nil {
				return err
			}
			defer closeAll()
			sc, err := startSFTP(client, node, cluster)
			if err != nil {
				return err
			}
			defer sc.Close()
			cp := &copier{sftp: sc, recursive: recursive, where: fmt.Sprintf("%s@%s", remote.Login, node), errOut: cmd.ErrOrStderr(), preserve: preserve}
			if !quiet {
				cp.out = cmd.ErrOrStderr()
			}
			if dst.Remote {
				return cp.upload(srcs, dst.Path)
			}
			return cp.download(srcs, dst.Path)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster of the node (default: the one cluster where the node is found)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy directories and what they hold")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors")
	cmd.Flags().BoolVarP(&preserve, "preserve", "p", false, "keep the files' modification and access times (and modes), as scp -p")
	cmd.Flags().IntVarP(&port, "port", "P", 22, "the node's SSH port (the node's registered address decides; kept for scp compatibility)")
	return cmd
}

// startSFTP starts the sftp subsystem on client. A session the node's cluster refuses (a
// lock, a login no role allows) is said as the cluster's refusal, as tether ssh says it,
// escaped for the terminal.
func startSFTP(client *ssh.Client, node, cluster string) (*sftp.Client, error) {
	sc, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err == nil {
		return sc, nil
	}
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) {
		return nil, errors.New(openFailure(err))
	}
	return nil, fmt.Errorf("node %s in cluster %s did not start sftp (%s): is its sftp subsystem enabled?", node, cluster, auth.TerminalSafe(err.Error()))
}

// copier copies between this machine and one node's sftp server.
type copier struct {
	sftp      *sftp.Client
	recursive bool
	where     string
	out       io.Writer
	errOut    io.Writer // where a file not copied is said, when the copy goes on (-r, several sources)
	skipped   int       // files not copied
	preserve  bool      // -p: the copies keep the sources' modification and access times
}

// atime is st's access time when the node's sftp server gave one, else (a file of this
// machine, read portably) its modification time.
func atime(st os.FileInfo) time.Time {
	if sys, ok := st.Sys().(*sftp.FileStat); ok && sys.Atime != 0 {
		return time.Unix(int64(sys.Atime), 0)
	}
	return st.ModTime()
}

// keepTimesThere gives the node's remote the times of st (-p).
func (c *copier) keepTimesThere(remote string, st os.FileInfo) error {
	if !c.preserve {
		return nil
	}
	if err := c.sftp.Chtimes(remote, atime(st), st.ModTime()); err != nil {
		return c.remoteErr("setting the times of", remote, err)
	}
	return nil
}

// keepTimesHere gives local the times of st (-p).
func (c *copier) keepTimesHere(local string, st os.FileInfo) error {
	if !c.preserve {
		return nil
	}
	if err := os.Chtimes(local, atime(st), st.ModTime()); err != nil {
		return &fileError{fmt.Sprintf("%s: %v", local, errors.Unwrap(err))}
	}
	return nil
}

// fileError is one file the node (or this machine) would not read or write: a copy of a
// directory or of several sources goes on past it, as OpenSSH's scp does. Other errors (the
// connection, a name the node should not have listed) end the copy.
type fileError struct{ msg string }

func (e *fileError) Error() string { return e.msg }

// goOn reports whether the copy goes on past err, having said it on errOut.
func (c *copier) goOn(err error) bool {
	var fe *fileError
	if !errors.As(err, &fe) || c.errOut == nil {
		return false
	}
	fmt.Fprintln(c.errOut, "tether scp:", auth.TerminalSafe(err.Error()))
	c.skipped++
	return true
}

// finish is the copy's error: err, or, when files were passed over, how many.
func (c *copier) finish(err error) error {
	if err == nil && c.skipped > 0 {
		noun := "files were"
		if c.skipped == 1 {
			noun = "file was"
		}
		err = fmt.Errorf("%d %s not copied (said above)", c.skipped, noun)
	}
	return safeErr(err)
}

// logf prints a progress line. It names files the node named: their control characters
// are written escaped (auth.TerminalSafe), as OpenSSH's sftp client sanitises them.
func (c *copier) logf(format string, args ...any) {
	if c.out != nil {
		fmt.Fprintln(c.out, auth.TerminalSafe(fmt.Sprintf(format, args...)))
	}
}

// statusMessage is the node's own message in se, without pkg/sftp's framing
// (sftp: "MESSAGE" (SSH_FX_...)), which keeps the message unexported; the framing when
// there is no message.
func statusMessage(se *sftp.StatusError) string {
	full := se.Error()
	if rest, ok := strings.CutPrefix(full, "sftp: "); ok {
		if i := strings.LastIndex(rest, " ("); i > 0 {
			if m, err := strconv.Unquote(rest[:i]); err == nil && m != "" {
				return m
			}
		}
	}
	return full
}

// remoteErr says what failed on the node without sftp's framing.
func (c *copier) remoteErr(what, p string, err error) error {
	var se *sftp.StatusError
	msg := err.Error()
	if errors.As(err, &se) {
		switch se.FxCode() {
		case sftp.ErrSSHFxNoSuchFile:
			msg = "no such file or directory"
		case sftp.ErrSSHFxPermissionDenied:
			msg = "permission denied"
		default:
			msg = statusMessage(se)
		}
		// The node's answer about this one file: the session is fine.
		return &fileError{fmt.Sprintf("%s %s:%s: %s", what, c.where, p, msg)}
	}
	// pkg/sftp turns some of the node's answers into these (normaliseError).
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &fileError{fmt.Sprintf("%s %s:%s: no such file or directory", what, c.where, p)}
	case errors.Is(err, os.ErrPermission):
		return &fileError{fmt.Sprintf("%s %s:%s: permission denied", what, c.where, p)}
	}
	return fmt.Errorf("%s %s:%s: %s", what, c.where, p, msg)
}

// safeErr is err with its text terminal-safe: errors name files the node named and carry
// the node's own sftp messages.
func safeErr(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(auth.TerminalSafe(err.Error()))
}

// upload copies local srcs to dst on the node: into dst when it is a directory (or
// when there are several sources), else as dst.
func (c *copier) upload(srcs []scpPath, dst string) error {
	return c.finish(c.uploadAll(srcs, dst))
}

func (c *copier) uploadAll(srcs []scpPath, dst string) error {
	st, err := c.sftp.Stat(dst)
	intoDir := err == nil && st.IsDir()
	if len(srcs) > 1 && !intoDir {
		return fmt.Errorf("%s:%s is not a directory: several sources need one", c.where, dst)
	}
	// A file into a directory that is not there (scp -r of a directory creates it).
	if ls, lerr := os.Stat(srcs[0].Path); !intoDir && strings.HasSuffix(dst, "/") && lerr == nil && !ls.IsDir() {
		return fmt.Errorf("%s:%s is not a directory on the node (it does not exist, or is a file)", c.where, dst)
	}
	for _, s := range srcs {
		target := dst
		if intoDir {
			target = path.Join(dst, filepath.Base(s.Path))
		}
		if err := c.put(s.Path, target); err != nil && (len(srcs) == 1 || !c.goOn(err)) {
			return err
		}
	}
	return nil
}

func (c *copier) put(local, remote string) error {
	st, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("%s: %v", local, errors.Unwrap(err))
	}
	if st.IsDir() {
		if !c.recursive {
			return fmt.Errorf("%s is a directory: use -r to copy it", local)
		}
		if err := c.sftp.Mkdir(remote); err != nil {
			if rs, serr := c.sftp.Stat(remote); serr != nil || !rs.IsDir() {
				return c.remoteErr("creating", remote, err)
			}
		}
		entries, err := os.ReadDir(local)
		if err != nil {
			return fmt.Errorf("%s: %v", local, err)
		}
		for _, e := range entries {
			if err := c.put(filepath.Join(local, e.Name()), path.Join(remote, e.Name())); err != nil && !c.goOn(err) {
				return err
			}
		}
		return c.keepTimesThere(remote, st)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", local)
	}
	in, err := os.Open(local)
	if err != nil {
		return &fileError{fmt.Sprintf("%s: %v", local, errors.Unwrap(err))}
	}
	defer in.Close()
	out, err := c.sftp.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return c.remoteErr("writing", remote, err)
	}
	n, err := out.ReadFrom(in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.remoteErr("writing", remote, err)
	}
	_ = c.sftp.Chmod(remote, st.Mode().Perm())
	if err := c.keepTimesThere(remote, st); err != nil {
		return err
	}
	c.logf("%s -> %s:%s (%d bytes)", local, c.where, remote, n)
	return nil
}

// download copies srcs from the node to dst here.
func (c *copier) download(srcs []scpPath, dst string) error {
	return c.finish(c.downloadAll(srcs, dst))
}

func (c *copier) downloadAll(srcs []scpPath, dst string) error {
	st, err := os.Stat(dst)
	intoDir := err == nil && st.IsDir()
	if len(srcs) > 1 && !intoDir {
		return fmt.Errorf("%s is not a directory: several sources need one", dst)
	}
	for _, s := range srcs {
		target := dst
		if intoDir {
			target = filepath.Join(dst, path.Base(s.Path))
		}
		if err := c.get(s.Path, target); err != nil && (len(srcs) == 1 || !c.goOn(err)) {
			return err
		}
	}
	return nil
}

// maxSCPDepth is how many directory levels tether scp -r descends, as OpenSSH's sftp
// client (MAX_DIR_DEPTH): a symbolic link loop on the node ends with an error.
const maxSCPDepth = 64

// plainName reports whether a name a node listed is one path element that stays in
// the directory being copied: not empty, ".", "..", and without '/' or NUL.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func (c *copier) get(remote, local string) error {
	return c.getDepth(remote, local, 0)
}

func (c *copier) getDepth(remote, local string, depth int) error {
	st, err := c.sftp.Stat(remote)
	if err != nil {
		return c.remoteErr("reading", remote, err)
	}
	if st.IsDir() {
		if !c.recursive {
			return fmt.Errorf("%s:%s is a directory: use -r to copy it", c.where, remote)
		}
		if depth >= maxSCPDepth {
			return fmt.Errorf("%s:%s is more than %d directory levels deep (a symbolic link loop?): not copied", c.where, remote, maxSCPDepth)
		}
		if err := os.Mkdir(local, st.Mode().Perm()|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %v", local, errors.Unwrap(err))
		}
		entries, err := c.sftp.ReadDir(remote)
		if err != nil {
			return c.remoteErr("listing", remote, err)
		}
		// A name is the node's word: one that is not a plain name would write outside
		// local (OpenSSH refuses them too, CVE-2019-6111).
		for _, e := range entries {
			if !plainName(e.Name()) {
				return fmt.Errorf("%s:%s: the node listed an entry named %q, which is not a plain file name: refused, nothing written outside %s", c.where, remote, e.Name(), local)
			}
		}
		for _, e := range entries {
			if err := c.getDepth(path.Join(remote, e.Name()), filepath.Join(local, e.Name()), depth+1); err != nil && !c.goOn(err) {
				return err
			}
		}
		return c.keepTimesHere(local, st)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s:%s is not a regular file", c.where, remote)
	}
	in, err := c.sftp.Open(remote)
	if err != nil {
		return c.remoteErr("reading", remote, err)
	}
	defer in.Close()
	out, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return &fileError{fmt.Sprintf("%s: %v", local, errors.Unwrap(err))}
	}
	n, err := in.WriteTo(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.remoteErr("reading", remote, err)
	}
	if err := c.keepTimesHere(local, st); err != nil {
		return err
	}
	c.logf("%s:%s -> %s (%d bytes)", c.where, remote, local, n)
	return nil
}
