package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetherproject/tether/gateway/auth"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/resource"
)

// proxyFlags are how login and users signup reach and verify the proxy.
type proxyFlags struct {
	proxy    string
	caFile   string
	insecure bool
}

func (f *proxyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.proxy, "proxy", "", "the root cluster's proxy, HOST:PORT (required; HOST alone means port "+defaultWebPort+")")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "the cluster's TLS CA certificates (PEM; tetherctl status prints the file); only these verify the proxy. Default: the system's roots")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "do not verify the proxy's TLS certificate (testing only: anyone in the path can read your password)")
}

// defaultWebPort is the proxy's port when --proxy names a host alone: tsh's default web
// port, and the one tetherd configure's sample listens on.
const defaultWebPort = "3080"

// withDefaultPort is proxy with defaultWebPort added when it names a host (or a bracketed
// or bare IPv6 address) without a port; anything else is returned as it is, for client to
// refuse.
func withDefaultPort(proxy string) string {
	if proxy == "" {
		return proxy
	}
	if _, _, err := net.SplitHostPort(proxy); err == nil {
		return proxy
	}
	host := strings.TrimSuffix(strings.TrimPrefix(proxy, "["), "]")
	if host == "" || strings.ContainsAny(host, "/[]@ \t") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return proxy
	}
	return net.JoinHostPort(host, defaultWebPort)
}

// client checks the flags and returns a client that verifies the proxy.
func (f *proxyFlags) client(cmd *cobra.Command) (*apiClient, error) {
	f.proxy = withDefaultPort(f.proxy)
	if f.proxy == "" {
		return nil, errors.New("--proxy is required: the root cluster's proxy as HOST:PORT")
	}
	host, port, err := net.SplitHostPort(f.proxy)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("--proxy %q must be HOST:PORT, for example --proxy=root.example.com:3080", f.proxy)
	}
	if f.insecure {
		fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: --insecure: the TLS certificate of %s is NOT verified; use this for testing only\n", f.proxy)
	}
	cfg, err := serverTLS(f.caFile, f.insecure, host)
	if err != nil {
		return nil, err
	}
	return newAPIClient(f.proxy, cfg), nil
}

