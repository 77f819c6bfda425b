package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/internal/testenv"
)

// TestCARotationAcrossATrust: with real processes (root, leaf, an OpenSSH node on the
// leaf), a rotation of the root's user CA and of the leaf's host CA, every phase, with
// users working through root → leaf → node. The leaf's copy of the root's user CA follows
// each phase over the tunnel, so a user signed in with the new key reaches the leaf's node
// from update_clients on; the root's copy of the leaf's host CA follows the leaf's
// rotation, so a user who signs in after init trusts the leaf's new host certificate,
// while one whose known_hosts predates it is told to sign in again. Before this, both
// rotations were refused while the trust existed.
func TestCARotationAcrossATrust(t *testing.T) {
	// The root exchanges CAs with its leaves every 2 s here instead of every minute
	// (proxy.tunnel_ca_exchange_interval, from the environment tetherd inherits).
	t.Setenv("TETHER_PROXY_TUNNEL_CA_EXCHANGE_INTERVAL", "2s")
	p := newLeafPath(t)
	_, _, tether := binaries(t)
	signIn := func(who string) user { return addAndSignIn(t, p.root, p.tetherctl, tether, who, p.login) }
	sshThrough := func(u user) error {
		out, errOut, err := u.run(t, "", "ssh", "--cluster="+p.leafName, p.target(), "echo rotated-ok")
		if err != nil || out != "rotated-ok\n" {
			return fmt.Errorf("tether ssh through the leaf: %v\n%s%s", err, out, errOut)
		}
		return nil
	}
	rotate := func(c *proc, typ, phase string) {
		t.Helper()
		if out := c.ctl(t, p.tetherctl, "auth", "rotate", "--type="+typ, "--phase="+phase); !strings.Contains(out, "is in phase "+phase) {
			t.Fatalf("auth rotate --type=%s --phase=%s:\n%s", typ, phase, out)
		}
	}
	// copyShows waits until c's copy of cluster's typ CA has the keys of the table line
	// ("1 active, 1 additional").
	copyShows := func(c *proc, cluster, typ, keys string) {
		t.Helper()
		line := regexp.MustCompile(regexp.QuoteMeta(cluster) + ` +` + typ + ` +` + regexp.QuoteMeta(keys))
		testenv.Eventually(t, 15*time.Second, func() error {
			if out := c.ctl(t, p.tetherctl, "get", "cas", "--format", "text"); !line.MatchString(out) {
				return fmt.Errorf("%s's copy of the %s CA of %s is not %q:\n%s", c.name, typ, cluster, keys, out)
			}
			return nil
		})
	}
	if err := sshThrough(p.alice); err != nil {
		t.Fatal(err)
	}

	// The root's user CA.
	rotate(p.root, "user", "init")
	copyShows(p.leaf, "root.example.com", "user", "1 active, 1 additional")
	rotate(p.root, "user", "update_clients")
	bob := signIn("bob") // his certificate is the new key's
	if err := sshThrough(bob); err != nil {
		t.Fatalf("a certificate of the root's new user key at the leaf: %v", err)
	}
	if err := sshThrough(p.alice); err != nil {
		t.Fatalf("a certificate of the old key during the rotation: %v", err)
	}
	rotate(p.root, "user", "update_servers")
	rotate(p.root, "user", "standby")
	copyShows(p.leaf, "root.example.com", "user", "1 active, 0 additional")
	if err := sshThrough(bob); err != nil {
		t.Fatalf("after standby: %v", err)
	}

	// The leaf's host CA. The root takes the leaf's keys at its next exchange.
	rotate(p.leaf, "host", "init")
	copyShows(p.root, p.leafName, "host", "1 active, 1 additional")
	carol := signIn("carol") // her known_hosts trusts both of the leaf's host keys
	rotate(p.leaf, "host", "update_clients")
	if err := sshThrough(carol); err != nil {
		t.Fatalf("the leaf's new host certificate for a user who signed in after init: %v", err)
	}
	err := sshThrough(bob)
	if err == nil || !strings.Contains(err.Error(), "tether login") {
		t.Fatalf("a user whose known_hosts predates the leaf's new host key: %v, want to be told to sign in again", err)
	}
	rotate(p.leaf, "host", "update_servers")
	p.sshd.sign(t) // its admin re-signs the OpenSSH node's host key, as on a cluster alone
	p.sshd.reload(t)
	rotate(p.leaf, "host", "standby")
	copyShows(p.root, p.leafName, "host", "1 active, 0 additional")
	if err := sshThrough(carol); err != nil {
		t.Fatalf("after the leaf's standby: %v", err)
	}
}

// addAndSignIn adds the user who (role access, login) on cluster c, signs them up and in
// with tether, and returns them.
func addAndSignIn(t *testing.T, c *proc, tetherctl, tether, who, login string) user {
	t.Helper()
	u := user{bin: tether, home: filepath.Join(t.TempDir(), who)}
	added := c.ctl(t, tetherctl, "users", "add", who, "--roles=access", "--logins="+login)
	secret := u.signUp(t, added, who+" password 1")
	proxy := regexp.MustCompile(`--proxy=(\S+)`).FindStringSubmatch(added)[1]
	caFile := regexp.MustCompile(`--ca-file=(\S+)`).FindStringSubmatch(added)[1]
	u.must(t, who+" password 1\n"+auth.TOTPCode(secret, time.Now().Add(auth.TOTPPeriod))+"\n", "login", "--proxy="+proxy, "--ca-file="+caFile, "--user="+who)
	return u
}
