package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// fakeInfo is a file listing entry a (malicious) sftp server makes up.
type fakeInfo struct {
	name string
	dir  bool
}

func (f fakeInfo) Name() string { return f.name }
func (f fakeInfo) Size() int64  { return 4 }
func (f fakeInfo) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (f fakeInfo) ModTime() time.Time { return time.Unix(0, 0) }
func (f fakeInfo) IsDir() bool        { return f.dir }
func (f fakeInfo) Sys() any           { return nil }

type listerAt []os.FileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if int(off)+n == len(l) {
		return n, io.EOF
	}
	return n, nil
}

// evilNode answers Stat and List as list says; every file reads "evil".
type evilNode struct {
	list func(method, path string) []os.FileInfo
	deny map[string]bool // paths whose reads the node refuses (permission denied)
}

func (e evilNode) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	return listerAt(e.list(r.Method, r.Filepath)), nil
}

func (e evilNode) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if e.deny[r.Filepath] {
		return nil, os.ErrPermission
	}
	return strings.NewReader("evil"), nil
}

// evilCopier is a copier whose sftp server is node, in process.
func evilCopier(t *testing.T, node evilNode) *copier {
	t.Helper()
	a, b := net.Pipe()
	srv := sftp.NewRequestServer(b, sftp.Handlers{FileGet: node, FilePut: sftp.InMemHandler().FilePut, FileCmd: sftp.InMemHandler().FileCmd, FileList: node})
	go func() { _ = srv.Serve() }()
	c, err := sftp.NewClientPipe(a, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return &copier{sftp: c, recursive: true, where: "visitor@evil"}
}

// A node lists the directory being copied with names that leave it: pkg/sftp's ReadDir
// keeps only path.Base of a name and drops "." and "..", but "x/.." reaches tether as
// "..", and "/" as "/". tether scp -r refuses them and writes nothing outside the target
// (OpenSSH's sftp client refuses such names too, CVE-2019-6111).
func TestSCPDownloadRefusesNamesThatLeaveTheTarget(t *testing.T) {
	for _, evil := range []string{"x/..", "../..", "x/.", "/", ""} {
		t.Run(strings.ReplaceAll(evil, "/", "_"), func(t *testing.T) {
			base := t.TempDir()
			target := filepath.Join(base, "in", "target")
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				t.Fatal(err)
			}
			c := evilCopier(t, evilNode{list: func(method, p string) []os.FileInfo {
				if method == "List" {
					return []os.FileInfo{fakeInfo{name: evil}}
				}
				return []os.FileInfo{fakeInfo{name: "d", dir: true}}
			}})
			err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "d", Remote: true}}, target)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("download with the entry %q: err = %v, want a refusal", evil, err)
			}
			var written []string
			_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, _ error) error {
				if !d.IsDir() {
					written = append(written, p)
				}
				return nil
			})
			if len(written) > 0 {
				t.Fatalf("files written: %v", written)
			}
		})
	}
}

// A node whose directory holds itself (a symbolic link loop, or a made-up endless tree)
// stops tether scp -r at a depth OpenSSH's sftp client also stops at, with an error.
func TestSCPDownloadStopsAtAnEndlessTree(t *testing.T) {
	target := filepath.Join(t.TempDir(), "target")
	c := evilCopier(t, evilNode{list: func(method, p string) []os.FileInfo {
		if method == "List" {
			return []os.FileInfo{fakeInfo{name: "loop", dir: true}}
		}
		return []os.FileInfo{fakeInfo{name: "loop", dir: true}}
	}})
	done := make(chan error, 1)
	go func() {
		done <- c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "d", Remote: true}}, target)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "levels") {
			t.Fatalf("err = %v, want a depth error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("tether scp -r follows an endless tree")
	}
}

// Plain names are copied as before.
func TestSCPDownloadCopiesPlainNames(t *testing.T) {
	target := filepath.Join(t.TempDir(), "target")
	c := evilCopier(t, evilNode{list: func(method, p string) []os.FileInfo {
		switch {
		case method == "List":
			return []os.FileInfo{fakeInfo{name: "a.txt"}, fakeInfo{name: "..hidden"}}
		case p == "/d":
			return []os.FileInfo{fakeInfo{name: "d", dir: true}}
		}
		return []os.FileInfo{fakeInfo{name: filepath.Base(p)}}
	}})
	if err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/d", Remote: true}}, target); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.txt", "..hidden"} {
		if b, err := os.ReadFile(filepath.Join(target, n)); err != nil || string(b) != "evil" {
			t.Fatalf("%s: %q %v", n, b, err)
		}
	}
}