func loginCommand() *cobra.Command {
	var pf proxyFlags
	var user, ttl string
	cmd := &cobra.Command{
		Use:   "login [--proxy=HOST:PORT --user=NAME] [CLUSTER]",
		Short: "Sign in with your password and one-time code; get certificates for your logins",
		Long: "Sign in at a root cluster's proxy. CLUSTER selects a leaf cluster the certificate is routed to " +
			"(default: the root). Without --proxy and --user, those of your current profile (tether status), as tsh login does. " +
			"The password and the one-time code are read from the terminal, or one line each from stdin.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl != "" {
				if d, err := time.ParseDuration(ttl); err != nil || d <= 0 {
					return fmt.Errorf("--ttl %q is not a positive duration such as 8h", ttl)
				}
			}
			pf.proxy = withDefaultPort(pf.proxy)
			// As tsh login: without --proxy, sign in again at the profile's proxy (expired
			// or not); without --user, as the profile's user when it is that proxy.
			if prev, err := readProfile(); err == nil {
				if pf.proxy == "" {
					pf.proxy = prev.Proxy
				}
				if user == "" && pf.proxy == prev.Proxy {
					user = prev.User
				}
			}
			if user == "" && pf.proxy == "" {
				return errors.New("no profile to sign in again with: run tether login --proxy=HOST:PORT --user=NAME, with the root cluster's proxy and the user name your administrator created")
			}
			if user == "" {
				return errors.New("--user is required: the user name your administrator created")
			}
			if strings.ContainsAny(user, `/\`) || user == "." || user == ".." {
				return fmt.Errorf("--user %q is not a user name", user)
			}
			// As tsh login LEAF: with a valid sign-in at this proxy as this user, switching
			// cluster reissues the certificates for the same key, without a password; they
			// end when the sign-in does. --ttl asks for a new sign-in.
			if len(args) == 1 && ttl == "" {
				p, done, err := reissueLogin(cmd, pf.proxy, user, args[0])
				if done || err != nil {
					if err != nil {
						return err
					}
					return printStatus(cmd.OutOrStdout(), p, nil)
				}
			}
			if pf.caFile == "" && !pf.insecure {
				if saved := savedCAFile(pf.proxy); saved != "" {
					pf.caFile = saved
					fmt.Fprintf(cmd.ErrOrStderr(), "Verifying %s with the TLS CA your last sign-in there saved (%s); --ca-file gives another.\n", pf.proxy, saved)
				}
			}
			c, err := pf.client(cmd)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			var ping web.PingResponse
			if err := c.call(ctx, http.MethodGet, "/webapi/ping", nil, &ping, nil); err != nil {
				return err
			}
			if !isClusterName(ping.ClusterName) {
				return notAClusterName(ping.ClusterName)
			}
			pr := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
			password, err := pr.ask(fmt.Sprintf("Enter password for Tether user %s: ", user), true)
			if err != nil {
				return err
			}
			if len(password) > maxPasswordLength {
				return fmt.Errorf("the password is longer than %d bytes, which no Tether password is: check what was typed or piped in", maxPasswordLength)
			}
			otp, err := pr.ask("Enter your one-time code: ", true)
			if err != nil {
				return err
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			sshPub, err := ssh.NewPublicKey(pub)
			if err != nil {
				return err
			}
			req := web.LoginRequest{
				User: user, Password: password, OTP: strings.TrimSpace(otp), TTL: ttl,
				PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
			}
			selected := ping.ClusterName
			if len(args) == 1 && args[0] != ping.ClusterName {
				req.RouteToCluster, selected = args[0], args[0]
			}
			var resp web.LoginResponse
			if err := c.call(ctx, http.MethodPost, web.LoginPath, req, &resp, nil); err != nil {
				return loginError(err, pf.proxy, user)
			}
			p, err := writeLogin(pf, user, selected, priv, sshPub, &resp)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), p, nil)
		},
	}
	pf.register(cmd)
	cmd.Flags().Lookup("proxy").Usage = "the root cluster's proxy, HOST:PORT, or HOST for port " + defaultWebPort + " (default: your profile's)"
	cmd.Flags().StringVar(&user, "user", "", "your Tether user name (default: your profile's, at its proxy)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the certificates should last, for example 8h (default 12h; your roles may cap it)")
	return cmd
}

// reissueLogin asks the proxy to reissue the current profile's certificates routed to
// cluster, when the profile is a valid sign-in at proxy as user. done is false when there is
// no such profile or the proxy no longer takes it (expired, the user's CA rotated): the
// caller then signs in with the password. A refusal the password would meet too (a lock,
// an unknown cluster) is the error.
func reissueLogin(cmd *cobra.Command, proxy, user, cluster string) (p *Profile, done bool, err error) {
	prev, err := loadProfile()
	if err != nil || prev.Proxy != proxy || prev.User != user {
		return nil, false, nil
	}
	keyPEM, err := os.ReadFile(prev.KeyPath())
	if err != nil {
		return nil, false, nil
	}
	raw, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		return nil, false, nil
	}
	priv, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, false, nil
	}
	certLine, err := os.ReadFile(prev.CertPath())
	if err != nil {
		return nil, false, nil
	}
	cfg, err := prev.clientTLS()
	if err != nil {
		return nil, false, nil
	}
	h := http.Header{}
	h.Set(web.SSHCertHeader, strings.TrimSpace(string(certLine)))
	var resp web.LoginResponse
	route := cluster
	if cluster == prev.Cluster {
		route = ""
	}
	err = newAPIClient(prev.Proxy, cfg).call(ctxOf(cmd), http.MethodPost, web.ReissuePath, web.ReissueRequest{RouteToCluster: route}, &resp, h)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusNotFound):
		// Not taken (or a proxy without the route): sign in with the password.
		return nil, false, nil
	case err != nil:
		return nil, true, err
	}
	sshPub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, true, err
	}
	pf := proxyFlags{proxy: prev.Proxy, insecure: prev.Insecure}
	if prev.CAFile != "" {
		pf.caFile = prev.CAFile
	}
	p, err = writeLogin(pf, user, cluster, *priv, sshPub, &resp)
	if err != nil {
		return nil, true, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Reissued your certificates for cluster %s with your current sign-in (no password needed; they end when it does).\n", cluster)
	return p, true, nil
}

// savedCAFile is the TLS CA file of the profile (expired or not) when it was signed in at
// proxy with --ca-file: signing in there again needs no --ca-file, as the expired-profile
// message promises. The file holds the CA the proxy sent over a connection verified with
// the CA given then, so reusing it trusts nothing new.
func savedCAFile(proxy string) string {
	old, err := readProfile()
	if err != nil || old.Proxy != proxy || old.CAFile == "" || old.Insecure {
		return ""
	}
	if st, err := os.Stat(old.CAFile); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return old.CAFile
}

func loginError(err error, proxy, user string) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s; check them and run tether login again (after several failures, sign-in is paused for a few minutes)", ae.Message)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%s; if you forgot your password, ask your administrator to run tetherctl users reset %s", ae.Message, user)
	case http.StatusForbidden:
		return fmt.Errorf("%s", ae.Message)
	}
	return fmt.Errorf("sign-in at %s failed: %s", proxy, ae.Message)
}

// writeLogin writes the keys, certificates, known_hosts and CA of a sign-in, then the
// profile that names them (last, so that a profile never points at missing files).
func writeLogin(pf proxyFlags, user, selected string, priv ed25519.PrivateKey, sshPub ssh.PublicKey, resp *web.LoginResponse) (*Profile, error) {
	// The cluster name becomes the CA file's name (and the profile's): a name with "../"
	// would have written the proxy's bytes anywhere the user may write.
	if !isClusterName(resp.Cluster) {
		return nil, notAClusterName(resp.Cluster)
	}
	dir, err := tetherHome()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the profile directory %s: %v", dir, err)
	}
	p := &Profile{
		Proxy: pf.proxy, User: user, Cluster: resp.Cluster, SelectedCluster: selected,
		Roles: resp.Roles, Logins: resp.Logins, ValidBefore: resp.ValidBefore, Insecure: pf.insecure, dir: dir,
	}
	block, _ := pem.Decode([]byte(resp.TLSCert))
	if block == nil {
		return nil, errors.New("the proxy sent no client certificate; run tether login again")
	}
	tlsCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, errors.New("the proxy sent an unreadable client certificate; run tether login again")
	}
	p.TLSValidBefore = tlsCert.NotAfter
	certKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.SSHCert))
	if cert, ok := certKey.(*ssh.Certificate); err != nil || !ok || string(cert.Key.Marshal()) != string(sshPub.Marshal()) {
		return nil, errors.New("the proxy sent an SSH certificate for another key; run tether login again")
	}
	sshPEM, err := ssh.MarshalPrivateKey(priv, user)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	known, err := knownHostsLines(resp, proxyHost(pf.proxy))
	if err != nil {
		return nil, err
	}
	if pf.caFile != "" {
		p.CAFile = p.CAPath(resp.Cluster)
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{p.KeyPath(), pem.EncodeToMemory(sshPEM), 0o600},
		{p.PublicKeyPath(), ssh.MarshalAuthorizedKey(sshPub), 0o644},
		{p.CertPath(), []byte(resp.SSHCert + "\n"), 0o644},
		{p.TLSCertPath(), []byte(resp.TLSCert), 0o644},
		{p.TLSKeyPath(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600},
		{p.CAPath(resp.Cluster), []byte(resp.TLSCA), 0o644},
		{p.KnownHostsPath(), []byte(strings.Join(known, "\n") + "\n"), 0o644},
	}
	for _, f := range files {
		if err := writeFile(f.path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("writing your profile: %v", err)
		}
	}
	if err := p.save(); err != nil {
		return nil, fmt.Errorf("writing your profile: %v", err)
	}
	return p, nil
}

func logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove your keys, certificates and profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := readProfile()
			if errors.Is(err, errNotLoggedIn) {
				fmt.Fprintln(cmd.OutOrStdout(), "You are not logged in.")
				return nil
			}
			if err != nil {
				return err
			}
			for _, path := range []string{filepath.Join(p.dir, "keys"), p.KnownHostsPath(), filepath.Join(p.dir, "profile.json")} {
				if err := os.RemoveAll(path); err != nil {
					return fmt.Errorf("removing %s: %v; remove it by hand", path, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged out %s from %s.\n", p.User, p.Proxy)
			return nil
		},
	}
}

// signupToken is the sign-up token: the argument, else TETHER_SIGNUP_TOKEN, else typed at
// the prompt.
func signupToken(args []string, pr *prompter) (string, error) {
	token := ""
	if len(args) == 1 {
		token = args[0]
	} else if env, ok := os.LookupEnv("TETHER_SIGNUP_TOKEN"); ok {
		token = env
	} else {
		typed, err := pr.ask("Sign-up token (tetherctl users add printed it): ", true)
		if err != nil {
			return "", errors.New("no sign-up token: give it as the argument, in TETHER_SIGNUP_TOKEN, or type it when asked")
		}
		token = typed
	}
	if token = strings.TrimSpace(token); token == "" {
		return "", errors.New("the sign-up token is empty: give the one tetherctl users add printed")
	}
	return token, nil
}

func usersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Your own account"}
	var pf proxyFlags
	signup := &cobra.Command{
		Use:   "signup --proxy=HOST:PORT [TOKEN]",
		Short: "Set your password and enrol a one-time code app with the sign-up token your administrator gave you",
		Long: `Set your password and enrol a one-time code app with the sign-up token your
administrator gave you (tetherctl users add or users reset printed it).

The token may be left off the command line, where every user of a shared machine can
read it while you type your password: tether then reads it from TETHER_SIGNUP_TOKEN, or
asks for it (not echoed on a terminal).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := pf.client(cmd)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			pr := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr())
			token, err := signupToken(args, pr)
			if err != nil {
				return err
			}
			var info struct {
				User       string `json:"user"`
				TOTPURI    string `json:"totp_uri"`
				TOTPSecret string `json:"totp_secret"`
			}
			if err := c.call(ctx, http.MethodPost, web.SignupInfoPath, web.SignupTokenBody{Token: token}, &info, nil); err != nil {
				return err
			}
			var password string
			for {
				pw, err := pr.ask(fmt.Sprintf("Choose a password for %s (at least %d characters): ", info.User, auth.MinPasswordLength), true)
				if err != nil {
					return err
				}
				if len(pw) > maxPasswordLength {
					return fmt.Errorf("the password is longer than %d bytes: choose a shorter one", maxPasswordLength)
				}
				// The cluster's own rule, said before the code secret is shown.
				if n := utf8.RuneCountInString(pw); n < auth.MinPasswordLength {
					if !pr.tty {
						return fmt.Errorf("the password must be at least %d characters, this one has %d; the token is still valid: run tether users signup again", auth.MinPasswordLength, n)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "The password must be at least %d characters; try again.\n", auth.MinPasswordLength)
					continue
				}
				again, err := pr.ask("Enter it again: ", true)
				if err != nil {
					return err
				}
				if pw == again {
					password = pw
					break
				}
				if !pr.tty {
					return errors.New("the two passwords differ; run tether users signup again")
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "The two passwords differ; try again.")
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Add this account to your one-time code app (scan or paste the URI, or type the secret):\n\n  %s\n\n  Secret: %s\n\n", info.TOTPURI, info.TOTPSecret)
			otp, err := pr.ask("Enter the code the app shows now: ", false)
			if err != nil {
				return err
			}
			var resp web.SignupResponse
			if err := c.call(ctx, http.MethodPost, web.SignupPath, web.SignupRequest{Token: token, Password: password, OTP: strings.TrimSpace(otp)}, &resp, nil); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
					return fmt.Errorf("%s; the token is still valid: run tether users signup again", ae.Message)
				}
				return err
			}
			fmt.Fprintf(out, "Signed up %s. Sign in with:\n\n  tether login --proxy=%s --user=%s%s\n", resp.User, pf.proxy, resp.User, caFlag(pf))
			return nil
		},
	}
	pf.register(signup)
	cmd.AddCommand(signup)
	return cmd
}

