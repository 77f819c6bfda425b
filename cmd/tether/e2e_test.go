package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
	"github.com/tetherproject/tether/internal/testproc"
)

// binaries returns tetherd, tetherctl and tether, built once per test run by testproc.
func binaries(t *testing.T) (tetherd, tetherctl, tether string) {
	t.Helper()
	bins := testproc.Build(t)
	return bins.Tetherd, bins.Tetherctl, bins.Tether
}

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.Cleanup()
	os.Exit(code)
}

type proc struct {
	name, dataDir, addr string
	log                 *testenv.Buffer
	pid                 int // of the running tetherd
}

func startTetherd(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	return launchTetherd(t, bin, name, func(dir, addr string) string {
		return fmt.Sprintf("cluster_name: %s\ndata_dir: %s/data\nproxy:\n  web_listen_addr: %s\n", name, dir, addr)
	}, args...)
}

// launchTetherd runs `tetherd start` for cluster name on a free 127.0.0.1 port, with the
// configuration config(dir, addr) returns for its fresh directory and web address, until
// the test ends (it must then stop cleanly on SIGTERM), and waits for its web API.
func launchTetherd(t *testing.T, bin, name string, config func(dir, addr string) string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(cfg, []byte(config(dir, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, dataDir: filepath.Join(dir, "data"), addr: addr, log: &testenv.Buffer{}}
	cmd := exec.Command(bin, append([]string{"start", "-c", cfg}, args...)...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s did not stop cleanly: %v\n%s", name, err, p.log)
		}
	})
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := probe.Get("https://" + addr + "/webapi/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// decisionLogOf is where startTetherdWithLog and startTetherdWith put p's decision log.
func decisionLogOf(p *proc) string { return filepath.Join(filepath.Dir(p.dataDir), "decisions.jsonl") }

func (p *proc) ctl(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--data-dir", p.dataDir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: tetherctl %s: %v\n%s", p.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// user runs tether with its own profile directory.
type user struct {
	bin, home string
}

func (u user) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = append(os.Environ(), "TETHER_HOME="+u.home)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (u user) must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := u.run(t, stdin, args...)
	if err != nil {
		t.Fatalf("tether %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

var signupLine = regexp.MustCompile(`(?m)^  tether (users signup .*)$`)

// signUp runs the command `tetherctl users add/reset` printed, as printed, answering the
// prompts the way a person would: the password twice, then the code of the secret it shows.
func (u user) signUp(t *testing.T, printed, password string) []byte {
	t.Helper()
	return u.signUpWithToken(t, printed, password, tokenAsArgument)
}

// How a sign-up is given its token: as the printed command's argument, in
// TETHER_SIGNUP_TOKEN, or typed at the prompt.
const (
	tokenAsArgument = iota
	tokenInEnvironment
	tokenAtPrompt
)

func (u user) signUpWithToken(t *testing.T, printed, password string, via int) []byte {
	t.Helper()
	m := signupLine.FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("no tether users signup command in:\n%s", printed)
	}
	args := strings.Fields(m[1])
	token := args[len(args)-1]
	if via != tokenAsArgument {
		args = args[:len(args)-1]
	}
	cmd := exec.Command(u.bin, args...)
	cmd.Env = append(os.Environ(), "TETHER_HOME="+u.home)
	if via == tokenInEnvironment {
		cmd.Env = append(cmd.Env, "TETHER_SIGNUP_TOKEN="+token)
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if via == tokenAtPrompt {
		fmt.Fprintf(stdin, "%s\n", token)
	}
	fmt.Fprintf(stdin, "%s\n%s\n", password, password)
	sc := bufio.NewScanner(stdout)
	var secret []byte
	var seen strings.Builder
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if s, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Secret: "); ok {
			var err error
			if secret, err = auth.DecodeTOTPSecret(s); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if secret == nil {
		_ = cmd.Wait()
		t.Fatalf("signup showed no secret:\n%s%s", seen.String(), errOut.String())
	}
	if !strings.Contains(seen.String(), "otpauth://totp/") {
		t.Fatalf("no otpauth URI:\n%s", seen.String())
	}
	fmt.Fprintf(stdin, "%s\n", auth.TOTPCode(secret, time.Now()))
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("signup: %v\n%s%s%s", err, seen.String(), rest, errOut.String())
	}
	if !strings.Contains(string(rest), "tether login --proxy=") {
		t.Fatalf("signup does not say how to sign in:\n%s", rest)
	}
	return secret
}

type statusOut struct {
	User       string    `json:"user"`
	Cluster    string    `json:"cluster"`
	Roles      []string  `json:"roles"`
	Logins     []string  `json:"logins"`
	ValidUntil time.Time `json:"valid_until"`
	Leaves     []struct {
		Name       string   `json:"name"`
		Mapped     []string `json:"mapped_roles"`
		RolesKnown bool     `json:"mapped_roles_known"`
		State      string   `json:"state"`
		Error      string   `json:"error"`
	} `json:"leaf_clusters"`
}

// The sign-up token need not be a command-line argument, which every user of a shared
// machine can read (/proc/PID/cmdline) while the owner types a password: with the token,
// another user could read the one-time code secret and sign up first. tether users signup
// takes it from TETHER_SIGNUP_TOKEN or asks for it, and users add says so.
func TestSignUpTokenNeedNotBeAnArgument(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	root := startTetherd(t, tetherd, "root.example.com")
	for _, tc := range []struct {
		name string
		via  int
	}{{"carol", tokenInEnvironment}, {"dave", tokenAtPrompt}} {
		added := root.ctl(t, tetherctl, "users", "add", tc.name, "--roles=access", "--logins="+tc.name)
		if !strings.Contains(added, "TETHER_SIGNUP_TOKEN") {
			t.Errorf("users add does not say how to keep the token off the command line:\n%s", added)
		}
		u := user{bin: tether, home: filepath.Join(t.TempDir(), tc.name)}
		if secret := u.signUpWithToken(t, added, "correct horse battery", tc.via); len(secret) == 0 {
			t.Fatalf("%s: no secret", tc.name)
		}
	}
	// No token anywhere and nothing typed: a clear error, not a Go error chain.
	u := user{bin: tether, home: filepath.Join(t.TempDir(), "none")}
	out, errOut, err := u.run(t, "", "users", "signup", "--proxy="+root.addr, "--insecure")
	if err == nil || !strings.Contains(errOut, "sign-up token") || strings.Contains(errOut, "EOF") {
		t.Fatalf("signup without a token: %v\n%s%s", err, out, errOut)
	}
}

// A password the cluster would refuse for its length is refused when typed, before the
// one-time code secret is shown and a code asked for (it was refused only at the end).
func TestSignUpRefusesAShortPasswordBeforeTheCode(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	root := startTetherd(t, tetherd, "root.example.com")
	added := root.ctl(t, tetherctl, "users", "add", "erin", "--roles=access", "--logins=erin")
	m := signupLine.FindStringSubmatch(added)
	if m == nil {
		t.Fatalf("no sign-up command in:\n%s", added)
	}
	u := user{bin: tether, home: filepath.Join(t.TempDir(), "erin")}
	out, errOut, err := u.run(t, "short\nshort\n123456\n", strings.Fields(m[1])...)
	if err == nil || !strings.Contains(errOut, "at least 8 characters") || strings.Contains(out, "Secret:") {
		t.Fatalf("a 5-character password: %v\n%s%s", err, out, errOut)
	}
	// The token was not used up: the sign-up works with a good password.
	if secret := u.signUp(t, added, "correct horse battery"); len(secret) == 0 {
		t.Fatal("no secret")
	}
}

func TestSignInEndToEnd(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	root := startTetherd(t, tetherd, "root.example.com")
	alice := user{bin: tether, home: filepath.Join(t.TempDir(), "profile")}

	// The admin adds alice and hands over the printed command; the admin never sees a password.
	added := root.ctl(t, tetherctl, "users", "add", "alice", "--roles=access", "--logins=visitor,ubuntu")
	if !strings.Contains(added, "--ca-file=") || !strings.Contains(added, "--proxy="+root.addr) {
		t.Fatalf("users add printed:\n%s", added)
	}
	const password = "correct horse battery"
	secret := alice.signUp(t, added, password)
	if strings.Contains(root.log.String(), password) {
		t.Fatal("the cluster logged the password")
	}
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]

	// The sign-up's code is used; the next step's code signs in.
	code := func() string { return auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod)) }
	used := code() // the code this sign-in spends; a loaded machine may cross a step before it is tried again
	out := alice.must(t, password+"\n"+used+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice")
	if !strings.Contains(out, "Logged in as:       alice") || !strings.Contains(out, "Logins:             visitor, ubuntu") {
		t.Fatalf("login printed:\n%s", out)
	}

	var st statusOut
	if err := json.Unmarshal([]byte(alice.must(t, "", "status", "-f", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.User != "alice" || st.Cluster != "root.example.com" || strings.Join(st.Roles, ",") != "access" || strings.Join(st.Logins, ",") != "visitor,ubuntu" {
		t.Fatalf("status %+v", st)
	}
	if d := time.Until(st.ValidUntil); d < 11*time.Hour || d > 12*time.Hour+time.Minute {
		t.Fatalf("valid for %v, want the default 12h", d)
	}

	// The SSH certificate verifies against the root's user CA, for alice's logins.
	keys := filepath.Join(alice.home, "keys", "127.0.0.1")
	data, err := os.ReadFile(filepath.Join(keys, "alice-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*ssh.Certificate)
	cas, err := ca.LoadCluster(filepath.Join(root.dataDir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyUser(cert, cas.User.TrustedKeys()); err != nil {
		t.Fatalf("the certificate does not verify against the root's user CA: %v", err)
	}
	if strings.Join(cert.ValidPrincipals, ",") != "visitor,ubuntu" {
		t.Fatalf("principals %v", cert.ValidPrincipals)
	}
	priv, err := os.ReadFile(filepath.Join(keys, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil || string(signer.PublicKey().Marshal()) != string(cert.Key.Marshal()) {
		t.Fatalf("the private key is not the certificate's (%v)", err)
	}
	for _, f := range []string{filepath.Join(keys, "alice"), filepath.Join(keys, "alice-x509-key.pem")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
	kh, err := os.ReadFile(filepath.Join(alice.home, "known_hosts"))
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cas.Host.SigningKey())))
	if err != nil || !strings.Contains(string(kh), "@cert-authority *.root.example.com,root.example.com,127.0.0.1 "+hostKey) {
		t.Fatalf("known_hosts:\n%s", kh)
	}
	if _, err := os.Stat(filepath.Join(keys, "cas", "root.example.com.pem")); err != nil {
		t.Fatal(err)
	}

	// A leaf joins and gets labels on the root: hidden from alice's access role.
	leaf := startTetherd(t, tetherd, "leaf.example.com", "--insecure")
	tok := regexp.MustCompile(`The cluster invite token: (\S+)`).FindStringSubmatch(root.ctl(t, tetherctl, "tokens", "add", "--type=trusted_cluster", "--ttl=5m"))[1]
	// Its tunnel_addr is a port nothing listens on (the web port would carry the tunnel):
	// the leaf stays offline, which the steps below exercise.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	tc := fmt.Sprintf("kind: trusted_cluster\nversion: v2\nmetadata:\n  name: root.example.com\nspec:\n  enabled: true\n  token: %s\n  tunnel_addr: %s\n  web_proxy_addr: %s\n  role_map:\n    - remote: access\n      local: [access]\n", tok, deadAddr, root.addr)
	leaf.ctl(t, tetherctl, "create", writeTemp(t, tc))
	root.ctl(t, tetherctl, "update", "rc/leaf.example.com", "--set-labels=env=demo")
	clusters := alice.must(t, "", "clusters")
	if strings.Contains(clusters, "leaf.example.com") || !regexp.MustCompile(`(?m)^root\.example\.com +online +root +\* *$`).MatchString(clusters) {
		t.Fatalf("clusters before the role:\n%s", clusters)
	}
	if !strings.HasPrefix(clusters, "Cluster Name     Status Cluster Type Labels Selected") {
		t.Fatalf("not the seed guide's table:\n%s", clusters)
	}

	// Granting a role whose cluster_labels match shows it (after signing in again, with a
	// reset: a forgotten password takes the same path).
	root.ctl(t, tetherctl, "create", writeTemp(t, "kind: role\nversion: v5\nmetadata:\n  name: demo\nspec:\n  allow:\n    cluster_labels:\n      env: demo\n"))
	root.ctl(t, tetherctl, "users", "update", "alice", "--set-roles=access,demo")
	if _, errOut, err := alice.run(t, password+"\n"+used+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice"); err == nil || !strings.Contains(errOut, "wrong user name, password or one-time code") {
		t.Fatalf("the old code signed in again: %v\n%s", err, errOut)
	}
	reset := root.ctl(t, tetherctl, "users", "reset", "alice")
	if _, errOut, err := alice.run(t, password+"\n"+code()+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice"); err == nil {
		t.Fatalf("the old password works after a reset:\n%s", errOut)
	}
	secret = alice.signUp(t, reset, "a brand new password")
	alice.must(t, "a brand new password\n"+code()+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user=alice")
	clusters = alice.must(t, "", "clusters")
	if !regexp.MustCompile(`(?m)^leaf\.example\.com +offline +leaf +env=demo +$`).MatchString(clusters) {
		t.Fatalf("clusters after the role:\n%s", clusters)
	}
	if err := json.Unmarshal([]byte(alice.must(t, "", "status", "-f", "json")), &st); err != nil {
		t.Fatal(err)
	}
	// The leaf's tunnel_addr reaches nothing: no tunnel, so the leaf cannot be asked
	// which roles it maps to, and status says so rather than guessing.
	if len(st.Leaves) != 1 || st.Leaves[0].Name != "leaf.example.com" || st.Leaves[0].RolesKnown || st.Leaves[0].Mapped != nil || st.Leaves[0].State != "offline" || !strings.Contains(st.Leaves[0].Error, "cluster leaf.example.com is offline") {
		t.Fatalf("status leaves %+v", st.Leaves)
	}
	if text := alice.must(t, "", "status"); !strings.Contains(text, "leaf.example.com: roles offline (cluster leaf.example.com is offline") {
		t.Fatalf("status:\n%s", text)
	}

	// CLUSTER routes the certificate to a leaf the user may see, and selects it; a hidden
	// or unknown one is refused by the root's cert.issue decision.
	for _, tc := range []struct{ name, cluster, want string }{
		{"carol", "ghost.example.com", `remote cluster "ghost.example.com" not found`},
		{"dave", "leaf.example.com", ""},
	} {
		u := user{bin: tether, home: t.TempDir()}
		sec := u.signUp(t, root.ctl(t, tetherctl, "users", "add", tc.name, "--roles=access,demo", "--logins="+tc.name), password)
		_, errOut, err := u.run(t, password+"\n"+auth.TOTPCode(sec, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user="+tc.name, tc.cluster)
		if tc.want != "" {
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Fatalf("login %s: %v\n%s", tc.cluster, err, errOut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("login %s: %v\n%s", tc.cluster, err, errOut)
		}
		if out := u.must(t, "", "clusters"); !regexp.MustCompile(`(?m)^leaf\.example\.com +offline +leaf +env=demo +\* *$`).MatchString(out) {
			t.Fatalf("clusters after login to the leaf:\n%s", out)
		}
		data, _ := os.ReadFile(filepath.Join(u.home, "keys", "127.0.0.1", tc.name+"-cert.pub"))
		pub, _, _, _, _ := ssh.ParseAuthorizedKey(data)
		if c, ok := pub.(*ssh.Certificate); !ok || c.Permissions.Extensions[ca.ExtRouteToCluster] != "leaf.example.com" {
			t.Fatalf("the certificate is not routed to the leaf: %v", pub)
		}
	}

	// An expired profile says to sign in again.
	profilePath := filepath.Join(alice.home, "profile.json")
	saved, _ := os.ReadFile(profilePath)
	var p map[string]any
	_ = json.Unmarshal(saved, &p)
	p["valid_before"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
	expired, _ := json.Marshal(p)
	if err := os.WriteFile(profilePath, expired, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "clusters"} {
		if _, errOut, err := alice.run(t, "", cmd); err == nil || !strings.Contains(errOut, "expired") || !strings.Contains(errOut, "run tether login") {
			t.Fatalf("%s with an expired profile: %v\n%s", cmd, err, errOut)
		}
	}
	if err := os.WriteFile(profilePath, saved, 0o600); err != nil {
		t.Fatal(err)
	}

	// Logout removes the keys.
	if out := alice.must(t, "", "logout"); !strings.Contains(out, "Logged out alice") {
		t.Fatalf("logout: %s", out)
	}
	if _, err := os.Stat(filepath.Join(alice.home, "keys")); !os.IsNotExist(err) {
		t.Fatalf("keys left after logout: %v", err)
	}
	if _, errOut, err := alice.run(t, "", "status"); err == nil || !strings.Contains(errOut, "not logged in: run tether login") {
		t.Fatalf("status after logout: %v %s", err, errOut)
	}
}

func TestLoginRefusesAnUnverifiedProxy(t *testing.T) {
	tetherd, tetherctl, tether := binaries(t)
	root := startTetherd(t, tetherd, "root.example.com")
	u := user{bin: tether, home: t.TempDir()}
	added := root.ctl(t, tetherctl, "users", "add", "bob", "--roles=access", "--logins=bob")
	secret := u.signUp(t, added, "bobs password")

	// No --ca-file: the cluster's own CA is not a system root; no trust on first use.
	_, errOut, err := u.run(t, "bobs password\n000000\n", "login", "--proxy="+root.addr, "--user=bob")
	if err == nil || !strings.Contains(errOut, "--ca-file") || strings.Contains(errOut, "x509:") {
		t.Fatalf("login without --ca-file: %v\n%s", err, errOut)
	}
	// Another cluster's CA does not verify this proxy either.
	other := startTetherd(t, tetherd, "other.example.com")
	_, errOut, err = u.run(t, "bobs password\n000000\n", "login", "--proxy="+root.addr, "--ca-file="+filepath.Join(other.dataDir, "ca", "tls", "key-1.crt"), "--user=bob")
	if err == nil || !strings.Contains(errOut, "not signed by a CA tether trusts") {
		t.Fatalf("login with another cluster's CA: %v\n%s", err, errOut)
	}
	// --insecure works, loudly.
	_, errOut, err = u.run(t, "bobs password\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+root.addr, "--insecure", "--user=bob")
	if err != nil || !strings.Contains(errOut, "WARNING: --insecure") {
		t.Fatalf("login --insecure: %v\n%s", err, errOut)
	}
	// A wrong password says what to do, not a Go error chain.
	_, errOut, err = u.run(t, "wrong password\n000000\n", "login", "--proxy="+root.addr, "--insecure", "--user=bob")
	if err == nil || !strings.Contains(errOut, "check them and run tether login again") || strings.Contains(errOut, "HTTP") {
		t.Fatalf("wrong password: %v\n%s", err, errOut)
	}
	// A nonexistent user reads the same.
	_, errOut2, _ := u.run(t, "wrong password\n000000\n", "login", "--proxy="+root.addr, "--insecure", "--user=nobody")
	if strings.ReplaceAll(errOut2, "nobody", "bob") != errOut {
		t.Fatalf("unknown user:\n%s\nwrong password:\n%s", errOut2, errOut)
	}
	// The cluster's audit log says what happened, the user never learns it.
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, want := range []string{"event=user.signup ", "event=user.login ", "event=cert.issued ", `reason="wrong password"`, `reason="unknown user"`} {
			if !strings.Contains(root.log.String(), want) {
				return fmt.Errorf("no %s in the audit log:\n%s", want, root.log)
			}
		}
		return nil
	})
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
