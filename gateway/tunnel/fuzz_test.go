package tunnel

import (
	"encoding/json"
	"testing"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/transport/frame"
)

// FuzzDecodeNodeList: whatever a leaf sends, DecodeNodeList never panics, and what it
// accepts holds to the limits and re-encodes to an answer it accepts again.
func FuzzDecodeNodeList(f *testing.F) {
	for _, s := range []string{
		`{"nodes":[]}`,
		`{"nodes":[{"name":"node-east","addr":"127.0.0.1:3022","hostname":"east","labels":{"env":"stage"},"logins":["visitor","ubuntu"]}]}`,
		`{"nodes":[{"name":"10.0.0.1","logins":["v"]}]}`,
		`{"nodes":[{"name":"n","logins":["v"]}]} x`,
		`{"nodes":null}`, `null`, `[]`, `{"nodes":[{"name":"n","labels":{"":"x"},"logins":["v"]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := DecodeNodeList(data)
		if err != nil {
			return
		}
		if len(nodes) > MaxListedNodes {
			t.Fatalf("%d nodes accepted", len(nodes))
		}
		for _, n := range nodes {
			if frame.ValidNodeName(n.Name) != nil || len(n.Logins) == 0 || len(n.Logins) > MaxLogins || len(n.Labels) > MaxNodeLabels {
				t.Fatalf("accepted %+v", n)
			}
			for _, l := range n.Logins {
				if !loginRE.MatchString(l) {
					t.Fatalf("accepted login %q", l)
				}
			}
		}
		again, err := json.Marshal(NodeListAnswer{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeNodeList(again); err != nil {
			t.Fatalf("re-encoded answer refused: %v", err)
		}
	})
}

// FuzzDecodeUserRoles: the same for a leaf's role answer.
func FuzzDecodeUserRoles(f *testing.F) {
	for _, s := range []string{`{"roles":["visitor"]}`, `{"roles":[],"notes":["no roles mapped for user with remote roles [x]"]}`, `{"roles":["a b"]}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeUserRoles(data)
		if err != nil {
			return
		}
		for _, r := range a.Roles {
			if !roleName(r) {
				t.Fatalf("accepted role %q", r)
			}
		}
		again, _ := json.Marshal(a)
		if _, err := DecodeUserRoles(again); err != nil {
			t.Fatalf("re-encoded answer refused: %v", err)
		}
	})
}

// FuzzDecodeRootLocks: whatever a root sends, DecodeRootLocks never panics, and every lock
// it accepts is a valid lock with a target, bounded text, that re-encodes to a document
// it accepts again.
func FuzzDecodeRootLocks(f *testing.F) {
	for _, s := range []string{
		`{"locks":[]}`,
		`{"locks":[{"name":"incident","target":{"user":"alice"},"message":"stolen laptop"}]}`,
		`{"locks":[{"name":"m","target":{"login":"root","node":"db"},"expires":"2030-01-02T03:04:05Z"}]}`,
		`{"locks":[{"name":"x","target":{}}]}`, `{"locks":[{"name":"a b","target":{"user":"u"}}]}`,
		`{"locks":[{"name":"x","target":{"user":"u"},"extra":1}]}`, `{"locks":null}`, `null`, `{"locks":[]} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		locks, err := DecodeRootLocks(data)
		if err != nil {
			return
		}
		doc := RootLocks{Locks: []RootLock{}}
		for _, l := range locks {
			if err := l.Validate(); err != nil || l.Spec.Target.IsEmpty() || len(l.Spec.Message) > MaxLockMessage || !printable(l.Spec.Message) {
				t.Fatalf("accepted %+v (%v)", l, err)
			}
			doc.Locks = append(doc.Locks, RootLock{Name: l.Metadata.Name, Target: RootLockTarget(l.Spec.Target), Message: l.Spec.Message, Expires: l.Spec.Expires})
		}
		again, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRootLocks(again); err != nil {
			t.Fatalf("re-encoded document refused: %v", err)
		}
	})
}

// FuzzDecodeTrustCAs: whatever the other side of a trust sends on a CA exchange,
// decodeTrustCAs and the check of each CA (trust.CA.Resource, what auth.ReplacePeerCAs
// runs first) never panic; an accepted document holds at most auth.MaxPeerCAs CAs and
// re-encodes to one it accepts again.
func FuzzDecodeTrustCAs(f *testing.F) {
	for _, s := range []string{
		`{"cas":[]}`,
		`{"cas":[{"type":"user","cluster_name":"root.example.com","ssh_public_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb7xfV5H8m7zXHt1nB0a0R6bq9gD2H0bgnx0VQf2y3G"]}]}`,
		`{"cas":[{"type":"tls","cluster_name":"r","tls_certs":["-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"]}]}`,
		`{"cas":[],"error":"refused"}`, `{"cas":[{},{},{}]}`, `{"cas":[{"type":"host","extra":1}]}`, `null`, `{"cas":[]} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := decodeTrustCAs(data)
		if err != nil {
			return
		}
		if len(doc.CAs) > auth.MaxPeerCAs {
			t.Fatalf("%d CAs accepted", len(doc.CAs))
		}
		for _, c := range doc.CAs {
			_, _ = c.Resource()
		}
		again, _ := json.Marshal(doc)
		if _, err := decodeTrustCAs(again); err != nil {
			t.Fatalf("re-encoded document refused: %v", err)
		}
	})
}
