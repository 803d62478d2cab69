package ldapconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
)

// An ldaps:// URI pointed at a port that speaks plain LDAP (a common slip
// in a service's configuration) fails with ErrServerDown and an error that
// names the server and says what is likely wrong, not only "EOF".
func TestAdoptingLDAPSToAPlainPortSaysSo(t *testing.T) {
	srv := embedded(t)
	url := "ldaps://" + strings.TrimPrefix(srv.URL(), "ldap://")
	p := newPool(t, url, admin, quiet, ldapconn.WithRetry(1, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := p.Search(ctx, searchUID("user1"))
	if !errors.Is(err, ldapconn.ErrServerDown) {
		t.Fatalf("Search over ldaps:// to a plain port = %v; want ErrServerDown", err)
	}
	for _, want := range []string{url, "TLS", "plain LDAP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}
