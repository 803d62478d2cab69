package ldapconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
)

// TestNestedSearchWhileThePrimaryIsMarkedSlow: a Search inside Do, at
// WithMaxSize(2) and (3) with two servers, while the primary slows 20x and
// the pool marks it and leaves it. The nested read lands on a service
// connection to the marked primary; it must not wait for another one,
// which the Do around it may hold (at size 2 the service pool has one
// connection, the hedge lane the other): it used to, until its context
// ended (3 s here; for ever under context.Background). Each round must
// finish well within a second, both reads answered, for 40 rounds, with
// the pool's slow mark set during them.
func TestNestedSearchWhileThePrimaryIsMarkedSlow(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []ldapconn.Option
	}{
		{"size 2", []ldapconn.Option{ldapconn.WithMaxSize(2)}},
		{"size 3", []ldapconn.Option{ldapconn.WithMaxSize(3)}},
		{"size 2 without hedging", []ldapconn.Option{ldapconn.WithMaxSize(2), ldapconn.WithHedging(false)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			primary, secondary := embedded(t), embedded(t)
			p := newPool(t, primary.URL()+","+secondary.URL(), append([]ldapconn.Option{admin}, c.opts...)...)
			for range 30 {
				if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
					t.Fatal(err)
				}
			}
			primary.SetLatency(20 * time.Millisecond)
			marked := false
			for i := range 40 {
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				start := time.Now()
				err := p.Do(ctx, func(c ldap.Client) error {
					if _, err := c.Search(searchUID("user2")); err != nil {
						return err
					}
					res, err := p.Search(ctx, searchUID("user3"))
					if err == nil && len(res.Entries) != 1 {
						t.Errorf("nested search: %d entries; want 1", len(res.Entries))
					}
					return err
				})
				cancel()
				if took := time.Since(start); err != nil || took > time.Second {
					t.Fatalf("round %d: Do with a nested Search: %v after %v\n%v", i, err, took, p)
				}
				marked = marked || p.Servers()[0].Slow
			}
			if !marked {
				t.Fatal("the primary, 20x slower, was never marked slow: the test did not test what it is for")
			}
		})
	}
}