// A node names its files and writes its sftp error messages itself: a name or a message
// holding terminal escapes (a window title, a screen clear, OSC 52 writing the user's
// clipboard) reaches the user's terminal escaped, in tether scp's progress lines and in its
// errors, as OpenSSH's sftp client sanitises them.
func TestSCPNodeNamesReachTheTerminalEscaped(t *testing.T) {
	const evil = "a\x1b]0;PWNED\a\x1b[2J\u009bb"
	target := filepath.Join(t.TempDir(), "target")
	c := evilCopier(t, evilNode{list: func(method, p string) []os.FileInfo {
		switch {
		case method == "List":
			return []os.FileInfo{fakeInfo{name: evil}}
		case p == "/d":
			return []os.FileInfo{fakeInfo{name: "d", dir: true}}
		}
		return []os.FileInfo{fakeInfo{name: path.Base(p)}}
	}})
	var out strings.Builder
	c.out = &out
	if err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/d", Remote: true}}, target); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(strings.TrimSuffix(out.String(), "\n"), "\x1b\a\u009b") {
		t.Fatalf("progress line with the node's escapes: %q", out.String())
	}
	if !strings.Contains(out.String(), `a\x1b]0;PWNED\a\x1b[2J\u009bb`) {
		t.Fatalf("progress line %q does not show the name escaped", out.String())
	}

	// The same name in an error: the node lists it as a directory entry that is neither a
	// file nor a directory.
	c = evilCopier(t, evilNode{list: func(method, p string) []os.FileInfo {
		switch {
		case method == "List":
			return []os.FileInfo{fakeInfo{name: evil}}
		case p == "/d":
			return []os.FileInfo{fakeInfo{name: "d", dir: true}}
		}
		return []os.FileInfo{symlinkInfo{fakeInfo{name: path.Base(p)}}}
	}})
	err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/d", Remote: true}}, filepath.Join(t.TempDir(), "t2"))
	if err == nil {
		t.Fatal("no error for an entry that is not a regular file")
	}
	if strings.ContainsAny(err.Error(), "\x1b\a\u009b") {
		t.Fatalf("error with the node's escapes: %q", err.Error())
	}
}

// symlinkInfo is an entry that is neither a regular file nor a directory.
type symlinkInfo struct{ fakeInfo }

func (symlinkInfo) Mode() fs.FileMode { return fs.ModeNamedPipe | 0o644 }

// A session the node's cluster refuses (a lock, a login no role allows) is said as the
// refusal, as tether ssh says it: tether scp said 'node N in cluster C did not start sftp
// (ssh: rejected: administratively prohibited ("... locked by lock \"l1\"")): is its sftp
// subsystem enabled?', x/crypto's chain and a wrong hint. The refusal's text is the
// cluster's: it reaches the terminal escaped.
func TestSCPSaysTheClustersRefusal(t *testing.T) {
	client := fakeSSHServer(t, func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "user alice is not authorized to login as visitor@leaf: locked by lock \"l1\"\x1b[2J")
		}
	})
	_, err := startSFTP(client, "node-east", "leaf-east")
	if err == nil {
		t.Fatal("sftp started on a refused session")
	}
	want := `user alice is not authorized to login as visitor@leaf: locked by lock "l1"\x1b[2J`
	if err.Error() != want {
		t.Fatalf("err = %q, want %q", err.Error(), want)
	}
}

// A target written as a directory (a trailing slash) that is none on the node is said as
// such, as OpenSSH's scp does, before anything is opened: tether scp f node:/tmp/nonexist/
// said 'writing visitor@node-east:/tmp/nonexist/: sftp: "open /tmp/nonexist/: is a
// directory" (SSH_FX_FAILURE)' (found by the acceptance pass on the demo's node-east).
func TestSCPUploadIntoAMissingDirectorySaysSo(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := evilCopier(t, evilNode{list: func(string, string) []os.FileInfo { return nil }})
	err := c.upload([]scpPath{{Path: src}}, "/nonexist/")
	if err == nil || err.Error() != "visitor@evil:/nonexist/ is not a directory on the node (it does not exist, or is a file)" {
		t.Fatalf("err = %v", err)
	}
}

// brokenNode fails every read with its own message.
type brokenNode struct{ evilNode }

func (brokenNode) Fileread(*sftp.Request) (io.ReaderAt, error) {
	return nil, errors.New("the disk is on fire")
}

// A node's own failure message is said without pkg/sftp's framing (sftp: "..."
// (SSH_FX_FAILURE)), as OpenSSH's scp says the server's message.
func TestSCPSaysTheNodesMessageWithoutSFTPFraming(t *testing.T) {
	a, b := net.Pipe()
	node := brokenNode{evilNode{list: func(string, string) []os.FileInfo { return []os.FileInfo{fakeInfo{name: "f"}} }}}
	srv := sftp.NewRequestServer(b, sftp.Handlers{FileGet: node, FilePut: sftp.InMemHandler().FilePut, FileCmd: sftp.InMemHandler().FileCmd, FileList: node})
	go func() { _ = srv.Serve() }()
	sc, err := sftp.NewClientPipe(a, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); srv.Close() })
	c := &copier{sftp: sc, where: "visitor@evil"}
	err = c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/f", Remote: true}}, filepath.Join(t.TempDir(), "f"))
	if err == nil || err.Error() != "reading visitor@evil:/f: the disk is on fire" {
		t.Fatalf("err = %v", err)
	}
}

