package ldapconn_test

// Tests written by porting services' code onto the pool: nil where a
// request or a function belongs (a request builder that returned nil on a
// path its author forgot, a handler table with a missing entry). Each is a
// bad request (docs/errors.md): an error matching ErrBadRequest, nothing
// sent, the connection kept, and never a silent success or a write whose
// outcome is unknown.

import (
	"context"
	"errors"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

func TestAdoptingNilRequestIsABadRequest(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	ctx := contractCtx(t)
	user := ldapconn.Credentials{DN: ldaptest.UserDN(3), Password: ldaptest.UserPassword(3)}
	onClient := func(call func(c ldap.Client) error) func() error {
		return func() error { return p.Do(ctx, call) }
	}
	onLease := func(call func(c ldap.Client) error) func() error {
		return func() error {
			l, err := p.Lease(ctx)
			if err != nil {
				return err
			}
			defer l.Release()
			return call(l.Client())
		}
	}
	stream := func(r ldap.Response) error {
		if r.Next() {
			return errors.New("Next returned true for a nil request")
		}
		return r.Err()
	}
	calls := map[string]func() error{
		"Pool.Search": func() error {
			res, err := p.Search(ctx, nil)
			if res != nil && err == nil {
				return errors.New("a result and no error")
			}
			return err
		},
		"Pool.Search, no deadline": func() error { _, err := p.Search(context.Background(), nil); return err },
		"Do(nil)":                  func() error { return p.Do(ctx, nil) },
		"DoAs(nil)":                func() error { return p.DoAs(ctx, user, nil) },
		"Add":                      onClient(func(c ldap.Client) error { return c.Add(nil) }),
		"Del":                      onClient(func(c ldap.Client) error { return c.Del(nil) }),
		"Modify":                   onClient(func(c ldap.Client) error { return c.Modify(nil) }),
		"ModifyDN":                 onClient(func(c ldap.Client) error { return c.ModifyDN(nil) }),
		"ModifyWithResult":         onClient(func(c ldap.Client) error { _, err := c.ModifyWithResult(nil); return err }),
		"Extended":                 onClient(func(c ldap.Client) error { _, err := c.Extended(nil); return err }),
		"PasswordModify":           onClient(func(c ldap.Client) error { _, err := c.PasswordModify(nil); return err }),
		"Search":                   onClient(func(c ldap.Client) error { _, err := c.Search(nil); return err }),
		"SearchWithPaging":         onClient(func(c ldap.Client) error { _, err := c.SearchWithPaging(nil, 10); return err }),
		"DirSync":                  onClient(func(c ldap.Client) error { _, err := c.DirSync(nil, 0, 0, nil); return err }),
		"SearchAsync":              onClient(func(c ldap.Client) error { return stream(c.SearchAsync(ctx, nil, 0)) }),
		"DirSyncAsync":             onClient(func(c ldap.Client) error { return stream(c.DirSyncAsync(ctx, nil, 0, 0, 0, nil)) }),
		"Syncrepl": onClient(func(c ldap.Client) error {
			return stream(c.Syncrepl(ctx, nil, 0, ldap.SyncRequestModeRefreshOnly, nil, false))
		}),
		"SimpleBind on a lease": onLease(func(c ldap.Client) error { _, err := c.SimpleBind(nil); return err }),
		"Search on a lease":     onLease(func(c ldap.Client) error { _, err := c.Search(nil); return err }),
		"Add on a lease":        onLease(func(c ldap.Client) error { return c.Add(nil) }),
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("%s with a nil request panicked: %v; want an error matching ErrBadRequest", name, v)
					}
				}()
				err = call()
			}()
			if !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Fatalf("%s with a nil request: %v; want an error matching ErrBadRequest", name, err)
			}
			if errors.Is(err, ldapconn.ErrOutcomeUnknown) || ldapconn.IsBroken(err) || ldapconn.IsRetryable(err) {
				t.Fatalf("%s with a nil request: %v; want no outcome unknown, not broken, not retryable: nothing was sent", name, err)
			}
		})
	}
	// Nothing was sent, so nothing cost the pool its connections.
	if st := p.Stats(); st.Discards != 0 || st.Dials != 1 {
		t.Errorf("discards = %d, dials = %d; want 0 and 1: a nil request costs no connection", st.Discards, st.Dials)
	}
	if res, err := p.Search(ctx, searchUID("user3")); err != nil || cnOf(t, res) != "User 3" {
		t.Fatalf("Search after the nil requests: %v", err)
	}
}

// A search go-ldap cannot encode (here a nil Control among its Controls,
// which a control builder returned on an error path) is never sent; go-ldap's
// search goroutine recovers from the panic and ends the response with no
// entries and no error. The pool says it is a bad request instead of an
// empty answer: a service that looked a user up saw "no such user".
func TestAdoptingUnencodableSearchIsABadRequest(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	ctx := contractCtx(t)
	req := searchUID("user1")
	req.Controls = []ldap.Control{nil}
	for name, call := range map[string]func() error{
		"Pool.Search": func() error { _, err := p.Search(ctx, req); return err },
		// Under a context that cannot end the search runs on the caller's
		// goroutine, where go-ldap's encoding panics.
		"Pool.Search, context.Background": func() error { _, err := p.Search(context.Background(), req); return err },
		"Search on a lease, context.Background": func() error {
			l, err := p.Lease(context.Background())
			if err != nil {
				return err
			}
			defer l.Release()
			_, err = l.Client().Search(req)
			return err
		},
		"SearchAsync": func() error {
			return p.Do(ctx, func(c ldap.Client) error {
				r := c.SearchAsync(ctx, req, 0)
				for r.Next() {
				}
				return r.Err()
			})
		},
		"SearchAsync on a lease": func() error {
			l, err := p.Lease(ctx)
			if err != nil {
				return err
			}
			defer l.Release()
			r := l.Client().SearchAsync(ctx, req, 0)
			for r.Next() {
			}
			return r.Err()
		},
	} {
		if err := call(); !errors.Is(err, ldapconn.ErrBadRequest) || ldapconn.IsRetryable(err) {
			t.Errorf("%s of a request go-ldap cannot encode: %v; want an error matching ErrBadRequest, not retryable", name, err)
		}
	}
	if res, err := p.Search(ctx, searchUID("user1")); err != nil || cnOf(t, res) != "User 1" {
		t.Fatalf("Search after: %v", err)
	}
	if st := p.Stats(); st.Discards != 0 || st.Dials != 1 {
		t.Errorf("discards = %d, dials = %d; want 0 and 1: nothing was sent", st.Discards, st.Dials)
	}
}

// Close(nil), which go vet does not catch when the context comes from a
// variable, closes the pool as Close(context.Background()) would, rather than
// panicking on one of Close's own goroutines, where no recover of the
// caller's could catch it.
func TestAdoptingCloseWithANilContextCloses(t *testing.T) {
	srv := embedded(t)
	p, err := ldapconn.NewPool(srv.URL(), admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	var ctx context.Context // nil, as from a struct field never set
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close(nil) = %v", err)
	}
	if _, err := p.Search(t.Context(), searchUID("user1")); !errors.Is(err, ldapconn.ErrClosed) {
		t.Fatalf("Search after Close(nil) = %v; want ErrClosed", err)
	}
	// The server sees the closes as its reads end.
	waitFor(t, "the server to see every connection closed", func() bool { return srv.Stats().Open == 0 })
}
