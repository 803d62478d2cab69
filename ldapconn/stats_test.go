package ldapconn_test

import (
	"errors"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

func TestPoolNameNamesBothLanes(t *testing.T) {
	srv := embedded(t)
	for _, tt := range []struct {
		name      string
		opts      []ldapconn.Option
		main, aux string
	}{
		{"default", nil, "ldap", "ldap/bind"},
		{"given", []ldapconn.Option{ldapconn.WithPoolName("directory")}, "directory", "directory/bind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, srv.URL(), tt.opts...)
			if got, aux := p.Stats().Name, p.AuthStats().Name; got != tt.main || aux != tt.aux {
				t.Fatalf("Stats().Name %q, AuthStats().Name %q; want %q, %q", got, aux, tt.main, tt.aux)
			}
		})
	}
}

func TestPoolNameMustNotBeEmpty(t *testing.T) {
	_, err := ldapconn.NewPool("ldap://localhost", ldapconn.WithPoolName(""))
	if want := `ldapconn: WithPoolName(""): must not be empty`; err == nil || err.Error() != want {
		t.Fatalf("NewPool(WithPoolName(\"\")) = %v; want %s", err, want)
	}
	if !errors.Is(err, ldapconn.ErrBadRequest) {
		t.Fatalf("error %v does not match ErrBadRequest", err)
	}
}

func TestServersCountOperationsAndFailovers(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, closedPort(t)+","+srv.URL(), admin)
	for range 3 {
		if _, err := p.Search(t.Context(), searchUID("alice")); err != nil {
			t.Fatalf("Search: %v", err)
		}
	}
	bad := searchUID("alice")
	bad.Filter = "(uid=alice" // go-ldap refuses it before sending: still an operation that failed
	if _, err := p.Search(t.Context(), bad); err == nil {
		t.Fatal("a search with a bad filter succeeded")
	}
	if err := p.Authenticate(t.Context(), ldaptest.AdminDN, "wrong"); !errors.Is(err, ldapconn.ErrInvalidCredentials) {
		t.Fatalf("Authenticate with a wrong password = %v; want ErrInvalidCredentials", err)
	}
	st := p.Servers()
	if st[0].Operations != 0 || st[0].Failovers != 0 {
		t.Fatalf("the down server: %d operations, %d failovers; want none", st[0].Operations, st[0].Failovers)
	}
	// 4 searches and a bind; 2 errors. The first dial of each lane found
	// the first server down; the bind lane's came after its backoff began,
	// so it went straight to the second.
	if s := st[1]; s.Operations != 5 || s.OperationErrors != 2 || s.Failovers != 1 {
		t.Fatalf("the second server: %d operations (%d errors), %d failovers; want 5 (2), 1",
			s.Operations, s.OperationErrors, s.Failovers)
	}
}