func caFlag(pf proxyFlags) string {
	switch {
	case pf.insecure:
		return " --insecure"
	case pf.caFile != "":
		return " --ca-file=" + pf.caFile
	}
	return ""
}

// timeLeft is "valid for 11h59m", "valid for 42s" in the last minute, or "EXPIRED" once t
// has passed (not before: the certificates still work until then).
func timeLeft(t time.Time) string {
	left := time.Until(t)
	if left <= 0 {
		return "EXPIRED"
	}
	if left < time.Minute {
		return "valid for " + max(left.Round(time.Second), time.Second).String()
	}
	return "valid for " + strings.TrimSuffix(left.Round(time.Minute).String(), "0s")
}

// maxPasswordLength is the longest password the cluster takes (auth.MaxPasswordLength; a
// test keeps the two equal): a longer one is refused here, before it is sent.
const maxPasswordLength = 1024

// knownHostsLines are the @cert-authority lines of a sign-in: every cluster's host CA for
// its own names, but not for the names of another cluster (or the proxy host) under them
// (web.KnownHostsExclusions); the root's also for the proxy's host, on the root's line, or
// on a line of its own when the root's line negates it (a proxy host under a leaf's name).
func knownHostsLines(resp *web.LoginResponse, proxy string) ([]string, error) {
	var clusters []string
	for _, h := range resp.HostCAs {
		// A cluster name becomes a known_hosts pattern and tether config's Host line and
		// ProxyCommand argument: only a cluster name is taken from the proxy.
		if !isClusterName(h.Cluster) {
			return nil, fmt.Errorf("the proxy sent a host CA for %s, which is not a cluster name; run tether login again against a proxy you trust", strconv.QuoteToASCII(h.Cluster))
		}
		clusters = append(clusters, h.Cluster)
	}
	var known []string
	for _, h := range resp.HostCAs {
		var extra []string
		proxyLine := false
		if h.Cluster == resp.Cluster {
			extra = web.KnownHostsExclusions(h.Cluster, clusters)
			var excluded []string
			for _, x := range extra {
				excluded = append(excluded, strings.TrimPrefix(x, "!"))
			}
			if proxyLine = matchesPatterns(proxy, excluded); !proxyLine {
				extra = append([]string{proxy}, extra...)
			}
		} else {
			extra = web.KnownHostsExclusions(h.Cluster, append(clusters, proxy))
		}
		for _, k := range h.Keys {
			key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
			if err != nil {
				return nil, fmt.Errorf("the proxy sent an unreadable host CA key of %s; run tether login again", h.Cluster)
			}
			known = append(known, web.KnownHostsLine(h.Cluster, key, extra...))
			if proxyLine {
				known = append(known, web.KnownHostsHostLine(h.Cluster, proxy, key))
			}
		}
	}
	return known, nil
}

// notAClusterName refuses a cluster name from the proxy that is no cluster name.
func notAClusterName(name string) error {
	return fmt.Errorf("the proxy named its cluster %s, which is not a cluster name; run tether login again against a proxy you trust", strconv.QuoteToASCII(name))
}

// isClusterName reports whether name is a cluster name as clusters are named (checked and
// already in normal form): what tether may write into known_hosts and ssh_config.
func isClusterName(name string) bool {
	return resource.CheckClusterName(name) == nil && resource.NormalizeClusterName(name) == name
}
