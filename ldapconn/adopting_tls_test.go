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

	// At default options it says so within 1.5 s: a server that ends the
	// TLS handshake twice in a row without a TLS answer is not waited for
	// as a restarting one would be (that took 2-3.6 s, the restart grace).
	q := newPool(t, url, admin, quiet)
	start := time.Now()
	_, err = q.Search(ctx, searchUID("user1"))
	if took := time.Since(start); !errors.Is(err, ldapconn.ErrServerDown) || took > 1500*time.Millisecond {
		t.Fatalf("Search over ldaps:// to a plain port at default options = %v after %v; want ErrServerDown within 1.5 s", err, took)
	}
}
