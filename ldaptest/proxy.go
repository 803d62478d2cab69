package ldaptest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

const (
	handshakeTimeout = 10 * time.Second
	maxMessageSize   = 16 << 20
)

// accept serves the proxy's listener until Close.
func (s *Server) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			// Closed by Close, or out of file descriptors: back off as
			// net/http does. (gldap's own accept loop gives up instead.)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if !s.wait(backoff) {
				return
			}
			continue
		}
		backoff = 0
		if n := s.cfg.maxConns; n > 0 && s.stats.open.Load() >= int64(n) {
			s.stats.refused.Add(1)
			_ = c.Close()
			continue
		}
		pc := &proxyConn{s: s, raw: c, client: c}
		if !s.track(pc) {
			_ = c.Close()
			return
		}
		s.wg.Add(1)
		go pc.serve()
	}
}

// track registers pc unless the server is closing.
func (s *Server) track(pc *proxyConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[pc] = struct{}{}
	s.stats.accepted.Add(1)
	s.stats.open.Add(1)
	return true
}

func (s *Server) untrack(pc *proxyConn) {
	s.mu.Lock()
	delete(s.conns, pc)
	s.mu.Unlock()
	s.stats.open.Add(-1)
}

// proxyConn is one client connection and its connection to gldap.
// Requests go up to gldap, except compares, which gldap cannot decode, and
// StartTLS, which the proxy terminates; gldap's responses come down.
type proxyConn struct {
	s   *Server
	raw net.Conn // as accepted: closing it cuts the client off at once

	mu      sync.Mutex // guards backend and closed
	backend net.Conn
	closed  bool

	wmu    sync.Mutex // serializes writes to the client; guards client and w
	client net.Conn   // raw, or the TLS connection over it
	w      *bufio.Writer
}

func (pc *proxyConn) serve() {
	defer pc.s.wg.Done()
	defer pc.close()
	if cfg := pc.s.cfg.ldaps; cfg != nil {
		tc := tls.Server(pc.raw, cfg)
		if pc.handshake(tc) != nil {
			return
		}
		pc.client = tc
	}
	pc.w = bufio.NewWriter(pc.client)
	b, err := net.DialTimeout("tcp", pc.s.glAddr, handshakeTimeout)
	if err != nil {
		return
	}
	pc.s.backends.Add(1) // gldap will accept it: see gldapConnClosed
	pc.mu.Lock()
	closed := pc.closed
	pc.backend = b
	pc.mu.Unlock()
	if closed {
		_ = b.Close()
		return
	}
	pc.s.wg.Add(1)
	go pc.down(b)
	pc.up(b)
}

// close closes both connections, and reports whether it was this call that
// did (it is called by both directions, DropConnections and Close).
func (pc *proxyConn) close() bool {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return false
	}
	pc.closed = true
	b := pc.backend
	pc.mu.Unlock()
	_ = pc.raw.Close()
	if b != nil {
		_ = b.Close()
	}
	pc.s.untrack(pc)
	return true
}

// up reads the client's requests until the connection ends.
func (pc *proxyConn) up(backend net.Conn) {
	r := bufio.NewReader(pc.client)
	for {
		frame, err := readMessage(r)
		if err != nil {
			return
		}
		msg, err := ber.DecodePacketErr(frame)
		if err != nil || len(msg.Children) < 2 {
			return
		}
		id, _ := msg.Children[0].Value.(int64)
		op := msg.Children[1]
		switch {
		case op.ClassType != ber.ClassApplication:
			return
		case op.Tag == ldap.ApplicationCompareRequest:
			pc.s.wg.Add(1)
			go pc.compare(id, op)
		case op.Tag == ldap.ApplicationAbandonRequest:
			// Abandon has no response; gldap would send one. The operation
			// it names runs on: a server may finish what it abandons.
			pc.s.stats.abandons.Add(1)
		case op.Tag == ldap.ApplicationExtendedRequest && len(op.Children) > 0 &&
			op.Children[0].Data.String() == startTLSOID:
			if !pc.startTLS(id) {
				return
			}
			r = bufio.NewReader(pc.client)
		default:
			if _, err := backend.Write(frame); err != nil {
				return
			}
		}
	}
}

