// Package ldaptest runs an embedded LDAP server, in process, for tests,
// examples and the load simulator. It serves the directory described in
// seed.go (BaseDN, PeopleDN, AdminDN and Users users) on 127.0.0.1, answers
// bind, search, compare and StartTLS, and has hooks to inject faults:
// latency, dropped connections and a connection limit.
//
// The shortest use:
//
//	srv, err := ldaptest.NewServer()
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(func() { srv.Close() })
//	conn, err := ldap.DialURL(srv.URL())
//
// The server is built on github.com/jimlambrt/gldap.
package ldaptest
