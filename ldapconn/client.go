package ldapconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/internal/ctxtime"
)

// ErrLeaseReleased is matched (errors.Is) by the error of every call made
// through a lease's Client after the lease was released or discarded (by
// Release, Discard, the Client's Close, an operation abandoned when the
// lease's context ended, or the return of Do's function). Such a call fails
// without touching the connection, which by then may serve another caller:
// a streaming call returns a Response whose Next is false and whose Err
// matches ErrLeaseReleased, GetLastError returns it, IsClosing reports true,
// TLSConnectionState reports no state, and SetTimeout does nothing.
var ErrLeaseReleased = errors.New("ldapconn: operation on a released lease")

func released(op string) error {
	return fmt.Errorf("%w: %s called after Release or Discard", ErrLeaseReleased, op)
}

// nilRequest is the error of a call given a nil request: nothing is sent
// (go-ldap would panic, or fail as if the connection had broken, or, for a
// search, end it with no entries and no error).
func nilRequest(op string) error { return fmt.Errorf("%w: %s: the request is nil", ErrBadRequest, op) }

// badSearch is the error of a search that cannot be sent: a nil request,
// or a nil control among its controls, which go-ldap cannot encode (it
// panics on the caller's goroutine, or on its own, where it ends the
// search with no entries and no error). nil if r can be sent.
func badSearch(op string, r *ldap.SearchRequest) error {
	if r == nil {
		return nilRequest(op)
	}
	for i, c := range r.Controls {
		if c == nil {
			return fmt.Errorf("%w: %s: control %d of %d is nil", ErrBadRequest, op, i+1, len(r.Controls))
		}
	}
	return nil
}

// client is a Lease seen as go-ldap's ldap.Client. Every method that
// touches the connection does so inside a use of the lease (see uses), so
// none reaches it after the lease is released.
type client struct {
	l   *Lease
	ctx context.Context // the context its operations run under when not the lease's: a hedged read's own (hedge.go)
}

// context returns the context c's operations run under.
func (c *client) context() context.Context {
	if c.ctx != nil {
		return c.ctx
	}
	return c.l.ctx
}

var _ ldap.Client = (*client)(nil)

func (c *client) conn() *ldap.Conn { return c.l.inner.Conn().ldap }

// run runs op, named for the error on a released lease, under the lease's
// context. When the context ends first, run returns the context's error at
// once and op goes on in the background: its use of the lease keeps the
// connection out of the pool until it ends (within the operation timeout),
// and the lease's Release gives the connection back only then. So a caller
// that gives up costs no connection, and nobody is lent a connection with a
// response still due on it.
func run[T any](c *client, name string, op func(*ldap.Conn) (T, error)) (T, error) {
	var zero T
	if err := c.begin(name); err != nil {
		return zero, err
	}
	ctx := c.context()
	if err := ctx.Err(); err != nil {
		c.l.endUse()
		return zero, fmt.Errorf("ldapconn: %s not started: %w", name, err)
	}
	v, err := ctxtime.Call(ctx, func() (T, error) { return runOp(c, ctx, op) }, nil)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return zero, fmt.Errorf("ldapconn: %s abandoned: %w", name, err)
	}
	return v, err
}

// runNow is run under a context that can never end (its Done is nil, as
// context.Background's): op runs on the caller's goroutine, as run would run
// it, and does not escape, so that neither it nor a function around it is
// allocated. Search and Compare, the calls of Pool.Search and Pool.Compare,
// take it.
func runNow[T any](c *client, name string, op func(*ldap.Conn) (T, error)) (T, error) {
	if err := c.begin(name); err != nil {
		var zero T
		return zero, err
	}
	return runOp(c, c.context(), op)
}

// runOp is the body of run and runNow, inside the use of the lease that
// they started, which it ends.
func runOp[T any](c *client, ctx context.Context, op func(*ldap.Conn) (T, error)) (v T, err error) {
	defer c.l.endUse() // last, before the answer: a Release that follows it gives the connection back at once
	conn := c.l.inner.Conn()
	h, server := c.l.pool.health, conn.server
	// See wireConn: the claim keeps the message IDs of operations
	// running at once on the connection exact.
	cl, err := conn.wire.claimNext(ctx, conn.life.Done())
	if err != nil {
		if errors.Is(err, errConnClosed) {
			err = c.l.observe(err)
		}
		return v, err // nothing was sent
	}
	start := h.begin(server)
	func() {
		defer func() { conn.wire.settle(cl); h.end(server, start, answered(err)) }() // even if op panics
		v, err = op(conn.ldap)
	}()
	return v, c.l.observe(err) // before the use ends: a broken connection is tainted before it can go back
}

