package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// fakeConn is an in-memory connection.
type fakeConn struct {
	id     int
	mu     sync.Mutex
	key    string
	closed bool
	bad    bool // fails validation
}

func (c *fakeConn) Key() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.key
}

func (c *fakeConn) setBad() {
	c.mu.Lock()
	c.bad = true
	c.mu.Unlock()
}

// fakeConnector counts what it opens and closes. Its delays use time.Sleep,
// which inside a synctest bubble is virtual time.
type fakeConnector struct {
	mu          sync.Mutex
	next        int
	opened      int
	closed      int
	conns       []*fakeConn
	dialDelay   time.Duration
	dialErr     func(key engine.Key) error // nil: dials succeed
	validateErr error                      // returned for conns marked bad
	dialsByKey  map[string]int
}

func (f *fakeConnector) Connect(ctx context.Context, key engine.Key) (*fakeConn, error) {
	if f.dialDelay > 0 {
		select {
		case <-time.After(f.dialDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dialsByKey == nil {
		f.dialsByKey = map[string]int{}
	}
	f.dialsByKey[key.Name]++
	if f.dialErr != nil {
		if err := f.dialErr(key); err != nil {
			return nil, err
		}
	}
	f.next++
	f.opened++
	c := &fakeConn{id: f.next, key: key.Name}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *fakeConnector) Validate(ctx context.Context, c *fakeConn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("fake: validate on a closed connection")
	}
	if c.bad {
		if f.validateErr != nil {
			return f.validateErr
		}
		return errors.New("fake: bad connection")
	}
	return nil
}

func (f *fakeConnector) Close(c *fakeConn) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		panic(fmt.Sprintf("fake: connection %d closed twice", c.id))
	}
	c.closed = true
	c.mu.Unlock()
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
	return nil
}

func (f *fakeConnector) counts() (opened, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened, f.closed
}

func (f *fakeConnector) dials(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dialsByKey[key]
}

// rebindingConnector can also rebind a connection to another key.
type rebindingConnector struct {
	fakeConnector
	rebindErr error
}

func (r *rebindingConnector) Rebind(ctx context.Context, c *fakeConn, key engine.Key) error {
	if r.rebindErr != nil {
		return r.rebindErr
	}
	c.mu.Lock()
	c.key = key.Name
	c.mu.Unlock()
	return nil
}

var (
	keyA = engine.Key{Name: "A", Credentials: "secret-a"}
	keyB = engine.Key{Name: "B", Credentials: "secret-b"}
)

// Validate reports the connection's health as the fake connector would.
func (c *fakeConn) Validate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad || c.closed {
		return errors.New("fake: broken")
	}
	return nil
}
