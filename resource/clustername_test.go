package resource

import (
	"strings"
	"testing"
)

func TestClusterNamesAreDNSNames(t *testing.T) {
	// The attacker's names first: each would let two different strings name one cluster,
	// or one name reach another resource through a key or URL.
	for _, tc := range []struct{ name, want string }{
		{".", "empty"},
		{"..", "empty label"},
		{"", "empty"},
		{".root.example.com", "empty label"},
		{"root..example.com", "empty label"},
		{"root.example.com..", "empty label"},
		{"root/leaf", `'/'`},
		{"..%2f..", "empty label"},
		{"root example.com", `' '`},
		{"root\texample.com", `'\t'`},
		{"root\x00.example.com", `'\x00'`},
		{"root\u200b.example.com", `'\u200b'`},
		{"root\u202e.example.com", `'\u202e'`},
		{"rооt.example.com", `'\u043e'`}, // Cyrillic o
		{"-root.example.com", "start or end"},
		{"root-.example.com", "start or end"},
		{strings.Repeat("a", 64) + ".example.com", "longer than 63"},
		{strings.Repeat("a.", 127) + "ab", "at most 253"},
		{"root:443", `':'`},
	} {
		t.Run("refuses_"+strings.ToValidUTF8(strings.NewReplacer("/", "_", " ", "_").Replace(tc.name), "?"), func(t *testing.T) {
			err := CheckClusterName(tc.name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckClusterName(%q) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
	for _, name := range []string{"root", "root.example.com", "ROOT.example.com", "root.example.com.", "leaf_1.example-2.com", "127.0.0.1", strings.Repeat("a", 63)} {
		if err := CheckClusterName(name); err != nil {
			t.Errorf("CheckClusterName(%q) = %v", name, err)
		}
	}
}

func TestClusterNamesCompareCaseInsensitivelyWithoutTrailingDot(t *testing.T) {
	for _, n := range []string{"ROOT.example.com", "root.example.com.", "Root.Example.Com.", "root.example.com"} {
		if !SameCluster(n, "root.example.com") || NormalizeClusterName(n) != "root.example.com" {
			t.Errorf("%q is not root.example.com", n)
		}
	}
	if SameCluster("root.example.com", "root.example.co") {
		t.Error("different names compare equal")
	}
}

func TestClusterResourcesStoreNormalisedNames(t *testing.T) {
	rs, err := Parse([]byte(`kind: trusted_cluster
version: v2
metadata: {name: ROOT.Example.com.}
spec: {enabled: true, token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}
---
kind: remote_cluster
version: v3
metadata: {name: LEAF.example.com.}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].GetMetadata().Name != "root.example.com" || rs[1].GetMetadata().Name != "leaf.example.com" {
		t.Fatalf("names: %q %q", rs[0].GetMetadata().Name, rs[1].GetMetadata().Name)
	}
	for _, doc := range []string{
		"kind: trusted_cluster\nversion: v2\nmetadata: {name: '..'}\nspec: {token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n",
		"kind: trusted_cluster\nversion: v2\nmetadata: {name: 'a/b'}\nspec: {token: abc, tunnel_addr: 'a:1', web_proxy_addr: 'a:1'}\n",
		"kind: remote_cluster\nversion: v3\nmetadata: {name: 'a..b'}\n",
		"kind: cert_authority\nversion: v2\nmetadata: {name: x}\nspec: {type: host, cluster_name: 'x/../y'}\n",
	} {
		if _, err := Parse([]byte(doc), "t.yaml"); err == nil || !strings.Contains(err.Error(), "cluster name") && !strings.Contains(err.Error(), `must not be "." or ".."`) {
			t.Errorf("accepted or wrong error %v for\n%s", err, doc)
		}
	}
}
