package ldapconn_test

// Fault helpers for faults_test.go: toxiproxy run in-process in front of a
// server for the faults a network makes (latency, blackhole, reset, slow
// close, a response cut midway, low bandwidth), and a small proxy of our own
// for the one toxiproxy cannot make, a half-open connection.

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fairpool/ldappool/ldapconn"
)

// faultProxy is one toxiproxy proxy, started in-process on a loopback port
// in front of target, without toxiproxy's HTTP API. Toxics apply to every
// connection through it, those open when a toxic is added and those made
// after, until the toxic is removed.
type faultProxy struct {
	px *toxiproxy.Proxy
}

func newFaultProxy(t *testing.T, targetURL string) *faultProxy {
	t.Helper()
	// Some toxics (bandwidth) log through zerolog's global logger, at trace
	// level, to standard output: silence it.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, t.Name(), "127.0.0.1:0", strings.TrimPrefix(targetURL, "ldap://"))
	if err := px.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(px.Stop)
	return &faultProxy{px: px}
}

func (f *faultProxy) URL() string { return "ldap://" + f.px.Listen }

// add adds a toxic of type typ under name to the server's answers
// (toxiproxy's downstream), applied to each connection with probability
// toxicity.
func (f *faultProxy) add(t *testing.T, name, typ string, toxicity float32, attrs map[string]int64) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": "downstream",
		"toxicity": toxicity, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.px.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		t.Fatalf("toxic %s: %v", name, err)
	}
}

// setToxicity changes the toxicity of the toxic name.
func (f *faultProxy) setToxicity(t *testing.T, name string, toxicity float32) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"toxicity": toxicity})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.px.Toxics.UpdateToxicJson(name, strings.NewReader(string(b))); err != nil {
		t.Fatalf("toxic %s: %v", name, err)
	}
}

func (f *faultProxy) remove(t *testing.T, name string) {
	t.Helper()
	if err := f.px.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("removing toxic %s: %v", name, err)
	}
}

// vanishingProxy forwards connections to a server until vanish, which
// silences every connection open then in both directions without closing
// it, as a peer that vanished does (a host powered off, a NAT or firewall
// that forgot the connection): the client's writes succeed and nothing ever
// answers. Connections made after vanish are forwarded as usual.
//
// toxiproxy cannot make this: its toxics apply to every connection through
// a proxy, those made after the toxic too, so a blackhole there is a dead
// server, not one dead connection beside a healthy server.
type vanishingProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	closed   bool
	conns    map[*vanishingConn]struct{}
	vanished int
	wg       sync.WaitGroup
}

type vanishingConn struct {
	client, server net.Conn
	mu             sync.Mutex
	silent         bool
}

func newVanishingProxy(t *testing.T, targetURL string) *vanishingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vp := &vanishingProxy{ln: ln, target: strings.TrimPrefix(targetURL, "ldap://"),
		conns: map[*vanishingConn]struct{}{}}
	vp.wg.Add(1)
	go vp.accept()
	t.Cleanup(vp.stop)
	return vp
}

func (vp *vanishingProxy) URL() string { return "ldap://" + vp.ln.Addr().String() }

func (vp *vanishingProxy) accept() {
	defer vp.wg.Done()
	for {
		c, err := vp.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", vp.target)
		if err != nil {
			c.Close()
			continue
		}
		vc := &vanishingConn{client: c, server: s}
		vp.mu.Lock()
		if vp.closed {
			vp.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		vp.conns[vc] = struct{}{}
		vp.wg.Add(2)
		vp.mu.Unlock()
		go vp.pipe(vc, vc.server, vc.client)
		go vp.pipe(vc, vc.client, vc.server)
	}
}

// pipe copies from src to dst, dropping what it reads once vc is silent,
// and closes both connections when src ends.
func (vp *vanishingProxy) pipe(vc *vanishingConn, dst, src net.Conn) {
	defer vp.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		vc.mu.Lock()
		silent := vc.silent
		vc.mu.Unlock()
		if n > 0 && !silent {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	vc.client.Close()
	vc.server.Close()
	vp.mu.Lock()
	delete(vp.conns, vc)
	vp.mu.Unlock()
}

// vanish silences every connection open now, and returns how many.
func (vp *vanishingProxy) vanish() int {
	vp.mu.Lock()
	defer vp.mu.Unlock()
	n := 0
	for vc := range vp.conns {
		vc.mu.Lock()
		if !vc.silent {
			vc.silent = true
			n++
		}
		vc.mu.Unlock()
	}
	vp.vanished += n
	return n
}

// open counts the connections open through the proxy, silent ones included.
func (vp *vanishingProxy) open() int {
	vp.mu.Lock()
	defer vp.mu.Unlock()
	return len(vp.conns)
}

func (vp *vanishingProxy) stop() {
	vp.ln.Close()
	vp.mu.Lock()
	vp.closed = true
	for vc := range vp.conns {
		vc.client.Close()
		vc.server.Close()
	}
	vp.mu.Unlock()
	vp.wg.Wait()
}

// open counts the connections established at the proxies now: the
// server's side of the pool's connections.
func (c *connCount) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for conn := range c.conns {
		if tcpEstablished(conn) {
			n++
		}
	}
	return n
}

// faultPool makes a pool for a fault test. Closing it is part of each test
// (closeAndCheck); the cleanup only catches a test that failed first.
func faultPool(t *testing.T, servers string, opts ...ldapconn.Option) *ldapconn.Pool {
	t.Helper()
	p, err := ldapconn.NewPool(servers, append([]ldapconn.Option{admin, quiet}, opts...)...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// closeAndCheck closes p within 5s and checks that it leaked nothing: no
// connection open in either of its pools, and none left at the server as
// serverOpen counts them.
func closeAndCheck(t *testing.T, p *ldapconn.Pool, serverOpen func() int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if s, a := p.Stats(), p.AuthStats(); s.Open != 0 || a.Open != 0 {
		t.Errorf("after Close: %d service and %d bind-lane connections open; want 0", s.Open, a.Open)
	}
	waitFor(t, "the server's side of every connection to close", func() bool { return serverOpen() == 0 })
}
