package ldapconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// A panic inside a go-ldap call on a share (a Modify with a nil Control) is
// recovered by Do as documented, and the other operations on the shared
// connection go on:
// the call's claim on the connection's next message ID is settled on the
// way out. (Found by a review: the claim stayed held, and every other
// operation on the connection waited for ever.)
func TestPanicOnAShareLeavesItsConnectionUsable(t *testing.T) {
	t.Run("caller's goroutine", func(t *testing.T) { panicOnAShare(t, context.Background()) })
	// Under a context that can end, the call runs on a goroutine of its
	// own: the panic still reaches Do, which recovers it.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	t.Run("call's goroutine", func(t *testing.T) { panicOnAShare(t, ctx) })
}

func panicOnAShare(t *testing.T, panicCtx context.Context) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	inside, panicked := make(chan struct{}), make(chan struct{})
	other := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	go func() {
		other <- p.Do(ctx, func(c ldap.Client) error {
			close(inside)
			<-panicked
			_, err := c.Search(searchUID("user1"))
			return err
		})
	}()
	<-inside
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a Modify with a nil Control did not panic")
			}
		}()
		_ = p.Do(panicCtx, func(c ldap.Client) error {
			return c.Modify(ldap.NewModifyRequest(ldaptest.UserDN(1), []ldap.Control{nil})) // go-ldap's encoding panics
		})
	}()
	close(panicked)
	if err := <-other; err != nil {
		t.Fatalf("the other operation on the shared connection: %v", err)
	}
}

// A stream whose request is never written (a filter go-ldap cannot encode)
// fails at once, holds up no other operation on its shared connection, and
// a Compare started before the stream is read does not wait for it. (Found
// by a review: the stream's claim was held until its reader came.)
func TestUnwrittenStreamHoldsUpNobody(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	bad := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, "(uid=unclosed", nil, nil)
	started, othersDone := make(chan struct{}), make(chan struct{})
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- p.Do(ctx, func(c ldap.Client) error {
			resp := c.SearchAsync(ctx, bad, 0)
			close(started)
			if _, err := c.Compare(ldaptest.UserDN(1), "uid", "user1"); err != nil {
				return err
			}
			<-othersDone // the stream is read only after another caller's search
			for resp.Next() {
			}
			return resp.Err()
		})
	}()
	<-started
	if _, err := p.Search(ctx, searchUID("user1")); err != nil {
		t.Fatalf("a search beside an unwritten stream: %v", err)
	}
	close(othersDone)
	if err := <-streamErr; err == nil || !ldap.IsErrorWithCode(err, ldap.ErrorFilterCompile) {
		t.Fatalf("the stream with a bad filter: %v; want go-ldap's filter compile error", err)
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the stream's Do waited out its context: %v", err)
	}
}

// On a whole connection, a stream whose request is never written (the
// server closed the connection) holds up no later operation through the
// same Client: it fails with the connection closed. (Found by a review: the
// next operation waited for the unread stream for ever.)
func TestUnwrittenStreamOnALeaseHoldsUpNobody(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	c := l.Client()
	srv.DropConnections()
	waitFor(t, "the connection to see the server close it", c.IsClosing)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp := c.SearchAsync(context.Background(), searchUID("user1"), 0)
	done := make(chan error, 1)
	go func() {
		_, err := c.Compare(ldaptest.UserDN(1), "uid", "user1")
		done <- err
	}()
	select {
	case err := <-done:
		if !ldapconn.IsBroken(err) {
			t.Fatalf("Compare on a closed connection: %v; want a broken-connection error", err)
		}
	case <-ctx.Done():
		t.Fatal("Compare waited behind an unread stream whose request was never written")
	}
	for resp.Next() {
	}
}
