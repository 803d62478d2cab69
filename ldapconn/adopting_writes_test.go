package ldapconn_test

// Tests written by porting services' code onto the pool: a provisioning job's writes (Modify,
// ModifyWithResult, Delete) through Do while slapd is killed with SIGKILL.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

type provisioningWrite struct {
	op, dn, value string
	err           error
	calls         int
}

// Writes that would fail if sent twice (a value added twice is
// attributeOrValueExists, an entry deleted twice noSuchObject) run through
// Do while slapd is killed and restarted three times. No write may be sent
// twice; every error is ErrOutcomeUnknown (the write may have been applied),
// or says that nothing was applied and is classified (retryable, server
// down); a nil error means applied; the directory agrees afterwards.
// This covers Modify, ModifyWithResult and Del, which TestKillNineMixedLoad
// (Add only) does not.
func TestAdoptingProvisioningWritesThroughKillNine(t *testing.T) {
	const entries, kills = 150, 3
	s := slapd.Start(t)
	p := newPool(t, s.URL(), admin, ldapconn.WithMaxSize(3), quiet)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dnOf := func(kind string, k int) string { return fmt.Sprintf("cn=a6-%s-%d,%s", kind, k, ldaptest.PeopleDN) }
	for _, kind := range []string{"mod", "del"} {
		for k := range entries {
			if kind == "mod" && k >= 3 {
				break
			}
			req := ldap.NewAddRequest(dnOf(kind, k), nil)
			req.Attribute("objectClass", []string{"organizationalRole"})
			req.Attribute("cn", []string{fmt.Sprintf("a6-%s-%d", kind, k)})
			if err := p.Do(ctx, func(c ldap.Client) error { return c.Add(req) }); err != nil {
				t.Fatalf("setup Add: %v", err)
			}
		}
	}

	var (
		stop  atomic.Bool
		done  atomic.Int64
		mu    sync.Mutex
		wrote [][]provisioningWrite = make([][]provisioningWrite, 3)
		wg    sync.WaitGroup
		// progress has a token after each write (waitOps)
		progress = make(chan struct{}, 1)
	)
	for w := range 3 {
		wg.Go(func() {
			for n := 0; n < entries && !stop.Load(); n++ {
				var wr provisioningWrite
				var fn func(c ldap.Client) error
				switch w {
				case 0, 1: // Modify / ModifyWithResult: add a value no one else adds
					wr = provisioningWrite{op: "modify", dn: dnOf("mod", w), value: fmt.Sprintf("w%d-%d", w, n)}
					req := ldap.NewModifyRequest(wr.dn, nil)
					req.Add("description", []string{wr.value})
					fn = func(c ldap.Client) error { return c.Modify(req) }
					if w == 1 {
						wr.op = "ModifyWithResult"
						fn = func(c ldap.Client) error { _, err := c.ModifyWithResult(req); return err }
					}
				case 2:
					wr = provisioningWrite{op: "delete", dn: dnOf("del", n)}
					req := ldap.NewDelRequest(wr.dn, nil)
					fn = func(c ldap.Client) error { return c.Del(req) }
				}
				octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
				wr.err = p.Do(octx, func(c ldap.Client) error { wr.calls++; return fn(c) })
				ocancel()
				mu.Lock()
				wrote[w] = append(wrote[w], wr)
				mu.Unlock()
				done.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	for k := range kills {
		waitOps(t, &done, progress, done.Load()+25)
		if err := s.Kill(); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		if err := s.Restart(); err != nil {
			t.Fatalf("restart %d: %v", k, err)
		}
	}
	waitOps(t, &done, progress, done.Load()+25)
	stop.Store(true)
	wg.Wait()

	// What the directory holds now.
	values := map[string]bool{}
	for w := range 2 {
		res, err := p.Search(ctx, ldap.NewSearchRequest(dnOf("mod", w), ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"description"}, nil))
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		for _, v := range res.Entries[0].GetAttributeValues("description") {
			values[v] = true
		}
	}
	exists := map[string]bool{}
	res, err := p.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(cn=a6-del-*)", "cn"))
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	for _, e := range res.Entries {
		exists[e.DN] = true
	}
	var ok, unknown, unsent int
	for _, row := range wrote {
		for _, wr := range row {
			applied := values[wr.value]
			if wr.op == "delete" {
				applied = !exists[wr.dn]
			}
			switch {
			case ldap.IsErrorWithCode(wr.err, ldap.LDAPResultAttributeOrValueExists), ldap.IsErrorWithCode(wr.err, ldap.LDAPResultNoSuchObject):
				t.Errorf("%s %s %s: %v: the write was sent twice (fn ran %d times)", wr.op, wr.dn, wr.value, wr.err, wr.calls)
			case wr.calls > 1:
				t.Errorf("%s %s %s: Do ran the function %d times (err %v)", wr.op, wr.dn, wr.value, wr.calls, wr.err)
			case wr.err == nil:
				ok++
				if !applied {
					t.Errorf("%s %s %s: Do returned nil but the directory does not show it", wr.op, wr.dn, wr.value)
				}
			case errors.Is(wr.err, ldapconn.ErrOutcomeUnknown):
				unknown++
				if ldapconn.IsRetryable(wr.err) {
					t.Errorf("%s: %v is ErrOutcomeUnknown but IsRetryable says yes", wr.op, wr.err)
				}
			default:
				unsent++
				if applied {
					t.Errorf("%s %s %s: Do = %v, not ErrOutcomeUnknown, but the write was applied", wr.op, wr.dn, wr.value, wr.err)
				}
				if !ldapconn.IsRetryable(wr.err) && !errors.Is(wr.err, ldapconn.ErrServerDown) {
					t.Errorf("%s: unclassified error %v", wr.op, wr.err)
				}
			}
		}
	}
	t.Logf("%d writes applied, %d of unknown outcome, %d not sent", ok, unknown, unsent)
}
