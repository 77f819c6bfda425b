package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkDecideNewCert is a new certificate's first decision (the identity stage cold,
// then the decision), over the fixture's everyday and odd certificates, for profiling
// and A/B runs of the identity stage. b.N distinct user names, so every op is a new
// identity.
func BenchmarkDecideNewCert(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	e := f.engine(b, Options{})
	pool := sessionPool(f, rand.New(rand.NewPCG(7, 7)), 32, false)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := *pool[i%len(pool)]
		c := in.Cert
		c.Username = fmt.Sprintf("new-%d", i)
		in.Cert = c
		if _, err := e.Decide(ctx, &in); err != nil {
			b.Fatal(err)
		}
	}
}
