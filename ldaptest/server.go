package ldaptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
)

const (
	startTLSOID = "1.3.6.1.4.1.1466.20037"
	// startTimeout bounds how long NewServer waits for gldap to listen, and
	// Close for gldap's connections to end. Both normally take microseconds.
	startTimeout = 10 * time.Second
)

// Server is an in-process LDAP server on 127.0.0.1 serving the seeded
// directory described in seed.go. It answers bind, search, compare and
// StartTLS; add, modify and delete are refused with unwillingToPerform.
// All its methods are safe for concurrent use.
//
// Clients talk to a small proxy owned by the Server, which forwards binds and
// searches to a gldap server on another loopback port, and itself answers
// compares (gldap cannot decode them), terminates TLS, and keeps hold of
// every client connection so that DropConnections and WithMaxConnections
// work and Close ends them all.
type Server struct {
	cfg     config
	dir     *directory
	ln      net.Listener // the proxy's, the one clients dial
	gl      *gldap.Server
	glAddr  string     // where gldap listens
	glDone  chan error // receives gldap's Run result
	done    chan struct{}
	latency atomic.Pointer[func() time.Duration]
	stats   counters

	wg       sync.WaitGroup // accept loop, proxy goroutines, compares
	backends sync.WaitGroup // one per gldap connection, done in its OnClose

	mu     sync.Mutex
	closed bool
	conns  map[*proxyConn]struct{}
	bound  map[int]string // gldap connection ID -> bound DN

	closeOnce sync.Once
	closeErr  error
}

type config struct {
	startTLS, ldaps *tls.Config
	latency         func() time.Duration
	maxConns        int
	logger          hclog.Logger
}

// Option configures a Server.
type Option func(*config)

// WithTLS enables the StartTLS extended operation with the given server
// configuration. Without it StartTLS fails with protocolError.
func WithTLS(c *tls.Config) Option { return func(o *config) { o.startTLS = c } }

// WithLDAPS serves LDAP over TLS (ldaps://) with the given configuration
// instead of plain LDAP; URL then starts with "ldaps://".
func WithLDAPS(c *tls.Config) Option { return func(o *config) { o.ldaps = c } }

// WithLogger sends gldap's log to l. The default discards it.
func WithLogger(l hclog.Logger) Option { return func(o *config) { o.logger = l } }

