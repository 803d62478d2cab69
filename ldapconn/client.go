package ldapconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// client is a Lease seen as go-ldap's ldap.Client.
type client struct{ l *Lease }

var _ ldap.Client = (*client)(nil)

func (c *client) conn() *ldap.Conn { return c.l.inner.Conn().ldap }

// run runs op under the lease's context. When the context ends first, the
// lease is discarded (which closes the connection, ending op) and the
// context's error returned at once.
func run[T any](c *client, op func(*ldap.Conn) (T, error)) (T, error) {
	var zero T
	if c.l.inner.Done() {
		return zero, errors.New("ldapconn: operation on a released lease")
	}
	ctx := c.l.ctx
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("ldapconn: operation not started: %w", err)
	}
	conn := c.conn()
	if ctx.Done() == nil {
		v, err := op(conn)
		c.l.observe(err)
		return v, err
	}
	type outcome struct {
		v   T
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := op(conn)
		done <- outcome{v, err}
	}()
	select {
	case o := <-done:
		c.l.observe(o.err)
		return o.v, o.err
	case <-ctx.Done():
		err := fmt.Errorf("ldapconn: operation abandoned: %w", ctx.Err())
		c.l.Discard(err)
		return zero, err
	}
}

func run0(c *client, op func(*ldap.Conn) error) error {
	_, err := run(c, func(conn *ldap.Conn) (struct{}, error) { return struct{}{}, op(conn) })
	return err
}

// identity records that the caller bound the connection as someone else.
func (c *client) identity(err error) error {
	c.l.rebound.Store(true)
	return err
}

func (c *client) taint(why string) { c.l.inner.Taint(errors.New("ldapconn: " + why)) }

func (c *client) Start() {}

func (c *client) StartTLS(cfg *tls.Config) error {
	c.taint("StartTLS changed the connection's security state")
	return run0(c, func(conn *ldap.Conn) error { return conn.StartTLS(cfg) })
}

// Close discards the connection: the pool closes it.
func (c *client) Close() error {
	c.l.Discard(errors.New("ldapconn: closed by its holder"))
	return nil
}

func (c *client) GetLastError() error { return c.conn().GetLastError() }
func (c *client) IsClosing() bool     { return c.conn().IsClosing() }

// SetTimeout changes the operation timeout of this connection; the pool
// restores its own when the connection is reused.
func (c *client) SetTimeout(d time.Duration) {
	c.l.rebound.Store(true) // settle resets the timeout with the identity
	c.conn().SetTimeout(d)
}

func (c *client) TLSConnectionState() (tls.ConnectionState, bool) {
	return c.conn().TLSConnectionState()
}

func (c *client) Bind(username, password string) error {
	return c.identity(run0(c, func(conn *ldap.Conn) error { return conn.Bind(username, password) }))
}

func (c *client) UnauthenticatedBind(username string) error {
	return c.identity(run0(c, func(conn *ldap.Conn) error { return conn.UnauthenticatedBind(username) }))
}

func (c *client) SimpleBind(r *ldap.SimpleBindRequest) (*ldap.SimpleBindResult, error) {
	c.l.rebound.Store(true)
	return run(c, func(conn *ldap.Conn) (*ldap.SimpleBindResult, error) { return conn.SimpleBind(r) })
}

func (c *client) ExternalBind() error {
	return c.identity(run0(c, func(conn *ldap.Conn) error { return conn.ExternalBind() }))
}

func (c *client) NTLMUnauthenticatedBind(domain, username string) error {
	return c.identity(run0(c, func(conn *ldap.Conn) error { return conn.NTLMUnauthenticatedBind(domain, username) }))
}

func (c *client) Unbind() error {
	c.taint("unbound by its holder")
	return run0(c, func(conn *ldap.Conn) error { return conn.Unbind() })
}

func (c *client) Add(r *ldap.AddRequest) error {
	return run0(c, func(conn *ldap.Conn) error { return conn.Add(r) })
}

func (c *client) Del(r *ldap.DelRequest) error {
	return run0(c, func(conn *ldap.Conn) error { return conn.Del(r) })
}

func (c *client) Modify(r *ldap.ModifyRequest) error {
	return run0(c, func(conn *ldap.Conn) error { return conn.Modify(r) })
}

func (c *client) ModifyDN(r *ldap.ModifyDNRequest) error {
	return run0(c, func(conn *ldap.Conn) error { return conn.ModifyDN(r) })
}

func (c *client) ModifyWithResult(r *ldap.ModifyRequest) (*ldap.ModifyResult, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.ModifyResult, error) { return conn.ModifyWithResult(r) })
}

func (c *client) Extended(r *ldap.ExtendedRequest) (*ldap.ExtendedResponse, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.ExtendedResponse, error) { return conn.Extended(r) })
}

func (c *client) Compare(dn, attribute, value string) (bool, error) {
	return run(c, func(conn *ldap.Conn) (bool, error) { return conn.Compare(dn, attribute, value) })
}

func (c *client) PasswordModify(r *ldap.PasswordModifyRequest) (*ldap.PasswordModifyResult, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.PasswordModifyResult, error) { return conn.PasswordModify(r) })
}

func (c *client) Search(r *ldap.SearchRequest) (*ldap.SearchResult, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.SearchResult, error) { return conn.Search(r) })
}

func (c *client) SearchWithPaging(r *ldap.SearchRequest, size uint32) (*ldap.SearchResult, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.SearchResult, error) { return conn.SearchWithPaging(r, size) })
}

func (c *client) DirSync(r *ldap.SearchRequest, flags, maxAttrCount int64, cookie []byte) (*ldap.SearchResult, error) {
	return run(c, func(conn *ldap.Conn) (*ldap.SearchResult, error) {
		return conn.DirSync(r, flags, maxAttrCount, cookie)
	})
}

// The streaming calls take their own context, which go-ldap honours.

func (c *client) SearchAsync(ctx context.Context, r *ldap.SearchRequest, bufferSize int) ldap.Response {
	return c.conn().SearchAsync(ctx, r, bufferSize)
}

func (c *client) DirSyncAsync(ctx context.Context, r *ldap.SearchRequest, bufferSize int, flags, maxAttrCount int64, cookie []byte) ldap.Response {
	return c.conn().DirSyncAsync(ctx, r, bufferSize, flags, maxAttrCount, cookie)
}

func (c *client) Syncrepl(ctx context.Context, r *ldap.SearchRequest, bufferSize int, mode ldap.ControlSyncRequestMode, cookie []byte, reloadHint bool) ldap.Response {
	return c.conn().Syncrepl(ctx, r, bufferSize, mode, cookie, reloadHint)
}
