package testproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
)

// User is a person with the tether binary and a profile directory of their own
// (TETHER_HOME), and the authenticator app they enrolled at sign-up.
type User struct {
	Name     string
	Home     string
	Password string
	Proxy    string // what `tetherctl users add` told them to sign in at
	CAFile   string
	bin      string
	secret   []byte
	lastStep int64 // the last TOTP step whose code the cluster accepted
}

// NewUser is a user with an empty profile directory, removed when owner ends.
func NewUser(owner Owner, bins Bins, name string) *User {
	return &User{Name: name, Home: filepath.Join(owner.TempDir(), "tether-home"), bin: bins.Tether}
}

// Command is `tether ARGS` run as the user, with their TETHER_HOME.
func (u *User) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = u.Env()
	return cmd
}

// Env is the environment the user's commands run with (OpenSSH's too, for ProxyCommand).
func (u *User) Env() []string { return append(os.Environ(), "TETHER_HOME="+u.Home) }

// Tether runs `tether ARGS` to its end (at most 90 s) with stdin.
func (u *User) Tether(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := u.Command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return Run(t, cmd)
}

// MustTether is Tether failing the test unless tether exits 0; it returns stdout.
func (u *User) MustTether(t testing.TB, args ...string) string {
	t.Helper()
	r := u.Tether(t, "", args...)
	if r.Code != 0 {
		t.Fatalf("%s: tether %s: %s", u.Name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

var (
	signupLine = regexp.MustCompile(`(?m)^\s*tether (users signup .*)$`)
	proxyFlag  = regexp.MustCompile(`--proxy=(\S+)`)
	caFlag     = regexp.MustCompile(`--ca-file=(\S+)`)
)

// SignUp runs the `tether users signup` command that `tetherctl users add/reset` printed,
// as printed, answering the prompts as a person would: the password twice, then the
// current code of the secret it shows.
func (u *User) SignUp(t testing.TB, printed, password string) {
	t.Helper()
	m := signupLine.FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("no tether users signup command in:\n%s", printed)
	}
	if p := proxyFlag.FindStringSubmatch(m[1]); p != nil {
		u.Proxy = p[1]
	}
	if c := caFlag.FindStringSubmatch(m[1]); c != nil {
		u.CAFile = c[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := u.Command(ctx, strings.Fields(m[1])...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var errOut testenv.Buffer
	cmd.Stderr = &errOut
	DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "%s\n%s\n", password, password)
	sc := bufio.NewScanner(stdout)
	var seen strings.Builder
	u.secret = nil
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if s, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Secret: "); ok {
			secret, err := auth.DecodeTOTPSecret(s)
			if err != nil {
				t.Fatalf("sign-up showed a secret that is not base32: %v", err)
			}
			u.secret = secret
			break
		}
	}
	if u.secret == nil {
		_ = cmd.Wait()
		t.Fatalf("sign-up showed no secret:\n%s%s", seen.String(), errOut.String())
	}
	now := time.Now()
	fmt.Fprintf(stdin, "%s\n", auth.TOTPCode(u.secret, now))
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sign-up: %v\n%s%s%s", err, seen.String(), rest, errOut.String())
	}
	u.Password = password
	u.lastStep = step(now)
}

func step(at time.Time) int64 { return at.Unix() / int64(auth.TOTPPeriod/time.Second) }

// NextCode is the code an authenticator shows for the next step the cluster has not seen:
// a code is accepted once, so a second sign-in within one 30-second step waits for the next.
func (u *User) NextCode() string {
	next := u.lastStep + 1
	for step(time.Now()) < next-1 { // the cluster accepts one step either side of now
		time.Sleep(200 * time.Millisecond)
	}
	if cur := step(time.Now()); next < cur {
		next = cur
	}
	u.lastStep = next
	return auth.TOTPCode(u.secret, time.Unix(next*int64(auth.TOTPPeriod/time.Second), 0))
}

// Login runs `tether login --proxy --ca-file --user [ARGS]` with the password and the next
// code, failing the test unless it signs in; it returns what login printed.
func (u *User) Login(t testing.TB, args ...string) string {
	t.Helper()
	r := u.TryLogin(t, args...)
	if r.Code != 0 {
		t.Fatalf("%s: tether login: %s", u.Name, r)
	}
	return r.Stdout
}

// TryLogin is Login that returns how it went.
func (u *User) TryLogin(t testing.TB, args ...string) Result {
	t.Helper()
	return u.Tether(t, u.Password+"\n"+u.NextCode()+"\n",
		append([]string{"login", "--proxy=" + u.Proxy, "--ca-file=" + u.CAFile, "--user=" + u.Name}, args...)...)
}
