package ldapconn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// Compare asks the directory whether an entry's attribute has a value, as
// the service identity, on a share of a pooled connection.
func ExamplePool_Compare() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	matched, err := pool.Compare(ctx, ldaptest.UserDN(3), "uid", "user3")
	fmt.Println(matched, err)
	// Output: true <nil>
}

// WithOpsPerConn lets one connection carry several operations at once: here
// eight callers search at the same time through a pool of one connection.
// Inside Do, a call that would change the connection for the others (a
// Bind) is refused; Authenticate checks a password, and DoAs lends a
// connection of the caller's own.
func ExampleWithOpsPerConn() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithMaxSize(1), ldapconn.WithOpsPerConn(8))
	defer pool.Close(ctx)

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, fmt.Sprintf("(uid=user%d)", i), "cn")); err != nil {
				fmt.Println(err)
			}
		})
	}
	wg.Wait()
	fmt.Println("connections dialed:", pool.Stats().Dials)

	err := pool.Do(ctx, func(c ldap.Client) error {
		return c.Bind(ldaptest.UserDN(1), ldaptest.UserPassword(1))
	})
	fmt.Println(errors.Is(err, ldapconn.ErrSharedConnection))
	fmt.Println(pool.Authenticate(ctx, ldaptest.UserDN(1), ldaptest.UserPassword(1)))
	// Output:
	// connections dialed: 1
	// true
	// <nil>
}
