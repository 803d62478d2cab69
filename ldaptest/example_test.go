package ldaptest_test

import (
	"fmt"
	"log"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldaptest"
)

func Example() {
	srv, err := ldaptest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	conn, err := ldap.DialURL(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if err := conn.Bind(ldaptest.UserDN(7), ldaptest.UserPassword(7)); err != nil {
		log.Fatal(err)
	}
	res, err := conn.Search(ldap.NewSearchRequest(ldaptest.BaseDN,
		ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=user7)", []string{"cn"}, nil))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Entries[0].GetAttributeValue("cn"))
	// Output: User 7
}
