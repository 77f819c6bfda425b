package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Profile is what `tether login` leaves behind: who is signed in where, until when, and
// where the keys are. Other commands load it with loadProfile.
//
// Layout under the profile directory (TETHER_HOME, default ~/.tether):
//
//	profile.json                                the current profile (this struct)
//	known_hosts                                 @cert-authority lines of every cluster's host CA
//	keys/<proxy-host>/<user>                    the private key, OpenSSH PEM, 0600
//	keys/<proxy-host>/<user>.pub                its public key
//	keys/<proxy-host>/<user>-cert.pub           the SSH user certificate (OpenSSH line)
//	keys/<proxy-host>/<user>-x509.pem           the TLS client certificate for the web API
//	keys/<proxy-host>/<user>-x509-key.pem       the same private key, PKCS#8 PEM, 0600
//	keys/<proxy-host>/cas/<cluster>.pem         the cluster's TLS CA
type Profile struct {
	// Proxy is the root's web address, HOST:PORT.
	Proxy string `json:"proxy"`
	User  string `json:"user"`
	// Cluster is the root cluster (the one behind Proxy) that issued the certificates.
	Cluster string `json:"cluster"`
	// SelectedCluster is the cluster commands go to by default: Cluster, or the leaf
	// named at login.
	SelectedCluster string    `json:"selected_cluster"`
	Roles           []string  `json:"roles"`
	Logins          []string  `json:"logins"`
	ValidBefore     time.Time `json:"valid_before"`
	// TLSValidBefore is when the web API client certificate ends (at most a day).
	TLSValidBefore time.Time `json:"tls_valid_before"`
	// CAFile pins the proxy's TLS CA: cas/<cluster>.pem when login was given --ca-file;
	// empty means the system's roots verify the proxy.
	CAFile string `json:"ca_file,omitempty"`
	// Insecure: login was run with --insecure and later calls do not verify the proxy.
	Insecure bool `json:"insecure,omitempty"`

	dir string
}

// errNotLoggedIn and errExpired say what to do next.
var (
	errNotLoggedIn = errors.New("not logged in: run tether login --proxy=HOST:PORT --user=NAME")
)

// tetherHome is the profile directory: $TETHER_HOME, else ~/.tether.
func tetherHome() (string, error) {
	if h := os.Getenv("TETHER_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("cannot find your home directory: set TETHER_HOME to a directory for tether's profile")
	}
	return filepath.Join(home, ".tether"), nil
}

func proxyHost(proxy string) string {
	host, _, err := net.SplitHostPort(proxy)
	if err != nil {
		return proxy
	}
	return host
}

// Paths of a profile's files.
func (p *Profile) Dir() string            { return p.dir }
func (p *Profile) keyDir() string         { return filepath.Join(p.dir, "keys", proxyHost(p.Proxy)) }
func (p *Profile) KeyPath() string        { return filepath.Join(p.keyDir(), p.User) }
func (p *Profile) PublicKeyPath() string  { return p.KeyPath() + ".pub" }
func (p *Profile) CertPath() string       { return p.KeyPath() + "-cert.pub" }
func (p *Profile) TLSCertPath() string    { return p.KeyPath() + "-x509.pem" }
func (p *Profile) TLSKeyPath() string     { return p.KeyPath() + "-x509-key.pem" }
func (p *Profile) KnownHostsPath() string { return filepath.Join(p.dir, "known_hosts") }
func (p *Profile) CAPath(cluster string) string {
	return filepath.Join(p.keyDir(), "cas", cluster+".pem")
}

// loadProfile reads the current profile. A missing, unreadable or expired profile is an
// error that says to run tether login again.
func loadProfile() (*Profile, error) {
	p, err := readProfile()
	if err != nil {
		return nil, err
	}
	if p.expired(time.Now()) {
		end := p.ValidBefore
		if !p.TLSValidBefore.IsZero() && p.TLSValidBefore.Before(end) {
			end = p.TLSValidBefore
		}
		return nil, fmt.Errorf("your sign-in as %s at %s expired at %s: run tether login --proxy=%s --user=%s again",
			p.User, p.Proxy, end.Local().Format(time.RFC3339), p.Proxy, p.User)
	}
	for _, f := range []string{p.KeyPath(), p.CertPath(), p.TLSCertPath(), p.TLSKeyPath()} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("your profile is incomplete (%s is missing): run tether login --proxy=%s --user=%s again", f, p.Proxy, p.User)
		}
	}
	return p, nil
}

// expired reports whether either certificate of the profile has ended at now.
func (p *Profile) expired(now time.Time) bool {
	return !now.Before(p.ValidBefore) || (!p.TLSValidBefore.IsZero() && !now.Before(p.TLSValidBefore))
}

// readProfile reads profile.json without checking its expiry.
func readProfile() (*Profile, error) {
	dir, err := tetherHome()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "profile.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, fmt.Errorf("reading your profile: %v; run tether login again", err)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil || p.Proxy == "" || p.User == "" || strings.ContainsAny(p.User, `/\`) {
		return nil, fmt.Errorf("your profile %s is damaged: run tether logout, then tether login again", filepath.Join(dir, "profile.json"))
	}
	p.dir = dir
	return &p, nil
}

func (p *Profile) save() error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(p.dir, "profile.json"), append(data, '\n'), 0o600)
}

// writeFile writes data to path with mode, through a temporary file, so that a reader
// never sees half a key and an existing file's looser mode does not survive.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// clientTLS is the TLS configuration for calls to the proxy with the profile's client
// certificate, verifying the proxy as login did.
func (p *Profile) clientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.TLSCertPath(), p.TLSKeyPath())
	if err != nil {
		return nil, fmt.Errorf("reading your client certificate: %v; run tether login again", err)
	}
	cfg, err := serverTLS(p.CAFile, p.Insecure, proxyHost(p.Proxy))
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// serverTLS verifies the proxy with the CAs in caFile only (pinned), or the system's
// roots when caFile is empty; insecure verifies nothing (tests only).
func serverTLS(caFile string, insecure bool, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if insecure {
		cfg.InsecureSkipVerify = true //nolint:gosec // --insecure, with a warning
		return cfg, nil
	}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %v; give the cluster's TLS CA file (tetherctl status prints it)", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("the CA file %s holds no PEM certificate; give the cluster's TLS CA file (tetherctl status prints it)", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// defaultCluster is the cluster a command without --cluster goes to: the selected one (tether
// login LEAF), else the root.
func (p *Profile) defaultCluster() string {
	if p.SelectedCluster != "" {
		return p.SelectedCluster
	}
	return p.Cluster
}
