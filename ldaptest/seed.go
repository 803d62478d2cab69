package ldaptest

import "fmt"

// The seeded directory both test servers serve: the embedded server of this
// package and the slapd one of package slapd. Keep the two in step: the
// integration tests run the same assertions against both.
const (
	// BaseDN is the suffix of the seeded directory.
	BaseDN = "dc=example,dc=org"
	// PeopleDN holds the seeded users, uid=user0 to uid=user{Users-1}.
	PeopleDN = "ou=people," + BaseDN
	// AdminDN is the service identity a pool binds as in the examples.
	AdminDN = "cn=admin," + BaseDN
	// AdminPassword is AdminDN's password.
	AdminPassword = "admin-secret"
	// Users is how many users the seed holds.
	Users = 1000
)

// UserDN returns the DN of seeded user i (0 <= i < Users).
func UserDN(i int) string { return fmt.Sprintf("uid=user%d,%s", i, PeopleDN) }

// UserPassword returns the password of seeded user i.
func UserPassword(i int) string { return fmt.Sprintf("password%d", i) }

// User describes one seeded user entry, as both servers store it.
type User struct {
	DN, UID, CN, SN, Mail, Password string
}

// SeedUser returns seeded user i with all its attributes.
func SeedUser(i int) User {
	return User{
		DN:       UserDN(i),
		UID:      fmt.Sprintf("user%d", i),
		CN:       fmt.Sprintf("User %d", i),
		SN:       fmt.Sprintf("User%d", i),
		Mail:     fmt.Sprintf("user%d@example.org", i),
		Password: UserPassword(i),
	}
}
