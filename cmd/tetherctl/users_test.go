package main

import (
	"strings"
	"testing"
)

// A user is stored only if a certificate can be issued for it: every login of its
// logins trait is a valid Unix login name (as in roles), and its name is one tether login
// accepts. Until the acceptance pass, users add/update and create stored logins such as
// "root;rm -rf" or "-oProxyCommand=x" and names such as "bob/x"; the user then could not
// sign in at all ("roles ... do not allow login ..."), or tether login refused the name.
func TestUsersMustBeAbleToSignIn(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "add", "bob", "--roles=access", "--logins=visitor,root;rm -rf"}, `login "root;rm -rf" is not a valid Unix login name`},
		{[]string{"users", "add", "bob", "--roles=access", "--logins=-oProxyCommand=x"}, `login "-oProxyCommand=x" is not a valid Unix login name`},
		{[]string{"users", "add", "bob/x", "--roles=access", "--logins=bob"}, `user name "bob/x"`},
		{[]string{"users", "add", "..", "--roles=access", "--logins=bob"}, `".."`},
		{[]string{"create", writeFile(t, "u.yaml", "kind: user\nversion: v2\nmetadata: {name: carol}\nspec:\n  roles: [access]\n  traits:\n    logins: ['carol ']\n")}, `login "carol " is not a valid Unix login name`},
	} {
		if _, err := root.ctl(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tetherctl %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if out, _ := root.ctl(t, "get", "user"); strings.Contains(out, "name:") {
		t.Fatalf("a refused user was stored:\n%s", out)
	}
	root.mustCtl(t, "users", "add", "bob", "--roles=access", "--logins=bob,ubuntu")
	if _, err := root.ctl(t, "users", "update", "bob", "--set-logins=bob,bad;x"); err == nil || !strings.Contains(err.Error(), `login "bad;x" is not a valid Unix login name`) {
		t.Errorf("users update --set-logins with a bad login: %v", err)
	}
	// Other traits are the identity provider's business and stay as they are.
	root.mustCtl(t, "create", "-f", writeFile(t, "b.yaml", "kind: user\nversion: v2\nmetadata: {name: bob}\nspec:\n  roles: [access]\n  traits:\n    logins: [bob]\n    groups: ['sre team;x']\n"))
}

// A role name with a comma could be created but never given with users add --roles
// (which splits on commas: "dev,admin" became the roles dev and admin), and tether
// status showed it as two roles: refused on write. Roles stored before keep working.
func TestRoleNamesHaveNoCommas(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	if _, err := root.ctl(t, "create", writeFile(t, "r.yaml", "kind: role\nversion: v5\nmetadata: {name: 'dev,admin'}\nspec:\n  allow: {logins: [x]}\n")); err == nil ||
		!strings.Contains(err.Error(), `role "dev,admin": ',' is not allowed in role names`) {
		t.Fatalf("create of a role named dev,admin: %v", err)
	}
	if out, _ := root.ctl(t, "get", "role/dev,admin"); strings.Contains(out, "name:") {
		t.Fatalf("the refused role was stored:\n%s", out)
	}
}

// tetherctl users reset of a user that does not exist says so and nothing else: it printed
// 'User "nobody" has been reset: the password and second factor are cleared' before trying,
// then 'issuing a sign-up token for nobody: user "nobody" not found: ... (run tetherctl
// users reset nobody to try again)'. Found by the acceptance pass as a Teleport admin.
func TestUsersResetOfAMissingUserSaysOnlyThat(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	out, err := root.ctl(t, "users", "reset", "nobody")
	if err == nil {
		t.Fatalf("users reset nobody succeeded:\n%s", out)
	}
	if strings.Contains(out, "has been reset") || strings.Contains(err.Error(), "users reset nobody") || !strings.Contains(err.Error(), `user "nobody" not found`) {
		t.Errorf("users reset nobody: %v\n%s\nwant only that the user does not exist", err, out)
	}
	root.mustCtl(t, "users", "add", "bob", "--roles=access", "--logins=bob")
	if out := root.mustCtl(t, "users", "reset", "bob"); !strings.Contains(out, `User "bob" has been reset`) || !strings.Contains(out, "Sign-up token for bob") {
		t.Errorf("users reset bob:\n%s", out)
	}
}
