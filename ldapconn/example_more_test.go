package ldapconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// Search leases a service connection, searches and releases it; a search
// that met a connection the server had closed is run once more on a fresh
// one.
func ExamplePool_Search() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	res, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user5)", "mail"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Entries[0].GetAttributeValue("mail"))
	// Output: user5@example.org
}

// LeaseAs lends a connection bound as another identity: connections are
// pooled per identity, and a wrong password is sent once and never retried.
func ExamplePool_LeaseAs() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	user := ldapconn.Credentials{DN: ldaptest.UserDN(9), Password: ldaptest.UserPassword(9)}
	lease, err := pool.LeaseAs(ctx, user)
	if err != nil {
		log.Fatal(err)
	}
	res, err := lease.Client().Search(ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user9)", "cn"))
	lease.Release()
	fmt.Println(res.Entries[0].GetAttributeValue("cn"), err)

	_, err = pool.LeaseAs(ctx, ldapconn.Credentials{DN: ldaptest.UserDN(9), Password: "guess"})
	fmt.Println(errors.Is(err, ldapconn.ErrInvalidCredentials))
	// Output:
	// User 9 <nil>
	// true
}

// DoAs is Do for another identity: the function gets a go-ldap ldap.Client
// and the connection goes back when it returns.
func ExamplePool_DoAs() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	user := ldapconn.Credentials{DN: ldaptest.UserDN(2), Password: ldaptest.UserPassword(2)}
	err := pool.DoAs(ctx, user, func(c ldap.Client) error {
		ok, err := c.Compare(ldaptest.UserDN(2), "cn", "User 2")
		fmt.Println(ok)
		return err
	})
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

// Ping is a readiness check: nil when the directory answers.
func ExamplePool_Ping() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(context.Background())

	fmt.Println(pool.Ping(context.Background()))
	// Output: <nil>
}

// Every error is classified with errors.Is or errors.As (docs/errors.md has
// the whole table): here a wrong password, a directory that is down, and a
// closed pool.
func Example_errors() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))

	err := pool.Authenticate(ctx, ldaptest.UserDN(1), "wrong")
	fmt.Println("wrong password:", errors.Is(err, ldapconn.ErrInvalidCredentials), ldapconn.IsRetryable(err))

	down, _ := ldapconn.NewPool(closedAddress())
	_, err = down.Search(ctx, ldapconn.NewSearch("", "(objectClass=*)"))
	var all *ldapconn.AllServersDownError
	fmt.Println("directory down:", errors.Is(err, ldapconn.ErrServerDown), errors.As(err, &all), ldapconn.IsRetryable(err))
	down.Close(ctx)

	pool.Close(ctx)
	_, err = pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user1)"))
	fmt.Println("closed:", errors.Is(err, ldapconn.ErrClosed))
	// Output:
	// wrong password: true false
	// directory down: true true true
	// closed: true
}

// closedAddress returns an ldap:// URI where nothing listens.
func closedAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return "ldap://" + l.Addr().String()
}

// TLS: ldaps:// servers are dialed over TLS; WithTLSConfig gives the roots
// to trust (the system's by default). The embedded server here uses a
// self-signed certificate made on the spot.
func ExampleWithTLSConfig() {
	certPEM, keyPEM, roots, err := slapd.SelfSigned("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	srv, err := ldaptest.NewServer(ldaptest.WithLDAPS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	pool, err := ldapconn.NewPool(srv.URL(),
		ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithTLSConfig(&tls.Config{RootCAs: roots}))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(ctx)

	lease, err := pool.Lease(ctx)
	if err != nil {
		log.Fatal(err)
	}
	state, ok := lease.Client().TLSConnectionState()
	lease.Release()
	fmt.Println(ok, state.HandshakeComplete)
	// Output: true true
}

// Stats is the pool's state at a glance, for a health endpoint or a metrics
// exporter: the connections open, idle and in use, the callers waiting, and
// counters since the pool was made.
func ExamplePool_Stats() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithMaxSize(4))
	defer pool.Close(ctx)

	for uid := range 3 {
		if _, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, fmt.Sprintf("(uid=user%d)", uid))); err != nil {
			log.Fatal(err)
		}
	}
	st := pool.Stats()
	fmt.Printf("open %d of %d, idle %d, in use %d, waiting %d\n", st.Open, st.MaxSize, st.Idle, st.InUse, st.Waiters)
	fmt.Printf("dialed %d, shares handed out %d\n", st.Dials, st.Shares)
	// Output:
	// open 1 of 4, idle 1, in use 0, waiting 0
	// dialed 1, shares handed out 3
}

// Servers tells each server's state: up or down (and why), connections
// open, operations run, and whether reads were moved off it as slow.
func ExamplePool_Servers() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	if _, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user1)")); err != nil {
		log.Fatal(err)
	}
	for _, s := range pool.Servers() {
		fmt.Printf("up %v, %d open, failures %d, slow %v, last error %q\n", s.Up, s.Open, s.Failures, s.Slow, s.LastError)
	}
	// Output:
	// up true, 1 open, failures 0, slow false, last error ""
}
