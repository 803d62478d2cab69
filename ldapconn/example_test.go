package ldapconn_test

import (
	"context"
	"fmt"
	"log"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// Search a directory through the pool and check a user's password. The
// embedded server stands in for a directory; give NewPool your servers' URIs
// ("ldaps://ldap1.example.org, ldaps://ldap2.example.org").
func Example() {
	srv, err := ldaptest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	pool, err := ldapconn.NewPool(srv.URL(),
		ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithMaxSize(4))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(ctx)

	res, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user42)", "cn", "mail"))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range res.Entries {
		fmt.Println(e.DN, e.GetAttributeValue("cn"), e.GetAttributeValue("mail"))
	}
	fmt.Println(pool.Authenticate(ctx, res.Entries[0].DN, ldaptest.UserPassword(42)))
	// Output:
	// uid=user42,ou=people,dc=example,dc=org User 42 user42@example.org
	// <nil>
}

// Lease a connection bound as the service identity and use it as go-ldap's
// ldap.Client for several operations; release it when done.
func ExamplePool_Lease() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(ctx)

	lease, err := pool.Lease(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release()
	c := lease.Client()
	user, err := c.Search(ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user3)", "cn"))
	if err != nil {
		log.Fatal(err)
	}
	ok, err := c.Compare(user.Entries[0].DN, "cn", "User 3")
	fmt.Println(ok, err)
	// Output: true <nil>
}

// Authenticate checks an end user's password with one bind, and tells a
// wrong password apart from every other failure.
func ExamplePool_Authenticate() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithAuthPool(2))
	defer pool.Close(context.Background())

	fmt.Println(pool.Authenticate(context.Background(), ldaptest.UserDN(7), ldaptest.UserPassword(7)))
	err := pool.Authenticate(context.Background(), ldaptest.UserDN(7), "guess")
	fmt.Println(ldapconn.IsInvalidCredentials(err))
	// Output:
	// <nil>
	// true
}

// Do retries an operation once on a fresh connection when the reused one
// turned out dead, as after a server restart.
func ExamplePool_Do() {
	srv, _ := ldaptest.NewServer()
	defer srv.Close()
	pool, _ := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword))
	defer pool.Close(context.Background())

	search := func(c ldap.Client) error {
		_, err := c.Search(ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree,
			ldap.NeverDerefAliases, 0, 0, false, "(uid=user1)", nil, nil))
		return err
	}
	fmt.Println(pool.Do(context.Background(), search))
	srv.DropConnections() // the pooled connection dies
	fmt.Println(pool.Do(context.Background(), search))
	// Output:
	// <nil>
	// <nil>
}
