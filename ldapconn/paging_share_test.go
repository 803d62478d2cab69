package ldapconn_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// recProxy forwards LDAP between the pool and slapd and records every
// request the client writes (message ID -> bytes) and every Abandon's target.
type recProxy struct {
	ln       net.Listener
	backend  string
	mu       sync.Mutex
	reqs     map[int64][]byte
	abandons []int64
	onReq    func(frame []byte) // called before a request is forwarded
	wg       sync.WaitGroup
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	h := make([]byte, 2)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := int(h[1])
	if h[1]&0x80 != 0 {
		k := int(h[1] & 0x7f)
		lb := make([]byte, k)
		if _, err := io.ReadFull(r, lb); err != nil {
			return nil, err
		}
		h = append(h, lb...)
		n = 0
		for _, b := range lb {
			n = n<<8 | int(b)
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(h, body...), nil
}

func (p *recProxy) serve(c net.Conn) {
	defer p.wg.Done()
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		c.Close()
		return
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); io.Copy(c, b); c.Close() }()
	r := bufio.NewReader(c)
	for {
		f, err := readFrame(r)
		if err != nil {
			b.Close()
			return
		}
		pk, err := ber.DecodePacketErr(f)
		if err == nil && len(pk.Children) >= 2 {
			id, _ := pk.Children[0].Value.(int64)
			op := pk.Children[1]
			p.mu.Lock()
			if op.ClassType == ber.ClassApplication && op.Tag == ldap.ApplicationAbandonRequest {
				target, _ := ber.ParseInt64(op.Data.Bytes())
				p.abandons = append(p.abandons, target)
			} else {
				p.reqs[id] = f
			}
			p.mu.Unlock()
		}
		if p.onReq != nil {
			p.onReq(f)
		}
		if _, err := b.Write(f); err != nil {
			return
		}
	}
}

func startRecProxy(t *testing.T, backend string) *recProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recProxy{ln: ln, backend: backend, reqs: map[int64][]byte{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

var victimRe = regexp.MustCompile(`victim-(\d+)x`)

// A paged search on a shared connection writes one request per page, each
// claimed like any operation's (see wireConn): searches cancelled beside it
// on the same connection each abandon their own request, never a page.
// (Found by a review: the pages were written unclaimed and took the claims
// of other operations.)
func TestPagedSearchOnAShareLeavesOthersTheirMessageIDs(t *testing.T) { pagingRun(t, 1, 300) }

// Paged searches of several callers on one shared connection all succeed:
// OpenLDAP keeps one paged-results state per connection, so they take turns
// on it (each cookie was invalidated by the other before).
func TestConcurrentPagedSearchesOnOneShare(t *testing.T) { pagingRun(t, 3, 0) }

// pagingRun runs pagers callers of 6 paged searches each through Do on a
// one-connection pool over slapd, behind a proxy that records every
// request, beside victims searches cancelled as soon as their request is
// on the wire.
func pagingRun(t *testing.T, pagers, victims int) {
	s := slapd.Start(t)
	u := s.URL()
	host := u[len("ldap://"):]
	px := startRecProxy(t, host)
	var cancels sync.Map // victim n -> cancel
	px.onReq = func(f []byte) {
		if m := victimRe.FindSubmatch(f); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			if c, ok := cancels.Load(n); ok {
				c.(context.CancelFunc)() // the victim gives up once its request is on the wire
			}
		}
	}
	p := newPool(t, "ldap://"+px.ln.Addr().String(), admin, ldapconn.WithMaxSize(1),
		ldapconn.WithOperationTimeout(2*time.Second))
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	var pagerErrs, pages atomic.Int64
	var wg sync.WaitGroup
	for range pagers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 6 {
				err := p.Do(context.Background(), func(c ldap.Client) error {
					req := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
						0, 0, false, "(uid=*)", []string{"cn"}, nil)
					_, err := c.SearchWithPaging(req, 25)
					return err
				})
				pages.Add(1)
				if err != nil {
					pagerErrs.Add(1)
					if pagerErrs.Load() <= 3 {
						t.Logf("paged search failed: %v", err)
					}
				}
			}
		}()
	}
	for n := range victims {
		ctx, cancel := context.WithCancel(context.Background())
		cancels.Store(n, cancel)
		_, err := p.Search(ctx, searchUID(fmt.Sprintf("victim-%dx", n)))
		cancel()
		if !errors.Is(err, context.Canceled) && n < 3 {
			t.Logf("victim %d: %v", n, err)
		}
	}
	wg.Wait()
	px.mu.Lock()
	wrong, right := 0, 0
	for _, target := range px.abandons {
		if bytes.Contains(px.reqs[target], []byte("victim-")) {
			right++
		} else {
			wrong++
		}
	}
	px.mu.Unlock()
	t.Logf("%d victims, %d paged searches (%d failed); abandons: %d on the victim's own request, %d on another operation's",
		victims, pages.Load(), pagerErrs.Load(), right, wrong)
	if pagerErrs.Load() > 0 {
		t.Errorf("%d of %d paged searches failed", pagerErrs.Load(), pages.Load())
	}
	if wrong > 0 {
		t.Errorf("%d Abandons went to another operation's message ID", wrong)
	}
	if pages.Load() != int64(6*pagers) || right > victims {
		t.Errorf("%d paged searches of %d; %d abandons for %d victims", pages.Load(), 6*pagers, right, victims)
	}
}
