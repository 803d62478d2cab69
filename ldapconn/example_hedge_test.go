package ldapconn_test

import (
	"context"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// With two replicas, a search stuck on a slow one is hedged: sent to the
// other one too, and the first answer wins. Here the primary takes two
// seconds over every search once the pool has learned that it usually
// answers at once; the search returns the secondary's answer in a few
// milliseconds, and the primary is told to abandon its copy.
func ExampleWithHedging() {
	primary, _ := ldaptest.NewServer()
	defer primary.Close()
	secondary, _ := ldaptest.NewServer()
	defer secondary.Close()
	ctx := context.Background()
	pool, _ := ldapconn.NewPool(primary.URL()+","+secondary.URL(),
		ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword)) // WithHedging(true) is the default
	defer pool.Close(ctx)

	byUID := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(uid=user7)", []string{"cn"}, nil)
	for range 20 { // what the primary usually takes
		if _, err := pool.Search(ctx, byUID); err != nil {
			fmt.Println(err)
			return
		}
	}
	primary.SetLatency(2 * time.Second)
	start := time.Now()
	res, err := pool.Search(ctx, byUID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Entries[0].GetAttributeValue("cn"), "answered in under a second:", time.Since(start) < time.Second)
	// Output: User 7 answered in under a second: true
}
