package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
)

// A reissue (tether login LEAF with a valid sign-in; tsh's reissue) asks no password, so
// it must give nothing a sign-in would not: never a longer session, nothing to a user who
// was removed or locked since, the roles as they are now, nothing for a certificate that
// did not come from a password sign-in here, and nothing routed to a hidden cluster.
func TestReissueGivesNothingASignInWouldNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newUsersFixture(t, UsersConfig{})
	secret := f.signUp(t, "alice")
	bobSecret := f.signUp(t, "bob")
	login := func(t *testing.T, user string, secret []byte, ttl time.Duration) (policy.Cert, ssh.PublicKey, *LoginResult) {
		t.Helper()
		res, err := f.u.Login(ctx, LoginRequest{User: user, Password: goodPassword, OTP: f.nextCode(secret), PublicKey: newKey(t), TTL: ttl, Remote: "10.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		id, err := f.u.AuthenticateUser([]*x509.Certificate{res.TLSCert}, string(ssh.MarshalAuthorizedKey(res.SSHCert)))
		if err != nil {
			t.Fatal(err)
		}
		return id, res.SSHCert.Key, res
	}
	id, pub, first := login(t, "alice", secret, 2*time.Hour)

	t.Run("the_reissued_certificates_end_when_the_presented_ones_do", func(t *testing.T) {
		res, err := f.u.Reissue(ctx, id, pub, "", "10.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		end := time.Unix(int64(first.SSHCert.ValidBefore), 0)
		if res.SSHCert.ValidBefore > first.SSHCert.ValidBefore || res.TLSCert.NotAfter.After(end) {
			t.Fatalf("reissued until %v / %v, the sign-in ends %v / %v", time.Unix(int64(res.SSHCert.ValidBefore), 0), res.TLSCert.NotAfter,
				time.Unix(int64(first.SSHCert.ValidBefore), 0), first.TLSCert.NotAfter)
		}
		if string(res.SSHCert.Key.Marshal()) != string(pub.Marshal()) {
			t.Fatal("the reissued certificate is for another key")
		}
		if _, err := ca.VerifyUser(res.SSHCert, f.s.CA().User.TrustedKeys()); err != nil {
			t.Fatal(err)
		}
		var reissued bool
		for _, ev := range f.audit.of(AuditCertIssued) {
			reissued = reissued || ev.Fields["via"] == "reissue" && ev.Fields["remote"] == "10.0.0.2"
		}
		if !reissued {
			t.Fatalf("the reissue is not audited: %+v", f.audit.of(AuditCertIssued))
		}
	})
	t.Run("a_hidden_or_unknown_cluster_reads_as_not_found", func(t *testing.T) {
		_, err := f.u.Reissue(ctx, id, pub, "ghost.example.com", "10.0.0.2")
		if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), `remote cluster "ghost.example.com" not found`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the_roles_are_those_of_now", func(t *testing.T) {
		carolSecret := f.signUp(t, "carol")
		cid, cpub, _ := login(t, "carol", carolSecret, 30*time.Minute)
		if _, err := f.s.Create(ctx, mustParse(t, "kind: user\nversion: v2\nmetadata: {name: carol}\nspec:\n  roles: [access]\n  traits: {logins: [carol]}\n"), true); err != nil {
			t.Fatal(err)
		}
		res, err := f.u.Reissue(ctx, cid, cpub, "", "10.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Roles, ",") != "access" {
			t.Fatalf("roles %v, want the user's current [access]", res.Roles)
		}
	})
	t.Run("a_sign_in_about_to_end_is_not_reissued", func(t *testing.T) {
		short := id
		short.ValidBefore = f.clock.Now().Add(30 * time.Second)
		if _, err := f.u.Reissue(ctx, short, pub, "", "10.0.0.2"); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "sign in again") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("only_certificates_of_a_sign_in_here_are_reissued", func(t *testing.T) {
		for name, edit := range map[string]func(*policy.Cert){
			"another_issuer":  func(c *policy.Cert) { c.IssuedVia = "oidc/okta" },
			"no_mfa":          func(c *policy.Cert) { c.MFAVerified = false },
			"another_cluster": func(c *policy.Cert) { c.SigningCA.Cluster = "leaf.example.com" },
		} {
			c := id
			edit(&c)
			if _, err := f.u.Reissue(ctx, c, pub, "", "10.0.0.2"); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
	})
	t.Run("a_locked_user_gets_nothing", func(t *testing.T) {
		if _, err := f.s.Create(ctx, mustParse(t, "kind: lock\nversion: v2\nmetadata: {name: l1}\nspec:\n  target: {user: alice}\n  message: stolen laptop\n"), false); err != nil {
			t.Fatal(err)
		}
		_, err := f.u.Reissue(ctx, id, pub, "", "10.0.0.2")
		if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), "stolen laptop") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a_removed_user_gets_nothing", func(t *testing.T) {
		bid, bpub, _ := login(t, "bob", bobSecret, time.Hour)
		if _, err := f.s.Delete(ctx, "user", "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.u.Reissue(ctx, bid, bpub, "", "10.0.0.2"); !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), "no longer exists") {
			t.Fatalf("err = %v", err)
		}
	})
}
