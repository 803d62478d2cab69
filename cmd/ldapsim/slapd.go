package main

import (
	"fmt"
	"os"

	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
	"github.com/fairpool/ldappool/sim"
)

// newSlapd starts OpenLDAP's slapd, from a throwaway configuration in a
// temporary directory, serving the seeded directory of package ldaptest on a
// free loopback port, and returns a Backend over it and the function that
// stops it and removes the directory.
func newSlapd(o *options) (sim.Backend, func(), error) {
	dir, err := os.MkdirTemp("", "ldapsim-slapd-")
	if err != nil {
		return nil, nil, err
	}
	srv, err := slapd.New(dir)
	if err != nil { // slapd.ErrNotInstalled says what to install
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("-target slapd: %w", err)
	}
	stop := func() {
		srv.Stop()
		os.RemoveAll(dir)
	}
	dn, pw := o.bindDN, o.bindPassword
	if dn == "" && pw == "" {
		dn, pw = ldaptest.AdminDN, ldaptest.AdminPassword
	}
	b, err := sim.NewLDAP(sim.LDAPConfig{
		URL: srv.URL(), Name: "slapd at " + srv.URL(), BindDN: dn, Password: pw, Seed: o.seed,
	})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return b, stop, nil
}
