package auth

import (
	"context"
	"testing"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/resource"
)

// TestChangesAreAudited: an admin's resource changes (named by the admin the context
// carries), a token's use, a leaf's join, a label change and a removed leaf each give
// their audit event at the source; a token's value never appears.
func TestChangesAreAudited(t *testing.T) {
	ctx := audit.WithUser(context.Background(), "admin-of-root")
	root := newService(t, "root.example.com")
	mem := &memAuditor{}
	root.cfg.Auditor = mem

	role := "kind: role\nversion: v5\nmetadata: {name: ops}\nspec: {allow: {logins: [ubuntu]}}\n"
	if _, err := root.Create(ctx, mustParse(t, role), false); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Create(ctx, mustParse(t, role), true); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Delete(ctx, resource.KindRole, "ops"); err != nil {
		t.Fatal(err)
	}
	tok := trustToken(t, root, TokenOptions{})
	if _, err := root.ValidateTrustedCluster(ctx, tok, hostCAOf(t, "leaf.example.com"), "198.51.100.7:1234"); err != nil {
		t.Fatal(err)
	}
	if err := root.SetRemoteClusterLabels(ctx, "leaf.example.com", map[string]string{"env": "demo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Delete(ctx, resource.KindRemoteCluster, "leaf.example.com"); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		typ    string
		fields map[string]any
	}{
		{audit.ResourceCreate, map[string]any{"kind": "role", "name": "ops"}},
		{audit.ResourceUpdate, map[string]any{"kind": "role", "name": "ops"}},
		{audit.ResourceDelete, map[string]any{"kind": "role", "name": "ops"}},
		{audit.TokenUse, map[string]any{"token_type": resource.TokenRoleTrustedCluster}},
		{AuditTrustJoin, map[string]any{"leaf": "leaf.example.com", "remote": "198.51.100.7:1234"}},
		{audit.ResourceUpdate, map[string]any{"kind": resource.KindRemoteCluster, "name": "leaf.example.com"}},
		{audit.ResourceDelete, map[string]any{"kind": resource.KindRemoteCluster, "name": "leaf.example.com"}},
		{audit.TrustRemove, map[string]any{"leaf": "leaf.example.com", "side": "root"}},
	} {
		found := false
		for _, ev := range mem.of(tt.typ) {
			match := true
			for k, v := range tt.fields {
				if ev.Fields[k] != v {
					match = false
				}
			}
			if match {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s event with %v in %+v", tt.typ, tt.fields, mem.of(tt.typ))
		}
	}
	for _, ev := range mem.events {
		for k, v := range ev.Fields {
			if s, ok := v.(string); ok && s == tok {
				t.Errorf("%s: field %s holds the token", ev.Type, k)
			}
		}
	}
}
