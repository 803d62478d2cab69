package ldapconn

import (
	"context"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// wireConn is the socket under a go-ldap connection. It remembers the
// message ID of the last request go-ldap wrote, which go-ldap does not
// expose, so that an operation its caller gave up on can be abandoned
// (RFC 4511 4.11) while the connection stays in the pool.
//
// go-ldap writes each request with one Write, from one goroutine; a Write of
// this package's (an Abandon) is one Write too, and net.Conn and tls.Conn
// keep concurrent Writes whole.
//
// Operations running at once on one connection (shares) learn each its own
// message ID by a claim: an operation claims the next request written
// before it calls go-ldap, and holds the claim until go-ldap writes that
// request (or the operation ends without writing it). Every operation of
// this package's client claims, so no other request is written between a
// claim and the request it is for. Claims order only the start of each
// request: the next can claim as soon as the last is written.
//
// A claim waits for the one before it to be written; the wait ends with
// the caller's context or the connection, and then nothing is sent.
type wireConn struct {
	net.Conn
	lastID  atomic.Int64  // -1: the stream is not plain LDAP messages (StartTLS wrapped it)
	claims  chan struct{} // capacity 1: full from a claim until its request is written or it is settled
	claimed atomic.Pointer[claim]
	gone    chan struct{} // closed when a read fails: the connection is dead, and no claim waits on it
	goneMu  sync.Once
}

func newWireConn(nc net.Conn) *wireConn {
	return &wireConn{Conn: nc, claims: make(chan struct{}, 1), gone: make(chan struct{})}
}

// Read is go-ldap's reader's: when it fails, the connection is dead, and
// an operation waiting to claim the next request (behind a request that
// will never be written) gives up at once.
func (w *wireConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if err != nil {
		w.goneMu.Do(func() { close(w.gone) })
	}
	return n, err
}

// claim is one operation's wait for the message ID of its request.
type claim struct{ id atomic.Int64 }

func (w *wireConn) Write(b []byte) (int, error) {
	if w.lastID.Load() >= 0 {
		if id, ok := messageID(b); ok {
			w.lastID.Store(id)
			if c := w.claimed.Swap(nil); c != nil {
				c.id.Store(id)
				<-w.claims
			}
		} else {
			// After StartTLS go-ldap writes TLS records here: an Abandon
			// written under them would break the stream.
			w.lastID.Store(-1)
		}
	}
	return w.Conn.Write(b)
}

// claimNext claims the next request written, waiting while another claim
// is unwritten, and returns the claim for settle. It returns nil on a
// connection whose messages it cannot read (StartTLS). When ctx ends or the
// connection closes (closed, or a failed read) first, it returns the error
// that says so, and the caller must not send its request.
func (w *wireConn) claimNext(ctx context.Context, closed <-chan struct{}) (*claim, error) {
	if w.lastID.Load() < 0 {
		return nil, nil
	}
	select {
	case w.claims <- struct{}{}:
	default:
		select {
		case w.claims <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-closed:
			return nil, errConnClosed
		case <-w.gone:
			return nil, errConnClosed
		}
	}
	c := new(claim)
	w.claimed.Store(c)
	return c, nil
}

// settleSent is settle for a call whose context ended as it started (a
// SearchAsync): go-ldap's call may have returned with its request handed
// to the connection's writer but not yet written. It waits for that write,
// for up to a second or until the connection closes, so that the claim is
// not left for the next operation's request to take.
func (w *wireConn) settleSent(c *claim, closing func() bool) int64 {
	for start, spins := time.Now(), 0; c != nil && w.claimed.Load() == c && !closing() && time.Since(start) < time.Second; spins++ {
		if spins < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Millisecond) // the writer is not keeping up: a rare path
		}
	}
	return w.settle(c)
}

// settle ends c, once its operation is done with go-ldap, and returns the
// message ID of its request, or 0 if it was never written.
func (w *wireConn) settle(c *claim) int64 {
	if c == nil {
		return 0
	}
	if w.claimed.CompareAndSwap(c, nil) {
		<-w.claims
	}
	return c.id.Load()
}

// abandonID is the message ID of every Abandon request: the top of the
// range (RFC 4511: 0 to 2^31-1), which go-ldap's counter, starting at 1,
// does not reach in practice. An Abandon gets no response, so the ID is
// never matched to one.
const abandonID = math.MaxInt32

// abandon asks the server to stop the operation whose message ID is id, and
// reports whether the request was written. It gives up on a connection that
// does not take the write within a second: the abandon is a courtesy, the
// caller has already moved on.
func (w *wireConn) abandon(id int64) bool {
	if id <= 0 || w.lastID.Load() < 0 {
		return false
	}
	msg := encodeAbandon(abandonID, id)
	_ = w.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := w.Conn.Write(msg)
	_ = w.Conn.SetWriteDeadline(time.Time{})
	return err == nil
}

// encodeAbandon returns the BER encoding of an AbandonRequest with message
// ID id for the operation target: LDAPMessage ::= SEQUENCE { messageID
// INTEGER, [APPLICATION 16] MessageID }.
func encodeAbandon(id, target int64) []byte {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	p.AppendChild(ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationAbandonRequest, target, "Abandon Request"))
	return p.Bytes()
}

// messageID reads the message ID at the head of an LDAPMessage's encoding:
// a SEQUENCE (0x30) with a definite length, whose first element is an
// INTEGER of 1 to 4 bytes. It reports false for anything else.
func messageID(b []byte) (int64, bool) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, false
	}
	i := 2
	if l := b[1]; l&0x80 != 0 {
		n := int(l & 0x7f)
		if n == 0 || n > 4 {
			return 0, false
		}
		i += n
	}
	if len(b) < i+2 || b[i] != 0x02 {
		return 0, false
	}
	n := int(b[i+1])
	i += 2
	if n < 1 || n > 4 || len(b) < i+n || b[i]&0x80 != 0 {
		return 0, false
	}
	var id int64
	for _, c := range b[i : i+n] {
		id = id<<8 | int64(c)
	}
	return id, true
}
