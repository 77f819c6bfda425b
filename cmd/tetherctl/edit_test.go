package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEditLikeTctl: tetherctl edit KIND/NAME opens the resource in $VISUAL or $EDITOR and
// writes it back when it changed, as tctl edit does. What the cluster or the parser
// refuses changes nothing and keeps the edited file, named in the error, so the admin's
// edit is not lost.
func TestEditLikeTctl(t *testing.T) {
	root := startCluster(t, "root.example.com", "")
	root.mustCtl(t, "create", writeFile(t, "r.yaml", "kind: role\nversion: v5\nmetadata: {name: dev}\nspec:\n  allow:\n    logins: [ubuntu]\n"))
	root.mustCtl(t, "users", "add", "alice", "--roles", "dev")
	// editor makes a script that edits its argument with a shell snippet ($1 is the file).
	editor := func(t *testing.T, snippet string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "editor.sh")
		if err := os.WriteFile(p, []byte("#!/bin/sh\nset -e\n"+snippet+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv("VISUAL", "")
		t.Setenv("EDITOR", p)
	}
	role := func(t *testing.T) string { return root.mustCtl(t, "get", "role/dev") }
	keptFile := regexp.MustCompile(`kept in (\S+\.yaml)`)
	refusedAndKept := func(t *testing.T, out string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("edit: %v\n%s\nwant an error containing %q", err, out, want)
		}
		m := keptFile.FindStringSubmatch(err.Error())
		if m == nil {
			t.Fatalf("the error does not name the kept file: %v", err)
		}
		if _, statErr := os.Stat(m[1]); statErr != nil {
			t.Fatalf("the edited file is not kept: %v", statErr)
		}
		os.RemoveAll(filepath.Dir(m[1]))
	}

	t.Run("a_change_is_written_back", func(t *testing.T) {
		editor(t, `sed -i 's/ubuntu/debian/' "$1"`)
		out := root.mustCtl(t, "edit", "role/dev")
		if !strings.Contains(out, `role "dev" has been updated`) || !strings.Contains(role(t), "debian") {
			t.Fatalf("edit role/dev: %s\n%s", out, role(t))
		}
	})
	t.Run("no_change_writes_nothing", func(t *testing.T) {
		editor(t, `true`)
		if out := root.mustCtl(t, "edit", "roles/dev"); !strings.Contains(out, `role "dev": no changes made`) {
			t.Fatalf("edit without a change: %s", out)
		}
	})
	t.Run("an_unknown_field_is_refused_and_the_edit_kept", func(t *testing.T) {
		editor(t, `sed -i 's/debian/centos/' "$1"; printf '  bogus_field: 1\n' >> "$1"`)
		out, err := root.ctl(t, "edit", "role/dev")
		refusedAndKept(t, out, err, "bogus_field")
		if !strings.Contains(role(t), "debian") {
			t.Fatalf("a refused edit changed the role:\n%s", role(t))
		}
	})
	t.Run("broken_yaml_is_refused", func(t *testing.T) {
		editor(t, `printf 'spec: [\n' >> "$1"`)
		out, err := root.ctl(t, "edit", "role/dev")
		refusedAndKept(t, out, err, "invalid YAML")
	})
	t.Run("the_name_cannot_change", func(t *testing.T) {
		editor(t, `sed -i 's/name: dev/name: dev2/' "$1"`)
		out, err := root.ctl(t, "edit", "role/dev")
		refusedAndKept(t, out, err, "the one resource role/dev")
		if _, err := root.ctl(t, "get", "role/dev2"); err == nil {
			t.Fatal("a renamed edit created role dev2")
		}
	})
	t.Run("what_the_cluster_refuses_is_kept", func(t *testing.T) {
		editor(t, `sed -i 's/- dev/- no-such-role/' "$1"`)
		out, err := root.ctl(t, "edit", "user/alice")
		refusedAndKept(t, out, err, "no-such-role")
		if !strings.Contains(root.mustCtl(t, "get", "user/alice"), "- dev") {
			t.Fatal("a refused edit changed the user")
		}
	})
	t.Run("an_editor_that_fails_changes_nothing", func(t *testing.T) {
		editor(t, `sed -i 's/debian/centos/' "$1"; exit 3`)
		if out, err := root.ctl(t, "edit", "role/dev"); err == nil || !strings.Contains(err.Error(), "exited with status 3; nothing was changed") {
			t.Fatalf("edit with a failing editor: %v\n%s", err, out)
		}
		if !strings.Contains(role(t), "debian") {
			t.Fatalf("a failed editor's change was written:\n%s", role(t))
		}
	})
	t.Run("kinds_changed_otherwise_say_how", func(t *testing.T) {
		editor(t, `true`)
		for ref, want := range map[string]string{
			"rc/leaf":                "tetherctl update rc/NAME --set-labels",
			"cas/root.example.com":   "tetherctl auth rotate",
			"token/abc":              "tetherctl tokens add",
			"role":                   "want KIND/NAME",
			"role/no-such-role-here": "not found",
		} {
			if _, err := root.ctl(t, "edit", ref); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("edit %s: %v, want %q", ref, err, want)
			}
		}
	})
}
