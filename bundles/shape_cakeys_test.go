package bundles_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
)

func caResources(t *testing.T, name string) (user, host *resource.CertAuthority) {
	t.Helper()
	c, err := ca.NewCluster(name, "")
	if err != nil {
		t.Fatal(err)
	}
	if user, err = c.User.Resource(false); err != nil {
		t.Fatal(err)
	}
	if host, err = c.Host.Resource(false); err != nil {
		t.Fatal(err)
	}
	return user, host
}

// withKey is ca as cluster's CA of type typ but with the keys of keysOf.
func withKey(cluster, typ string, keysOf *resource.CertAuthority) *resource.CertAuthority {
	return &resource.CertAuthority{
		Kind: resource.KindCertAuthority, Version: "v2",
		Metadata: resource.Metadata{Name: cluster},
		Spec:     resource.CertAuthoritySpec{Type: typ, ClusterName: cluster, ActiveKeys: keysOf.Spec.ActiveKeys},
	}
}

func TestShapeOneKeyBelongsToOneClusterAndType(t *testing.T) {
	rootUser, rootHost := caResources(t, "root.example.com")
	leafUser, leafHost := caResources(t, "leaf.example.com")
	enabledTrust := &resource.TrustedCluster{Kind: resource.KindTrustedCluster, Version: "v2",
		Metadata: resource.Metadata{Name: "root.example.com"},
		Spec:     resource.TrustedClusterSpec{Enabled: true, TunnelAddr: "a:1", WebProxyAddr: "a:1"}}
	// The attacker's cases first.
	for _, tc := range []struct {
		name    string
		cluster string
		res     []resource.Resource
	}{
		// A leaf registered the root's own user CA key as its host CA: last-wins would
		// make every root user certificate a "host CA of leaf" certificate on the root.
		{"leaf_claims_the_roots_user_key_as_its_host_CA", "root.example.com",
			[]resource.Resource{rootUser, rootHost, withKey("leaf.example.com", "host", rootUser)}},
		// A root answered the handshake with the leaf's own user CA key: last-wins would
		// cut off the leaf's local users, even with the trust disabled.
		{"root_claims_the_leafs_own_user_key", "leaf.example.com",
			[]resource.Resource{leafUser, leafHost, enabledTrust, withKey("root.example.com", "user", leafUser), rootHost}},
		{"own_key_listed_first_cannot_be_shadowed_by_a_later_entry", "leaf.example.com",
			[]resource.Resource{leafUser, withKey("other.example.com", "user", leafUser)}},
		{"shadowing_entry_listed_before_the_own_key", "leaf.example.com",
			[]resource.Resource{withKey("other.example.com", "user", leafUser), leafUser}},
		{"two_leaves_with_one_key", "root.example.com",
			[]resource.Resource{rootUser, leafHost, withKey("evil.example.com", "host", leafHost)}},
		{"one_cluster_one_key_as_user_and_host", "root.example.com",
			[]resource.Resource{rootUser, withKey("root.example.com", "host", rootUser)}},
		{"one_key_twice_in_one_CA", "root.example.com",
			[]resource.Resource{&resource.CertAuthority{Kind: resource.KindCertAuthority, Version: "v2",
				Metadata: resource.Metadata{Name: "root.example.com"},
				Spec: resource.CertAuthoritySpec{Type: "user", ClusterName: "root.example.com",
					ActiveKeys: rootUser.Spec.ActiveKeys, AdditionalTrustedKeys: rootUser.Spec.ActiveKeys}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundles.Shape(bundles.ShapeOptions{ClusterName: tc.cluster, Resources: tc.res})
			if !errors.Is(err, bundles.ErrDuplicateCAKey) || !strings.Contains(err.Error(), "belongs to one cluster and CA type") {
				t.Fatalf("got %v, want ErrDuplicateCAKey", err)
			}
		})
	}
	t.Run("distinct_keys_shape", func(t *testing.T) {
		data, err := bundles.Shape(bundles.ShapeOptions{ClusterName: "leaf.example.com",
			Resources: []resource.Resource{leafUser, leafHost, enabledTrust, rootUser, rootHost}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(data["tether"].(map[string]any)["cas"].(map[string]any)); n != 4 {
			t.Fatalf("%d CA keys, want 4", n)
		}
	})
}
