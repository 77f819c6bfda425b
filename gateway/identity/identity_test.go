package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherproject/tether/ca"
)

func TestIssueWriteLoad(t *testing.T) {
	c, err := ca.NewCluster("root.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := Issue(c, "127.0.0.1:3080", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), FileName)
	if err := WriteFile(p, data); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	id, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if id.AuthServer != "127.0.0.1:3080" || !IsAdmin(id.Leaf, "root.example.com") || IsAdmin(id.Leaf, "other.example.com") {
		t.Fatalf("identity: %+v", id)
	}
	if NeedsRenewal(p, time.Minute, time.Now()) || !NeedsRenewal(p, 2*time.Hour, time.Now()) {
		t.Fatal("NeedsRenewal")
	}
	for _, bad := range []string{"", "garbage", strings.SplitAfter(string(data), "-----END CERTIFICATE-----\n")[0]} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Fatalf("Parse accepted %q", bad)
		}
	}
}
