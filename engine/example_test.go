package engine_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// memConn and memConnector are the smallest Connector: connections in
// memory, numbered as they are made.
type memConn struct{ id int64 }

type memConnector struct{ made atomic.Int64 }

func (m *memConnector) Connect(ctx context.Context, key engine.Key) (*memConn, error) {
	return &memConn{id: m.made.Add(1)}, nil
}
func (m *memConnector) Validate(ctx context.Context, c *memConn) error { return nil }
func (m *memConnector) Close(c *memConn) error                         { return nil }

// The engine pools any connection type; package ldapconn builds the LDAP pool
// on it. Lease, use, Release: the second lease reuses the first connection.
func Example() {
	pool, err := engine.New(&memConnector{}, engine.WithMaxSize(4))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	key := engine.Key{Name: "service", Credentials: "never printed"}
	for range 2 {
		l, err := pool.Lease(context.Background(), key)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("connection %d for %s, reused: %v\n", l.Conn().id, l.Key(), l.Reused())
		l.Release()
	}
	// Output:
	// connection 1 for service, reused: false
	// connection 1 for service, reused: true
}

// Do releases the connection when the function returns, and discards it when
// the function says it is broken.
func ExamplePool_Do() {
	pool, _ := engine.New(&memConnector{})
	defer pool.Close(context.Background())

	err := pool.Do(context.Background(), engine.Key{Name: "service"}, func(l *lease.Lease[*memConn]) error {
		fmt.Println("working on connection", l.Conn().id)
		return nil
	})
	fmt.Println("err:", err, "idle:", pool.Stats().Idle)
	// Output:
	// working on connection 1
	// err: <nil> idle: 1
}

// New names the option and the value that are wrong.
func ExampleNew_invalidOption() {
	_, err := engine.New(&memConnector{}, engine.WithMaxSize(0))
	fmt.Println(err)
	// Output: engine: WithMaxSize(0): size must be at least 1
}

// Share lends one operation's place on a connection that carries up to
// WithOpsPerConn of them: three shares at depth 2 take two connections, the
// second dialed only when the first carries two.
func ExamplePool_Share() {
	pool, _ := engine.New(&memConnector{}, engine.WithMaxSize(4), engine.WithOpsPerConn(2))
	defer pool.Close(context.Background())

	key := engine.Key{Name: "service"}
	var held []*lease.Lease[*memConn]
	for range 3 {
		l, err := pool.Share(context.Background(), key)
		if err != nil {
			log.Fatal(err)
		}
		held = append(held, l)
	}
	st := pool.Stats()
	fmt.Printf("%d connections carrying %d shares\n", st.Shared, st.InFlight)
	for _, l := range held {
		l.Release()
	}
	// Output: 2 connections carrying 3 shares
}
