package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

// BenchmarkNodeListFigures prints what the web node list costs on a cluster of 1,000 nodes
// for a certificate with 3 logins: one Engine.NodeList evaluation (what ownNodes does) against
// one ssh.session decision per node and login (what the node list did before), each with a
// fresh certificate so neither is served from a cache. make bench runs it once.
func BenchmarkNodeListFigures(b *testing.B) {
	cfg := load(b, b.TempDir())
	const nodes, runs = 1000, 5
	run(b, cfg, func(g *Gateway) {
		ctx := context.Background()
		docs := []string{"kind: role\nversion: v5\nmetadata: {name: stage}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: [stage, dev]}\n  deny:\n    logins: [root]\n"}
		for i := range nodes {
			docs = append(docs, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-%d\n  labels: {env: %s, rack: r%d}\nspec:\n  addr: 127.0.0.1:%d\n", i, []string{"stage", "dev", "prod"}[i%3], i%40, 2000+i))
		}
		rs, err := resource.Parse([]byte(strings.Join(docs, "---\n")), "bench.yaml")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.auth.Create(ctx, rs, false); err != nil {
			b.Fatal(err)
		}
		all, err := g.auth.Get(ctx, resource.KindNode, "", false)
		if err != nil {
			b.Fatal(err)
		}
		logins := []string{"alice", "visitor", "root"}
		cert := func() policy.Cert {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			key, _ := ssh.NewPublicKey(pub)
			c, err := g.auth.CA().User.IssueUser(ca.UserCertRequest{PublicKey: key, Username: "alice", Logins: logins, Roles: []string{"stage"},
				Traits: map[string][]string{"logins": logins}, TTL: time.Hour, MaxTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			signer, _ := ca.VerifyUser(c, g.auth.CA().User.TrustedKeys())
			id, err := policy.CertFromSSH(c, signer)
			if err != nil {
				b.Fatal(err)
			}
			return id
		}
		median := func(f func(policy.Cert)) time.Duration {
			var ds []time.Duration
			for range runs {
				id := cert()
				start := time.Now()
				f(id)
				ds = append(ds, time.Since(start))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			return ds[len(ds)/2]
		}
		b.ResetTimer()
		for range b.N {
			one := median(func(id policy.Cert) {
				if _, err := g.ownNodes(ctx, id, "bench"); err != nil {
					b.Fatal(err)
				}
			})
			var pn []policy.Node
			for _, r := range all {
				n := r.(*resource.Node)
				pn = append(pn, policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels})
			}
			engineOnly := median(func(id policy.Cert) {
				if _, err := g.engine.NodeList(ctx, &policy.Input{Cluster: g.cfg.ClusterName, Now: time.Now(), Cert: id}, pn); err != nil {
					b.Fatal(err)
				}
			})
			readNodes := median(func(policy.Cert) {
				if _, err := g.auth.Get(ctx, resource.KindNode, "", false); err != nil {
					b.Fatal(err)
				}
			})
			single := median(func(id policy.Cert) {
				now := time.Now()
				for _, r := range all {
					n := r.(*resource.Node)
					for _, login := range logins {
						if _, err := g.engine.Decide(ctx, &policy.Input{Action: policy.ActionSSHSession, Cluster: g.cfg.ClusterName, Now: now, Cert: id, Login: login,
							Node: &policy.Node{Name: n.Metadata.Name, Labels: n.Metadata.Labels}}); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			b.Logf("FIGURE node list, %d nodes × %d logins, new certificate: ownNodes %v (median of %d; of which Engine.NodeList %v, reading the node resources %v); %d single decisions %v; ratio %.1f×",
				nodes, len(logins), one.Round(time.Microsecond), runs, engineOnly.Round(time.Microsecond), readNodes.Round(time.Microsecond),
				nodes*len(logins), single.Round(time.Microsecond), float64(single)/float64(one))
		}
	})
}

// BenchmarkNodeReadFigures prints what reading a cluster's nodes for one node list costs
// at 1,000 and 10,000 nodes: the former read (auth.Get: list, parse every document, read
// two heartbeat keys per node) against auth.Nodes (list, reuse the documents parsed at
// the same store revision), warm and right after one node changed, and the whole
// ownNodes (read, one Engine.NodeList, log). Median of 5; make bench runs it once.
func BenchmarkNodeReadFigures(b *testing.B) {
	for _, count := range []int{1000, 10000} {
		cfg := load(b, b.TempDir())
		run(b, cfg, func(g *Gateway) {
			ctx := context.Background()
			docs := []string{"kind: role\nversion: v5\nmetadata: {name: stage}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: [stage, dev]}\n"}
			for i := range count {
				docs = append(docs, fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-%d\n  labels: {env: %s, rack: r%d}\nspec:\n  addr: 127.0.0.1:%d\n", i, []string{"stage", "dev", "prod"}[i%3], i%40, 2000+i%60000))
			}
			rs, err := resource.Parse([]byte(strings.Join(docs, "---\n")), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := g.auth.Create(ctx, rs, false); err != nil {
				b.Fatal(err)
			}
			logins := []string{"alice"}
			c, err := g.auth.CA().User.IssueUser(ca.UserCertRequest{PublicKey: mustKey(b), Username: "alice", Logins: logins, Roles: []string{"stage"},
				Traits: map[string][]string{"logins": logins}, TTL: time.Hour, MaxTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			signer, _ := ca.VerifyUser(c, g.auth.CA().User.TrustedKeys())
			id, err := policy.CertFromSSH(c, signer)
			if err != nil {
				b.Fatal(err)
			}
			median := func(before, f func()) time.Duration {
				var ds []time.Duration
				for range 5 {
					if before != nil {
						before()
					}
					start := time.Now()
					f()
					ds = append(ds, time.Since(start))
				}
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				return ds[len(ds)/2]
			}
			must := func(err error) {
				if err != nil {
					b.Fatal(err)
				}
			}
			gen := 0
			touch := func() {
				gen++
				rs, err := resource.Parse([]byte(fmt.Sprintf("kind: node\nversion: v2\nmetadata:\n  name: node-1\n  labels: {env: stage, gen: g%d}\nspec:\n  addr: 127.0.0.1:2001\n", gen)), "touch.yaml")
				must(err)
				_, err = g.auth.Create(ctx, rs, true)
				must(err)
			}
			ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
			for range b.N {
				get := median(nil, func() { _, err := g.auth.Get(ctx, resource.KindNode, "", false); must(err) })
				_, err := g.auth.Nodes(ctx)
				must(err)
				warm := median(nil, func() { _, err := g.auth.Nodes(ctx); must(err) })
				changed := median(touch, func() { _, err := g.auth.Nodes(ctx); must(err) })
				own := median(nil, func() { _, err := g.ownNodes(ctx, id, "bench"); must(err) })
				b.Logf("FIGURE node read, %d nodes: before (auth.Get) %s per list; after (auth.Nodes) %s warm, %s after one node changed; %.0f× faster warm; whole ownNodes now %s",
					count, ms(get), ms(warm), ms(changed), float64(get)/float64(warm), ms(own))
			}
		})
	}
}

func mustKey(b *testing.B) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	return key
}
