package ldapconn_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// A service that leases a connection and loses it (an early return that
// forgot Release, a panic recovered higher up) does not lose the pool's
// slot for good: the lease is reported when the garbage collector finds it
// and its connection discarded, so that the next lease at WithMaxSize(1)
// gets a connection. Also when the dropped lease had a search stream open
// and undrained: the stream does not keep the lease reachable.
func TestAdoptingADroppedLeaseComesBack(t *testing.T) {
	for _, c := range []struct {
		name string
		use  func(t *testing.T, l *ldapconn.Lease)
	}{
		{"nothing open", func(t *testing.T, l *ldapconn.Lease) {
			if _, err := l.Client().Search(searchUID("user1")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a search stream undrained", func(t *testing.T, l *ldapconn.Lease) {
			r := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
				0, 0, false, "(objectClass=*)", []string{"cn"}, nil)
			resp := l.Client().SearchAsync(context.Background(), r, 1)
			if !resp.Next() {
				t.Fatalf("the stream ended at once: %v", resp.Err())
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
			func() {
				l, err := p.Lease(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				c.use(t, l) // and l is dropped: no Release, no Discard
			}()
			got := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				l, err := p.Lease(ctx)
				if err == nil {
					l.Release()
				}
				got <- err
			}()
			for range 200 { // each GC may find the lease; its finalizer runs after
				runtime.GC()
				select {
				case err := <-got:
					if err != nil {
						t.Fatalf("the lease after a dropped one: %v", err)
					}
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			t.Fatalf("the pool never got its only connection back from the dropped lease: %v", p.Stats())
		})
	}
}
