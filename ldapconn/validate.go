package ldapconn

import (
	"context"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// Validator checks that a connection still works. It runs on a pool worker
// with the validate timeout in ctx; the pool abandons it when ctx ends.
type Validator func(ctx context.Context, c ldap.Client) error

// RootDSE returns the default validator: a base-scope search of the root DSE
// for (objectClass=*) asking for no attributes, which every server answers
// cheaply and to anyone.
func RootDSE() Validator {
	return func(ctx context.Context, c ldap.Client) error {
		_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
		return err
	}
}

// Compare returns a validator that compares attribute of dn with value and
// requires the answer true (ldaptive's CompareValidator).
func Compare(dn, attribute, value string) Validator {
	return func(ctx context.Context, c ldap.Client) error {
		ok, err := c.Compare(dn, attribute, value)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("ldapconn: compare validator: %s of %q is not %q", attribute, dn, value)
		}
		return nil
	}
}

// NewSearch returns a subtree search under baseDN for filter, asking for
// attrs (all user attributes when none are named), with no size or time limit
// of its own: the shape most lookups take (a user by uid, a user's groups).
// Build an ldap.SearchRequest yourself for anything else.
func NewSearch(baseDN, filter string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
}
