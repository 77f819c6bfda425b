package node

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// localUser is a login on this host: who a session's processes run as.
type localUser struct {
	Name, Home, Shell string
	UID, GID          uint32
	Groups            []uint32
}

// errNoSuchLogin: the requested login is not a user on this host.
var errNoSuchLogin = errors.New("no such user on this node")

// lookupUser finds login with os/user (uid, gid, home, supplementary groups) and its
// shell in /etc/passwd (os/user does not report it). A login that is not a user here is
// errNoSuchLogin. When the agent is not root it can only run processes as itself, so
// any other login is refused.
func lookupUser(login string) (*localUser, error) {
	u, err := user.Lookup(login)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("login %q: %w", login, errNoSuchLogin)
		}
		return nil, fmt.Errorf("looking up login %q: %w", login, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("login %q: unreadable uid or gid: %w", login, err)
	}
	lu := &localUser{Name: u.Username, Home: u.HomeDir, UID: uint32(uid), GID: uint32(gid), Shell: passwdShell(login)}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("login %q: looking up its groups: %w", login, err)
	}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("login %q: unreadable group id %q", login, g)
		}
		lu.Groups = append(lu.Groups, uint32(n))
	}
	if euid := os.Geteuid(); euid != 0 && uint32(euid) != lu.UID {
		return nil, fmt.Errorf("login %q: this node agent runs as uid %d, not root, and can only start sessions as its own user", login, euid)
	}
	return lu, nil
}

// passwdShell is login's shell from /etc/passwd, or /bin/sh.
func passwdShell(login string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/bin/sh"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == login && fields[6] != "" {
			return fields[6]
		}
	}
	return "/bin/sh"
}

// defaultPath is PATH for sessions, as OpenSSH's default for users (root gets the sbin
// folders too).
func (u *localUser) defaultPath() string {
	if u.UID == 0 {
		return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return "/usr/local/bin:/usr/bin:/bin:/usr/games"
}

// baseEnv is the environment every session starts from; nothing of the agent's own.
func (u *localUser) baseEnv() []string {
	return []string{
		"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "SHELL=" + u.Shell,
		"PATH=" + u.defaultPath(),
	}
}

// command prepares a child that runs as u: its uid, gid and groups, in its home (or /
// when the home is missing, as OpenSSH does), with env. The agent never runs a
// session's program as itself.
func (u *localUser) command(path string, args []string, env []string) *exec.Cmd {
	cmd := &exec.Cmd{Path: path, Args: args, Env: env, Dir: u.Home}
	if st, err := os.Stat(u.Home); err != nil || !st.IsDir() {
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
	}
	return cmd
}

// shellCommand runs the user's login shell (argv[0] "-bash"), or command with it.
func (u *localUser) shellCommand(command string, env []string) *exec.Cmd {
	base := filepath.Base(u.Shell)
	if command == "" {
		return u.command(u.Shell, []string{"-" + base}, env)
	}
	return u.command(u.Shell, []string{base, "-c", command}, env)
}