// tether scp -r goes on past a file the node will not give (permission denied), as
// OpenSSH's scp does: it says which, copies the rest, and fails at the end (status 1).
// Found by the acceptance pass: tether scp -r visitor@node:/etc/default stopped at the
// first unreadable file.
func TestSCPRecursiveGoesOnPastAFileItCannotRead(t *testing.T) {
	target := filepath.Join(t.TempDir(), "target")
	c := evilCopier(t, evilNode{deny: map[string]bool{"/d/secret": true}, list: func(method, p string) []os.FileInfo {
		switch {
		case method == "List":
			return []os.FileInfo{fakeInfo{name: "a.txt"}, fakeInfo{name: "secret"}, fakeInfo{name: "z.txt"}}
		case p == "/d":
			return []os.FileInfo{fakeInfo{name: "d", dir: true}}
		}
		return []os.FileInfo{fakeInfo{name: filepath.Base(p)}}
	}})
	var errOut bytes.Buffer
	c.errOut = &errOut
	err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/d", Remote: true}}, target)
	if err == nil || !strings.Contains(err.Error(), "1 file") {
		t.Fatalf("download: %v, want the count of files not copied", err)
	}
	if !strings.Contains(errOut.String(), "visitor@evil:/d/secret: permission denied") {
		t.Fatalf("the file not copied is not named: %q", errOut.String())
	}
	for _, n := range []string{"a.txt", "z.txt"} {
		if b, err := os.ReadFile(filepath.Join(target, n)); err != nil || string(b) != "evil" {
			t.Fatalf("%s after the refused file: %q %v", n, b, err)
		}
	}
	// pkg/sftp hands some of the node's answers on as os.ErrPermission and os.ErrNotExist
	// (a real node's unreadable file came so): one file too, the copy goes on.
	for _, e := range []error{os.ErrPermission, os.ErrNotExist, fmt.Errorf("open: %w", os.ErrPermission)} {
		var fe *fileError
		if err := c.remoteErr("reading", "/d/x", e); !errors.As(err, &fe) {
			t.Errorf("remoteErr(%v) = %#v, not one file's error", e, err)
		}
	}
	if err := c.remoteErr("reading", "/d/x", io.ErrUnexpectedEOF); err == nil || errors.As(err, new(*fileError)) {
		t.Errorf("a broken session is one file's error: %v", err)
	}
	// One file named alone is still its own error, as before.
	c.errOut = &bytes.Buffer{}
	if err := c.download([]scpPath{{Login: "visitor", Node: "evil", Path: "/d/secret", Remote: true}}, filepath.Join(target, "one")); err == nil || !strings.Contains(err.Error(), "reading visitor@evil:/d/secret: permission denied") {
		t.Fatalf("one refused file: %v", err)
	}
}

// fsCopier is a copier whose sftp server serves this machine's files, in process.
func fsCopier(t *testing.T) *copier {
	t.Helper()
	a, b := net.Pipe()
	srv, err := sftp.NewServer(b)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	c, err := sftp.NewClientPipe(a, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return &copier{sftp: c, recursive: true, where: "visitor@node"}
}

// tether scp -p keeps the modification times (and modes) of files and directories, both
// ways, as OpenSSH's scp -p and tsh scp -p do; without it a copy is new. -P (a port) is taken
// and, as tether ssh -p, left to the node's registered address. Found by the acceptance
// pass: tether scp -rp failed with "unknown shorthand flag: 'p'".
func TestSCPPreserveKeepsTimes(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "d", "f"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(src, "d", "f"), filepath.Join(src, "d")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, preserve := range []bool{true, false} {
		for _, dir := range []string{"upload", "download"} {
			dst := filepath.Join(t.TempDir(), "copy")
			c := fsCopier(t)
			c.preserve = preserve
			var err error
			if dir == "upload" {
				err = c.upload([]scpPath{{Path: filepath.Join(src, "d")}}, dst)
			} else {
				err = c.download([]scpPath{{Login: "visitor", Node: "node", Path: filepath.Join(src, "d"), Remote: true}}, dst)
			}
			if err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			for _, p := range []string{filepath.Join(dst, "f"), dst} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if kept := st.ModTime().Equal(old); kept != preserve {
					t.Errorf("%s with preserve=%v: %s has the time %v", dir, preserve, p, st.ModTime())
				}
			}
		}
	}
	t.Setenv("TETHER_HOME", t.TempDir())
	cmd := rootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"scp", "-rp", "-P", "22", src, "visitor@node:/tmp/"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("tether scp -rp -P 22: %v, want the sign-in advice", err)
	}
}
