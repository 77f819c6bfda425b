package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/gateway/web"
)

// TestTokensListShowsTheBoundName: tctl's four columns, and "Joins As" once a token is
// bound to one leaf name with tokens add --name, so an admin sees which name can use it.
func TestTokensListShowsTheBoundName(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	exp := now.Add(5 * time.Minute)
	tests := []struct {
		name string
		toks []web.TokenListItem
		want []string
		not  []string
	}{
		{"no bound token keeps tctl's columns",
			[]web.TokenListItem{{Token: "abcd…", Roles: []string{"trusted_cluster"}, Expires: exp}},
			[]string{"Token", "Type", "Labels", "Expiry Time (UTC)", "abcd…"}, []string{"Joins As"}},
		{"a bound token shows its name, others any name",
			[]web.TokenListItem{
				{Token: "abcd…", Roles: []string{"trusted_cluster"}, Name: "leaf-east", Expires: exp},
				{Token: "ef01…", Roles: []string{"node"}, Expires: exp},
			},
			[]string{"Joins As", "leaf-east", "any name"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printTokens(&b, tt.toks, now)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("unexpected %q in:\n%s", w, b.String())
				}
			}
		})
	}
}

// tokens add and nodes add --ttl=0 (or less) are refused before the cluster is called:
// the cluster took 0 as its default (30 minutes) while tetherctl printed 'This token will
// expire in 0 minutes'. Found by the acceptance pass on the demo's root.
func TestTokenTTLMustBePositive(t *testing.T) {
	dir := t.TempDir() // no cluster: the flag is checked first
	for _, args := range [][]string{
		{"tokens", "add", "--type=node", "--ttl=0"},
		{"tokens", "add", "--type=trusted_cluster", "--ttl=-5m"},
		{"nodes", "add", "--ttl=0s"},
	} {
		_, err := run(t, append(args, "--data-dir", dir)...)
		if err == nil || !strings.Contains(err.Error(), "--ttl") || !strings.Contains(err.Error(), "positive") {
			t.Errorf("tetherctl %v: %v, want a --ttl error", args, err)
		}
	}
}
