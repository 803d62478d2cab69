package ldapconn_test

// Tests written by porting services' code onto the pool: a directory export
// job streams every user with SearchAsync and stops when its request is
// cancelled (a client hung up, a deploy drains the job).

import (
	"context"
	"errors"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// readUntilCancelled reads a stream of every seeded user, cancels the
// stream's context after the tenth entry, reads on until Next is false, and
// returns how many entries it read and the stream's Err.
func readUntilCancelled(c ldap.Client, ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := c.SearchAsync(ctx, everyone(), 0)
	n := 0
	for resp.Next() {
		if n++; n == 10 {
			cancel()
		}
	}
	return n, resp.Err()
}

// A stream whose context ends before the search is done ends with an error
// that says so (context.Canceled, as for Search; docs/errors.md "cancelled"),
// never with a nil Err that would make the entries read so far look like the
// whole answer. go-ldap's own SearchAsync ends silently then: the export job
// wrote a truncated file and reported success. The connection is not lost.
func TestAdoptingStreamCancelledMidwayReportsIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ldapconn.Option
		read func(ctx context.Context, p *ldapconn.Pool) (int, error)
	}{
		{"Do on a share", nil, func(ctx context.Context, p *ldapconn.Pool) (n int, err error) {
			err = p.Do(ctx, func(c ldap.Client) error { n, err = readUntilCancelled(c, ctx); return err })
			return n, err
		}},
		{"Do on a whole connection", []ldapconn.Option{ldapconn.WithOpsPerConn(1)}, func(ctx context.Context, p *ldapconn.Pool) (n int, err error) {
			err = p.Do(ctx, func(c ldap.Client) error { n, err = readUntilCancelled(c, ctx); return err })
			return n, err
		}},
		{"Lease", nil, func(ctx context.Context, p *ldapconn.Pool) (int, error) {
			l, err := p.Lease(ctx)
			if err != nil {
				return 0, err
			}
			defer l.Release()
			return readUntilCancelled(l.Client(), ctx)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), append([]ldapconn.Option{admin, ldapconn.WithMaxSize(1)}, tc.opts...)...)
			ctx := contractCtx(t)
			n, err := tc.read(ctx, p)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("a stream cancelled after 10 of %d entries ended after %d with Err() = %v; want an error matching context.Canceled",
					ldaptest.Users, n, err)
			}
			if ldapconn.IsRetryable(err) || ldapconn.IsBroken(err) {
				t.Errorf("IsRetryable = %v, IsBroken = %v for %v; want false, false (the caller chose to stop)",
					ldapconn.IsRetryable(err), ldapconn.IsBroken(err), err)
			}
			res, err := p.Search(ctx, searchUID("user7"))
			if err != nil {
				t.Fatalf("Search after the cancelled stream: %v", err)
			}
			if got := cnOf(t, res); got != "User 7" {
				t.Fatalf("Search after the cancelled stream found cn %q; want %q", got, "User 7")
			}
			if st := p.Stats(); st.Dials != 1 {
				t.Errorf("dials = %d; want the one connection kept through the cancelled stream", st.Dials)
			}
		})
	}
}

// A stream read to its end under a context that never ends reports no error
// and every entry: the error above is for streams cut short only.
func TestAdoptingStreamReadToItsEndHasNoError(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	n := 0
	err := p.Do(contractCtx(t), func(c ldap.Client) error {
		resp := c.SearchAsync(context.Background(), everyone(), 0)
		for resp.Next() {
			n++
		}
		return resp.Err()
	})
	if err != nil || n != ldaptest.Users {
		t.Fatalf("a stream read to its end: %d entries, Err() = %v; want %d, nil", n, err, ldaptest.Users)
	}
}