// runAware runs op, which honours ctx itself, inside a use of the lease.
func runAware[T any](c *client, name string, op func(ctx context.Context, conn *Conn) (T, error)) (T, error) {
	var zero T
	if err := c.begin(name); err != nil {
		return zero, err
	}
	defer c.l.endUse()
	ctx := c.context()
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("ldapconn: %s not started: %w", name, err)
	}
	h, server := c.l.pool.health, c.l.inner.Conn().server
	start := h.begin(server)
	v, err := op(ctx, c.l.inner.Conn())
	h.end(server, start, answered(err) && ctx.Err() == nil)
	return v, c.l.observe(err)
}

// searchMovable runs r like Search, on go-ldap's SearchAsync, and gives it
// up when it has waited far past what its server usually takes while
// another server is up and the pool's budget allows: the search is
// abandoned at the server, the server marked slow, and moved reports true,
// for Pool.Search to run r again on a connection to a faster server.
func (c *client) searchMovable(r *ldap.SearchRequest) (res *ldap.SearchResult, moved bool, err error) {
	if err := c.begin("Search"); err != nil {
		return nil, false, err
	}
	defer c.l.endUse()
	ctx := c.context()
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("ldapconn: Search not started: %w", err)
	}
	p, conn := c.l.pool, c.l.inner.Conn()
	h, server := p.health, conn.server
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	// state: 0 running, 1 finished, 2 given up. The timer acts only on a
	// running search, and the search's end only counts a move that
	// happened: one CompareAndSwap each.
	var state atomic.Int32
	if after := h.moveAfter(server); after > 0 {
		t := time.AfterFunc(after, func() {
			now := time.Now()
			if h.fasterElsewhere(server, after, now) && p.moves.spend() {
				if state.CompareAndSwap(0, 2) {
					h.markSlow(server, now)
					cancel()
				}
			}
		})
		defer t.Stop()
	}
	start := h.begin(server)
	res, err = search(actx, conn, r)
	finished := state.CompareAndSwap(0, 1)
	h.end(server, start, answered(err) && actx.Err() == nil)
	if !finished && ctx.Err() == nil {
		// Moved: the connection is to a slow server; let it go. Pool.Search
		// runs r again; the caller never sees this attempt.
		c.l.inner.Taint(errMoved)
		return nil, true, nil
	}
	return res, false, c.l.observe(err)
}

// errMoved is why the connection of a search moved off a slow server is
// closed.
var errMoved = errors.New("ldapconn: search moved off a slow server")

// search runs r through go-ldap's SearchAsync, which stops reading when ctx
// ends; the search is then abandoned at the server (RFC 4511 Abandon), and
// the connection, with nothing left due on it, stays in the pool. Its
// result is what go-ldap's Search returns.
func search(ctx context.Context, conn *Conn, r *ldap.SearchRequest) (*ldap.SearchResult, error) {
	// SearchAsync on a closed connection ends without an error: say what
	// go-ldap's Search would.
	if conn.ldap.IsClosing() {
		return nil, errConnClosed
	}
	cl, err := conn.wire.claimNext(ctx, conn.life.Done())
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ldapconn: Search abandoned: %w", err)
		}
		return nil, err // nothing was sent
	}
	defer conn.wire.settle(cl) // settled below; this is for a panic
	resp := conn.ldap.SearchAsync(ctx, r, 0)
	res := &ldap.SearchResult{Entries: []*ldap.Entry{}, Referrals: []string{}, Controls: []ldap.Control{}}
	// go-ldap's Next returns false once its goroutine has ended, so after
	// this loop the request was written or never will be: settle is exact.
	for resp.Next() {
		switch {
		case resp.Entry() != nil:
			res.Entries = append(res.Entries, resp.Entry())
		case resp.Referral() != "":
			res.Referrals = append(res.Referrals, resp.Referral())
		default:
			res.Controls = append(res.Controls, resp.Controls()...)
		}
	}
	var id int64
	if ctx.Err() != nil {
		id = conn.wire.settleSent(cl, conn.ldap.IsClosing)
	} else {
		id = conn.wire.settle(cl)
	}
	if err := ctx.Err(); err != nil {
		if id > 0 {
			conn.wire.abandon(id)
		}
		return nil, fmt.Errorf("ldapconn: Search abandoned: %w", err)
	}
	if err := resp.Err(); err != nil {
		var le *ldap.Error
		if errors.As(err, &le) {
			res.ResultCode, res.DiagnosticMessage = le.ResultCode, le.Err.Error()
		}
		return res, err
	}
	if conn.ldap.IsClosing() && id == 0 {
		return nil, errConnClosed // closed before the request was written
	}
	if cl != nil && id == 0 {
		return nil, unsent("Search", conn.ldap)
	}
	return res, nil
}

