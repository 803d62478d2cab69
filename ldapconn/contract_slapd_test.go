package ldapconn_test

import (
	"errors"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// Promise 3 against a real directory: slapd stopped (or killed) and started
// again on the same port under a warm pool, then each entry point's next
// call succeeds, and a wrong password is still the caller's error.
func TestContractFirstCallAfterSlapdRestart(t *testing.T) {
	s := slapd.Start(t)
	restarts := []struct {
		name    string
		restart func() error
	}{
		{"stopped", s.Restart},
		{"killed", func() error { return errors.Join(s.Kill(), s.Restart()) }},
	}
	for _, r := range restarts {
		for _, tt := range restartOps {
			t.Run(r.name+"/"+tt.name, func(t *testing.T) {
				p := newPool(t, s.URL(), append([]ldapconn.Option{admin}, tt.opts...)...)
				warmBoth(t, p)
				if err := r.restart(); err != nil {
					t.Fatalf("restarting slapd: %v", err)
				}
				before := dials(p)
				if err := tt.op(contractCtx(t), p); err != nil {
					t.Fatalf("first %s after slapd restarted: %v; want success", tt.name, err)
				}
				if dials(p) == before {
					t.Fatal("no new connection was dialed: the call did not meet the restart")
				}
			})
		}
		t.Run(r.name+"/wrong password", func(t *testing.T) {
			p := newPool(t, s.URL(), admin)
			warmBoth(t, p)
			if err := r.restart(); err != nil {
				t.Fatalf("restarting slapd: %v", err)
			}
			err := p.Authenticate(contractCtx(t), ldaptest.UserDN(7), "wrong")
			if !errors.Is(err, ldapconn.ErrInvalidCredentials) || ldapconn.IsRetryable(err) {
				t.Fatalf("wrong password after slapd restarted: %v; want ErrInvalidCredentials, not retryable", err)
			}
		})
	}
}