// down copies gldap's responses to the client until either side ends.
func (pc *proxyConn) down(backend net.Conn) {
	defer pc.s.wg.Done()
	defer pc.close()
	r := bufio.NewReader(backend)
	for {
		frame, err := readMessage(r)
		if err != nil {
			return
		}
		// Flush only when gldap has nothing more buffered: a search's
		// entries go out in few writes.
		if pc.write(frame, r.Buffered() == 0) != nil {
			return
		}
	}
}

func (pc *proxyConn) write(frame []byte, flush bool) error {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	return pc.writeLocked(frame, flush)
}

func (pc *proxyConn) writeLocked(frame []byte, flush bool) error {
	if _, err := pc.w.Write(frame); err != nil || !flush {
		return err
	}
	return pc.w.Flush()
}

func (pc *proxyConn) compare(id int64, op *ber.Packet) {
	defer pc.s.wg.Done()
	pc.s.stats.compares.Add(1)
	if !pc.s.delay() {
		return
	}
	code := uint16(ldap.LDAPResultProtocolError)
	if len(op.Children) == 2 && len(op.Children[1].Children) == 2 {
		ava := op.Children[1].Children
		code = pc.s.dir.compare(op.Children[0].Data.String(), ava[0].Data.String(), ava[1].Data.String())
	}
	_ = pc.write(ldapResult(id, ldap.ApplicationCompareResponse, code, "").Bytes(), true)
}

// startTLS answers a StartTLS request and, if it succeeded, makes the
// connection TLS. It returns false if the connection is unusable.
func (pc *proxyConn) startTLS(id int64) bool {
	code, diag := uint16(ldap.LDAPResultSuccess), ""
	switch {
	case pc.s.cfg.startTLS == nil:
		code, diag = ldap.LDAPResultProtocolError, "ldaptest: StartTLS is not enabled"
	case pc.client != pc.raw:
		code, diag = ldap.LDAPResultOperationsError, "ldaptest: TLS is already established"
	}
	resp := ldapResult(id, ldap.ApplicationExtendedResponse, code, diag)
	resp.Children[1].AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, startTLSOID, "responseName"))
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	if pc.writeLocked(resp.Bytes(), true) != nil {
		return false
	}
	if code != ldap.LDAPResultSuccess {
		return true
	}
	tc := tls.Server(pc.raw, pc.s.cfg.startTLS)
	if pc.handshake(tc) != nil {
		return false
	}
	pc.client, pc.w = tc, bufio.NewWriter(tc)
	return true
}

// handshake runs the server side of a TLS handshake, bounded in time; closing
// the connection also ends it.
func (pc *proxyConn) handshake(tc *tls.Conn) error {
	if err := pc.raw.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return err
	}
	if err := tc.Handshake(); err != nil {
		return err
	}
	return pc.raw.SetDeadline(time.Time{})
}

// ldapResult builds an LDAPMessage carrying an LDAPResult of the given
// response type.
func ldapResult(id int64, responseType ber.Tag, code uint16, diag string) *ber.Packet {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	res := ber.Encode(ber.ClassApplication, ber.TypeConstructed, responseType, nil, "Response")
	res.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	res.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	msg.AppendChild(res)
	return msg
}

// readMessage reads one BER-encoded LDAPMessage (a SEQUENCE of definite
// length) and returns its bytes.
func readMessage(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 0, 6)
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if tag != 0x30 {
		return nil, fmt.Errorf("ldaptest: not an LDAPMessage: tag %#x", tag)
	}
	b, err := r.ReadByte()
	if err != nil {
		return nil, noEOF(err)
	}
	head = append(head, tag, b)
	n := int(b)
	if b&0x80 != 0 {
		k := int(b & 0x7f)
		if k == 0 || k > 4 {
			return nil, errors.New("ldaptest: unsupported BER length")
		}
		n = 0
		for range k {
			if b, err = r.ReadByte(); err != nil {
				return nil, noEOF(err)
			}
			head = append(head, b)
			n = n<<8 | int(b)
		}
	}
	if n > maxMessageSize {
		return nil, fmt.Errorf("ldaptest: %d-byte message too large", n)
	}
	frame := make([]byte, len(head)+n)
	copy(frame, head)
	if _, err := io.ReadFull(r, frame[len(head):]); err != nil {
		return nil, noEOF(err)
	}
	return frame, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