// unsent is the error of a search go-ldap ended without writing it, and
// without an error, on a connection still open: its goroutine could not
// encode the request (a nil Control in its Controls, say), recovered, and
// recorded why as the connection's last error. Nothing was sent, and an
// answer with no entries would be a lie.
func unsent(op string, conn *ldap.Conn) error {
	return fmt.Errorf("%w: %s: the request could not be encoded: %v", ErrBadRequest, op, conn.GetLastError())
}

func run0(c *client, name string, op func(*ldap.Conn) error) error {
	_, err := run(c, name, func(conn *ldap.Conn) (struct{}, error) { return struct{}{}, op(conn) })
	return err
}

// with runs f on the connection inside a use, and reports false without
// calling it if the lease is released. It is for the calls that do not
// wait on the server.
func (c *client) with(f func(*ldap.Conn)) bool {
	if !c.l.startUse() {
		return false
	}
	defer c.l.endUse()
	f(c.conn())
	return true
}

// rebind records, inside the use that binds, that the caller binds as
// someone else, so that the release that may follow the use reverts it.
func (c *client) rebind(dn string, op func(*ldap.Conn) error) func(*ldap.Conn) error {
	return func(conn *ldap.Conn) error {
		c.l.rebound.Store(true)
		return wrongPassword(dn, op(conn))
	}
}

// wrongPassword makes a bind refused with result 49 match
// ErrInvalidCredentials, as the pool's own binds do; its text names dn, and
// ldap.IsErrorWithCode still reads the code.
func wrongPassword(dn string, err error) error {
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return &credentialsError{dn: dn, err: err}
	}
	return err
}

// begin starts a use of the lease for the call name (see uses), or returns
// why the call must not touch the connection: the lease is released, or the
// lease is a share whose Client was given a SetTimeout it cannot honour.
func (c *client) begin(name string) error {
	if c.l.refused.Load() {
		return refusedOnShare("SetTimeout (called earlier on this Client)")
	}
	if !c.l.startUse() {
		return released(name)
	}
	return nil
}

// exclusive returns the error of op, which changes the connection's
// identity or security state, on a share; nil on a whole connection.
func (c *client) exclusive(op string) error {
	if c.l.shared {
		return refusedOnShare(op)
	}
	return nil
}

func (c *client) taint(why string) { c.l.inner.Taint(errors.New("ldapconn: " + why)) }

func (c *client) Start() {}

func (c *client) StartTLS(cfg *tls.Config) error {
	if err := c.exclusive("StartTLS"); err != nil {
		return err
	}
	return run0(c, "StartTLS", func(conn *ldap.Conn) error {
		c.taint("StartTLS changed the connection's security state")
		return conn.StartTLS(cfg)
	})
}

// Close discards the connection: the pool closes it.
func (c *client) Close() error {
	if c.l.use.isReleased() {
		return released("Close")
	}
	c.l.Discard(errors.New("ldapconn: closed by its holder"))
	return nil
}

func (c *client) GetLastError() error {
	err := ErrLeaseReleased
	c.with(func(conn *ldap.Conn) { err = conn.GetLastError() })
	return err
}

func (c *client) IsClosing() bool {
	closing := true
	c.with(func(conn *ldap.Conn) { closing = conn.IsClosing() })
	return closing
}

// SetTimeout changes the operation timeout of this connection; the pool
// restores its own when the connection is reused.
//
// On a share (Do and Search with WithOpsPerConn above 1) it cannot: the
// timeout is the connection's, and other operations run on it. There it
// changes nothing, and every later operation through this Client fails
// with an error matching ErrSharedConnection.
func (c *client) SetTimeout(d time.Duration) {
	if c.l.shared {
		c.l.refused.Store(true)
		return
	}
	c.with(func(conn *ldap.Conn) {
		c.l.rebound.Store(true) // settle resets the timeout with the identity
		conn.SetTimeout(d)
	})
}

func (c *client) TLSConnectionState() (state tls.ConnectionState, ok bool) {
	c.with(func(conn *ldap.Conn) {
		// An ldaps:// connection's TLS is under the socket wrapper that
		// reads message IDs, where go-ldap does not look for it.
		if tc, isTLS := c.l.inner.Conn().wire.Conn.(*tls.Conn); isTLS {
			state, ok = tc.ConnectionState(), true
			return
		}
		state, ok = conn.TLSConnectionState()
	})
	return state, ok
}

