package ldapconn_test

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
)

// BenchmarkDoOverhead measures what Do itself costs a call, around a
// function that does nothing: the lease path's time and allocations
// (docs/benchmarks.md). Sequential and in parallel, on a share (the
// default) and on a whole connection (WithOpsPerConn(1)).
func BenchmarkDoOverhead(b *testing.B) {
	srv := embedded(b)
	for _, tc := range []struct {
		name string
		opts []ldapconn.Option
	}{
		{"share", nil},
		{"whole", []ldapconn.Option{ldapconn.WithOpsPerConn(1)}},
	} {
		p := newPool(b, srv.URL(), append([]ldapconn.Option{admin, ldapconn.WithMaxSize(4)}, tc.opts...)...)
		nothing := func(ldap.Client) error { return nil }
		ctx := context.Background()
		if err := p.Do(ctx, nothing); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Do(ctx, nothing); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := p.Do(ctx, nothing); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// Do's own path, lease and release, allocates at most three objects a call
// on a share and on a whole connection: no key derivation for the service
// identity, no drop watch on a lease only Do holds, the Client made with the
// lease. (CI runs the race detector, under which this test skips; `go test
// ./ldapconn/` runs it.)
func TestDoAllocatesAtMostThreeObjects(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	srv := embedded(t)
	for _, opts := range [][]ldapconn.Option{nil, {ldapconn.WithOpsPerConn(1)}} {
		p := newPool(t, srv.URL(), append([]ldapconn.Option{admin, ldapconn.WithMaxSize(2)}, opts...)...)
		nothing := func(ldap.Client) error { return nil }
		ctx := context.Background()
		if err := p.Do(ctx, nothing); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(200, func() {
			if err := p.Do(ctx, nothing); err != nil {
				t.Fatal(err)
			}
		}); n > 3 {
			t.Fatalf("Do allocates %.1f objects a call (options %d); want at most 3", n, len(opts))
		}
	}
}