// NewServer starts a Server on a free port of 127.0.0.1. It is accepting
// connections when NewServer returns. Close it when done.
func NewServer(opts ...Option) (*Server, error) {
	s := &Server{
		done:  make(chan struct{}),
		conns: map[*proxyConn]struct{}{},
		bound: map[int]string{},
	}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.logger == nil {
		s.cfg.logger = hclog.NewNullLogger()
	}
	if s.cfg.latency != nil {
		s.latency.Store(&s.cfg.latency)
	}
	s.dir = newDirectory(s.cfg.startTLS != nil)
	if err := s.startGldap(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.shutdown()
		return nil, fmt.Errorf("ldaptest: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// startGldap runs the gldap server on a free loopback port and waits until it
// listens. gldap's Run picks no port itself and has no Addr method, and its
// Ready turns true even when listening failed; but Run logs the address it
// listens on just before its accept loop, so the Server reads it from there.
func (s *Server) startGldap() error {
	addrs := make(chan net.Addr, 1)
	gl, err := gldap.NewServer(
		gldap.WithLogger(&addrLogger{Logger: s.cfg.logger, addrs: addrs}),
		gldap.WithOnClose(s.gldapConnClosed),
	)
	if err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	mux, err := gldap.NewMux()
	if err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	err = errors.Join(
		mux.Bind(s.handleBind),
		mux.Search(s.handleSearch),
		mux.Add(readOnly(gldap.ApplicationAddResponse)),
		mux.Modify(readOnly(gldap.ApplicationModifyResponse)),
		mux.Delete(readOnly(gldap.ApplicationDelResponse)),
		gl.Router(mux),
	)
	if err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	s.gl, s.glDone = gl, make(chan error, 1)
	go func() { s.glDone <- gl.Run("127.0.0.1:0") }()
	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	select {
	case a := <-addrs:
		s.glAddr = a.String()
		return nil
	case err := <-s.glDone:
		return fmt.Errorf("ldaptest: gldap stopped before listening: %v", err)
	case <-timeout.C:
		_ = gl.Stop()
		return errors.New("ldaptest: gldap did not report its listening address")
	}
}

// addrLogger passes gldap's log on and picks the address out of the
// "listening" message gldap's Run logs once its listener is open.
type addrLogger struct {
	hclog.Logger
	addrs chan<- net.Addr
}

func (l *addrLogger) Info(msg string, args ...any) {
	if msg == "listening" {
		for i := 0; i+1 < len(args); i += 2 {
			if a, ok := args[i+1].(net.Addr); ok && args[i] == "addr" {
				select {
				case l.addrs <- a:
				default:
				}
			}
		}
	}
	l.Logger.Info(msg, args...)
}

// URL returns the server's address, "ldap://127.0.0.1:PORT", or
// "ldaps://127.0.0.1:PORT" with WithLDAPS.
func (s *Server) URL() string {
	if s.cfg.ldaps != nil {
		return "ldaps://" + s.ln.Addr().String()
	}
	return "ldap://" + s.ln.Addr().String()
}

// BoundDNs returns, sorted, the DN bound on each open connection that has
// sent a bind request; "" stands for an anonymous connection, including one
// whose last bind failed. Pool tests use it to check which identity pooled
// connections are left with.
func (s *Server) BoundDNs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	dns := make([]string, 0, len(s.bound))
	for _, dn := range s.bound {
		dns = append(dns, dn)
	}
	sort.Strings(dns)
	return dns
}

// Close stops the server: it closes every client connection and waits until
// every goroutine the server started, its own and gldap's, has ended.
// Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	close(s.done) // ends latency waits
	var errs []error
	if s.ln != nil {
		errs = append(errs, s.ln.Close())
	}
	s.mu.Lock()
	s.closed = true
	conns := make([]*proxyConn, 0, len(s.conns))
	for pc := range s.conns {
		conns = append(conns, pc)
	}
	s.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
	s.wg.Wait()

	// gldap's Stop only cancels a context its connections check between
	// requests: an idle connection blocked in a read would make Stop wait
	// forever. And Stop returns before its connection goroutines have run
	// their deferred close and OnClose. So first let every gldap connection
	// see EOF (the proxy connections to it are closed by now) and wait for
	// their OnClose, the last thing those goroutines do.
	idle := make(chan struct{})
	go func() { s.backends.Wait(); close(idle) }()
	if _, ok := within(idle, startTimeout); !ok {
		errs = append(errs, errors.New("ldaptest: gldap connections did not end"))
	}
	errs = append(errs, s.gl.Stop())
	if err, ok := within(s.glDone, startTimeout); ok {
		errs = append(errs, err)
	} else {
		errs = append(errs, errors.New("ldaptest: gldap did not stop"))
	}
	return errors.Join(errs...)
}

// within receives from ch, giving up after d.
func within[T any](ch <-chan T, d time.Duration) (v T, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v = <-ch:
		return v, true
	case <-t.C:
		return v, false
	}
}

// gldapConnClosed is gldap's OnClose callback.
func (s *Server) gldapConnClosed(connID int) {
	s.mu.Lock()
	delete(s.bound, connID)
	s.mu.Unlock()
	s.backends.Done()
}

func (s *Server) handleBind(w *gldap.ResponseWriter, r *gldap.Request) {
	s.stats.binds.Add(1)
	code, bound := uint16(ldap.LDAPResultProtocolError), ""
	if m, err := r.GetSimpleBindMessage(); err == nil {
		if !s.delay() {
			return
		}
		code, bound = s.dir.bind(m.UserName, string(m.Password))
	}
	s.mu.Lock()
	s.bound[r.ConnectionID()] = bound
	s.mu.Unlock()
	_ = w.Write(r.NewBindResponse(gldap.WithResponseCode(int(code))))
}

func (s *Server) handleSearch(w *gldap.ResponseWriter, r *gldap.Request) {
	s.stats.searches.Add(1)
	m, err := r.GetSearchMessage()
	if err != nil {
		_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(ldap.LDAPResultProtocolError)))
		return
	}
	if !s.delay() {
		return
	}
	entries, code := s.dir.search(m.BaseDN, int64(m.Scope), m.Filter, m.SizeLimit)
	for _, e := range entries {
		resp := r.NewSearchResponseEntry(e.dn)
		for _, a := range e.selectAttrs(m.Attributes, m.TypesOnly) {
			resp.AddAttribute(a.name, a.values)
		}
		if w.Write(resp) != nil {
			return
		}
	}
	_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(int(code))))
}

// readOnly answers an update request of the given response type.
func readOnly(responseType int) gldap.HandlerFunc {
	return func(w *gldap.ResponseWriter, r *gldap.Request) {
		_ = w.Write(r.NewResponse(
			gldap.WithApplicationCode(responseType),
			gldap.WithResponseCode(ldap.LDAPResultUnwillingToPerform),
			gldap.WithDiagnosticMessage("ldaptest: the directory is read-only"),
		))
	}
}
