package ldapconn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// Read a pool's configuration from one URL, as a command-line flag or an
// environment variable would hold it. The password comes from a file, read
// at each dial; printing the Config never shows a password.
func ExampleParseConfig() {
	c, err := ldapconn.ParseConfig("ldaps://ldap1.example.org,ldap2.example.org:636/" +
		"?bind_dn=cn%3Dsvc,dc%3Dexample,dc%3Dorg&bind_password_file=/run/secrets/ldap" +
		"&max_size=8&operation_timeout=3s&tls_ca_file=/etc/ssl/ldap-ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Servers)
	fmt.Println(c.BindDN, c.MaxSize, c.OperationTimeout)

	_, err = ldapconn.ParseConfig("ldap://ldap.example.org/?max_size=8&colour=blue")
	fmt.Println(err)
	// Output:
	// ldaps://ldap1.example.org,ldaps://ldap2.example.org:636
	// cn=svc,dc=example,dc=org 8 3s
	// ldapconn: URL parameter "colour": unknown (docs/configuration.md lists the parameters)
}

// Build a pool from a configuration file's JSON. Options given after the
// Config (a logger, a validator) add what data cannot say.
func ExampleNewPoolFromConfig() {
	srv, err := ldaptest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	file := `{
		"servers": "` + srv.URL() + `",
		"bind_dn": "` + ldaptest.AdminDN + `",
		"bind_password": "` + ldaptest.AdminPassword + `",
		"max_size": 4,
		"operation_timeout": "5s",
		"wait_timeout": "2s"
	}`
	var c ldapconn.Config
	dec := json.NewDecoder(strings.NewReader(file))
	dec.DisallowUnknownFields() // a misspelt setting is an error, not a default
	if err := dec.Decode(&c); err != nil {
		log.Fatal(err)
	}
	pool, err := ldapconn.NewPoolFromConfig(c, ldapconn.WithValidator(ldapconn.RootDSE()))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	res, err := pool.Search(context.Background(), ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user42)", "cn"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Entries[0].GetAttributeValue("cn"), pool.Stats().MaxSize)
	// Output: User 42 4
}

// Fetch the service identity's password from a secret store at each dial,
// so that a rotated password is used without restarting the program.
func ExampleWithBindPasswordFunc() {
	srv, err := ldaptest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// secrets stands for a secret manager's client; it must be safe for
	// concurrent use, as the pool dials from several goroutines.
	secrets := func(ctx context.Context) (string, error) { return ldaptest.AdminPassword, nil }
	pool, err := ldapconn.NewPool(srv.URL(), ldapconn.WithBindPasswordFunc(ldaptest.AdminDN, secrets))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	res, err := pool.Search(context.Background(), ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user7)", "mail"))
	fmt.Println(res.Entries[0].GetAttributeValue("mail"), err)
	// Output: user7@example.org <nil>
}