func (c *client) Bind(username, password string) error {
	if err := c.exclusive("Bind"); err != nil {
		return err
	}
	return run0(c, "Bind", c.rebind(username, func(conn *ldap.Conn) error { return conn.Bind(username, password) }))
}

func (c *client) UnauthenticatedBind(username string) error {
	if err := c.exclusive("UnauthenticatedBind"); err != nil {
		return err
	}
	return run0(c, "UnauthenticatedBind", c.rebind(username, func(conn *ldap.Conn) error { return conn.UnauthenticatedBind(username) }))
}

func (c *client) SimpleBind(r *ldap.SimpleBindRequest) (*ldap.SimpleBindResult, error) {
	if r == nil {
		return nil, nilRequest("SimpleBind")
	}
	if err := c.exclusive("SimpleBind"); err != nil {
		return nil, err
	}
	return run(c, "SimpleBind", func(conn *ldap.Conn) (*ldap.SimpleBindResult, error) {
		c.l.rebound.Store(true)
		res, err := conn.SimpleBind(r)
		return res, wrongPassword(r.Username, err)
	})
}

func (c *client) ExternalBind() error {
	if err := c.exclusive("ExternalBind"); err != nil {
		return err
	}
	return run0(c, "ExternalBind", c.rebind("EXTERNAL", func(conn *ldap.Conn) error { return conn.ExternalBind() }))
}

