package ldapconn_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
)

// holeProxy forwards TCP to a backend; any one of its connections can be
// turned into a black hole (what a firewall that silently dropped the flow's
// state does): bytes both ways are swallowed, the sockets stay open.
type holeProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*holeConn
	wg    sync.WaitGroup
}

type holeConn struct {
	client, backend net.Conn
	hole            atomic.Bool
}

func newHoleProxy(t *testing.T, backend string) *holeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hp := &holeProxy{ln: ln}
	hp.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			hc := &holeConn{client: c, backend: b}
			hp.mu.Lock()
			hp.conns = append(hp.conns, hc)
			hp.mu.Unlock()
			hp.wg.Go(func() { hc.pipe(b, c) })
			hp.wg.Go(func() { hc.pipe(c, b) })
		}
	})
	t.Cleanup(hp.close)
	return hp
}

func (hc *holeConn) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !hc.hole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (hp *holeProxy) close() {
	hp.ln.Close()
	hp.mu.Lock()
	for _, hc := range hp.conns {
		hc.client.Close()
		hc.backend.Close()
	}
	hp.mu.Unlock()
	hp.wg.Wait()
}

func (hp *holeProxy) holeFirst() int {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.conns[0].hole.Store(true)
	return len(hp.conns)
}

// The service pool's connection to a healthy primary goes silent (a black
// hole, as a firewall that dropped the flow's state makes), while new
// connections to the primary work, so a stall probe answers and the server
// is not marked down. No caller may wait out the operation timeout: the
// reads stuck there are hedged to the secondary, on the hedge lane or,
// once the lane has moved to the primary (the pool moved off it), on the
// service pool's connections to the secondary. (Found by a review: 16
// searches failed with the operation timeout in 4 runs of 6.)
func TestABlackHoledConnectionCostsNoCaller(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	hp := newHoleProxy(t, strings.TrimPrefix(primary.URL(), "ldap://"))
	p, err := ldapconn.NewPool("ldap://"+hp.ln.Addr().String()+","+secondary.URL(), admin,
		ldapconn.WithMaxSize(4), ldapconn.WithOperationTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	load := func(rounds int) (stuck int64) {
		var wg sync.WaitGroup
		for c := range 16 {
			wg.Go(func() {
				for i := range rounds {
					start := time.Now()
					if _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", (c*rounds+i)%300))); err != nil {
						t.Logf("search: %v", err)
					}
					if time.Since(start) >= time.Second {
						atomic.AddInt64(&stuck, 1)
					}
				}
			})
		}
		wg.Wait()
		return stuck
	}
	load(20)
	n := hp.holeFirst()
	start := time.Now()
	stuck := load(40)
	t.Logf("proxy connections %d; %d searches of 640 took 1 s or more (in %v); servers %+v", n, stuck, time.Since(start), p.Servers())
	if stuck > 0 {
		t.Fatalf("%d searches waited out the black-holed connection (operation timeout 2 s)", stuck)
	}
}