func (c *client) NTLMUnauthenticatedBind(domain, username string) error {
	if err := c.exclusive("NTLMUnauthenticatedBind"); err != nil {
		return err
	}
	return run0(c, "NTLMUnauthenticatedBind", c.rebind(domain+`\`+username, func(conn *ldap.Conn) error {
		return conn.NTLMUnauthenticatedBind(domain, username)
	}))
}

func (c *client) Unbind() error {
	if err := c.exclusive("Unbind"); err != nil {
		return err
	}
	return run0(c, "Unbind", func(conn *ldap.Conn) error {
		c.taint("unbound by its holder")
		return conn.Unbind()
	})
}

func (c *client) Add(r *ldap.AddRequest) error {
	if r == nil {
		return nilRequest("Add")
	}
	c.l.wrote.Store(true)
	return run0(c, "Add", func(conn *ldap.Conn) error { return conn.Add(r) })
}

func (c *client) Del(r *ldap.DelRequest) error {
	if r == nil {
		return nilRequest("Del")
	}
	c.l.wrote.Store(true)
	return run0(c, "Del", func(conn *ldap.Conn) error { return conn.Del(r) })
}

func (c *client) Modify(r *ldap.ModifyRequest) error {
	if r == nil {
		return nilRequest("Modify")
	}
	c.l.wrote.Store(true)
	return run0(c, "Modify", func(conn *ldap.Conn) error { return conn.Modify(r) })
}

func (c *client) ModifyDN(r *ldap.ModifyDNRequest) error {
	if r == nil {
		return nilRequest("ModifyDN")
	}
	c.l.wrote.Store(true)
	return run0(c, "ModifyDN", func(conn *ldap.Conn) error { return conn.ModifyDN(r) })
}

func (c *client) ModifyWithResult(r *ldap.ModifyRequest) (*ldap.ModifyResult, error) {
	if r == nil {
		return nil, nilRequest("ModifyWithResult")
	}
	c.l.wrote.Store(true)
	return run(c, "ModifyWithResult", func(conn *ldap.Conn) (*ldap.ModifyResult, error) { return conn.ModifyWithResult(r) })
}

func (c *client) Extended(r *ldap.ExtendedRequest) (*ldap.ExtendedResponse, error) {
	if r == nil {
		return nil, nilRequest("Extended")
	}
	c.l.wrote.Store(true)
	return run(c, "Extended", func(conn *ldap.Conn) (*ldap.ExtendedResponse, error) { return conn.Extended(r) })
}

func (c *client) Compare(dn, attribute, value string) (bool, error) {
	if c.context().Done() == nil {
		return runNow(c, "Compare", func(conn *ldap.Conn) (bool, error) { return conn.Compare(dn, attribute, value) })
	}
	return run(c, "Compare", func(conn *ldap.Conn) (bool, error) { return conn.Compare(dn, attribute, value) })
}

func (c *client) PasswordModify(r *ldap.PasswordModifyRequest) (*ldap.PasswordModifyResult, error) {
	if r == nil {
		return nil, nilRequest("PasswordModify")
	}
	c.l.wrote.Store(true)
	return run(c, "PasswordModify", func(conn *ldap.Conn) (*ldap.PasswordModifyResult, error) { return conn.PasswordModify(r) })
}

func (c *client) Search(r *ldap.SearchRequest) (*ldap.SearchResult, error) {
	if err := badSearch("Search", r); err != nil {
		return nil, err
	}
	if c.context().Done() == nil {
		return runNow(c, "Search", func(conn *ldap.Conn) (*ldap.SearchResult, error) { return conn.Search(r) })
	}
	return runAware(c, "Search", func(ctx context.Context, conn *Conn) (*ldap.SearchResult, error) {
		return search(ctx, conn, r)
	})
}

// SearchWithPaging is go-ldap's, with each page a search of its own (so each
// learns its message ID, see wireConn, and is abandoned alone when the
// lease's context ends), and one paged search at a time on a connection:
// servers such as OpenLDAP keep one paged-results state per connection,
// which two paged searches sharing it would each invalidate.
func (c *client) SearchWithPaging(r *ldap.SearchRequest, size uint32) (*ldap.SearchResult, error) {
	if err := badSearch("SearchWithPaging", r); err != nil {
		return nil, err
	}
	if err := c.begin("SearchWithPaging"); err != nil {
		return nil, err
	}
	var paging *ldap.ControlPaging
	switch control := ldap.FindControl(r.Controls, ldap.ControlTypePaging); {
	case control == nil:
		paging = ldap.NewControlPaging(size)
		r.Controls = append(r.Controls, paging)
	default:
		cp, ok := control.(*ldap.ControlPaging)
		if !ok {
			c.l.endUse()
			return nil, fmt.Errorf("expected paging control to be of type *ControlPaging, got %v", control)
		}
		if cp.PagingSize != size {
			c.l.endUse()
			return nil, fmt.Errorf("paging size given in search request (%d) conflicts with size given in search call (%d)", cp.PagingSize, size)
		}
		paging = cp
	}
	conn := c.l.inner.Conn()
	select {
	case conn.paging <- struct{}{}:
	case <-c.context().Done():
		c.l.endUse()
		return nil, fmt.Errorf("ldapconn: SearchWithPaging not started: %w", c.context().Err())
	case <-conn.life.Done():
		c.l.endUse()
		return nil, c.l.observe(errConnClosed)
	}
	defer func() { <-conn.paging; c.l.endUse() }()
	all := &ldap.SearchResult{}
	for {
		res, err := c.Search(r)
		if res != nil {
			all.Entries = append(all.Entries, res.Entries...)
			all.Referrals = append(all.Referrals, res.Referrals...)
			all.Controls = append(all.Controls, res.Controls...)
		}
		if err != nil {
			return all, err // what came before, as go-ldap does
		}
		next, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if next == nil || len(next.Cookie) == 0 {
			return all, nil
		}
		paging.SetCookie(next.Cookie)
	}
}

func (c *client) DirSync(r *ldap.SearchRequest, flags, maxAttrCount int64, cookie []byte) (*ldap.SearchResult, error) {
	if err := badSearch("DirSync", r); err != nil {
		return nil, err
	}
	return run(c, "DirSync", func(conn *ldap.Conn) (*ldap.SearchResult, error) {
		return conn.DirSync(r, flags, maxAttrCount, cookie)
	})
}

// The streaming calls take their own context, which go-ldap honours. Each
// holds a use of the lease until its response is drained or its context
// ends (see stream), so the connection stays with the lease until then,
// Release or not. A stream whose context ends before the server's last
// answer ends with an Err matching the context's error (go-ldap's own ends
// with none), so entries cut short never look like the whole answer.

func (c *client) SearchAsync(ctx context.Context, r *ldap.SearchRequest, bufferSize int) ldap.Response {
	return c.stream(ctx, "SearchAsync", r, func(ctx context.Context, conn *ldap.Conn) ldap.Response {
		return conn.SearchAsync(ctx, r, bufferSize)
	})
}

func (c *client) DirSyncAsync(ctx context.Context, r *ldap.SearchRequest, bufferSize int, flags, maxAttrCount int64, cookie []byte) ldap.Response {
	return c.stream(ctx, "DirSyncAsync", r, func(ctx context.Context, conn *ldap.Conn) ldap.Response {
		return conn.DirSyncAsync(ctx, r, bufferSize, flags, maxAttrCount, cookie)
	})
}

func (c *client) Syncrepl(ctx context.Context, r *ldap.SearchRequest, bufferSize int, mode ldap.ControlSyncRequestMode, cookie []byte, reloadHint bool) ldap.Response {
	return c.stream(ctx, "Syncrepl", r, func(ctx context.Context, conn *ldap.Conn) ldap.Response {
		return conn.Syncrepl(ctx, r, bufferSize, mode, cookie, reloadHint)
	})
}
