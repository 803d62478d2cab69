package ldapconn_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// wrongPassword is a password the directory refuses; the errors that refuse
// it must not echo it either.
const wrongPassword = "wrong-Pa55word-never-printed"

// Every value the package hands out, formatted with every verb, logged
// through slog and marshalled to JSON, never shows a password.
func TestNoPasswordIsPrinted(t *testing.T) {
	srv := embedded(t)
	user := ldapconn.Credentials{DN: ldaptest.UserDN(7), Password: ldaptest.UserPassword(7)}
	adminCreds := ldapconn.Credentials{DN: ldaptest.AdminDN, Password: ldaptest.AdminPassword}
	bindOpt := ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword)
	p := newPool(t, srv.URL(), bindOpt, ldapconn.WithMaxSize(4))

	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	la, err := p.LeaseAs(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()

	_, leaseAsErr := p.LeaseAs(t.Context(), ldapconn.Credentials{DN: ldaptest.UserDN(7), Password: wrongPassword})
	authErr := p.Authenticate(t.Context(), ldaptest.UserDN(7), wrongPassword)
	doAsErr := p.DoAs(t.Context(), ldapconn.Credentials{DN: ldaptest.UserDN(8), Password: wrongPassword},
		func(ldap.Client) error { return nil })
	for name, err := range map[string]error{"LeaseAs": leaseAsErr, "Authenticate": authErr, "DoAs": doAsErr} {
		if !ldapconn.IsInvalidCredentials(err) {
			t.Fatalf("%s with a wrong password = %v; want invalid credentials", name, err)
		}
	}
	down := newPool(t, closedPort(t), bindOpt)
	_, downErr := down.Lease(t.Context())
	if downErr == nil {
		t.Fatal("Lease on a closed port succeeded")
	}
	servers, err := ldapconn.ParseServers(srv.URL())
	if err != nil {
		t.Fatal(err)
	}

	type nested struct {
		Name  string
		Creds ldapconn.Credentials
		Ptr   *ldapconn.Credentials
	}
	values := map[string]any{
		"*Pool":                      p,
		"Pool":                       *p,
		"Lease":                      l,
		"LeaseAs":                    la,
		"Lease.Client":               l.Client(),
		"LeaseAs.Client":             la.Client(),
		"Credentials":                adminCreds,
		"user Credentials":           user,
		"*Credentials":               &user,
		"Credentials in a struct":    nested{Name: "n", Creds: user, Ptr: &adminCreds},
		"*Credentials in a struct":   &nested{Name: "n", Creds: adminCreds, Ptr: &user},
		"Credentials in a slice":     []ldapconn.Credentials{user, adminCreds},
		"Credentials in a map":       map[string]ldapconn.Credentials{"u": user},
		"WithBind":                   bindOpt,
		"[]Option":                   []ldapconn.Option{bindOpt},
		"Server":                     servers[0],
		"ServerStatus":               p.Servers(),
		"Stats":                      p.Stats(),
		"LeaseAs wrong password":     leaseAsErr,
		"Authenticate wrong pass":    authErr,
		"DoAs wrong password":        doAsErr,
		"AllServersDownError":        downErr,
		"*Pool of the down server":   down,
		"ServerStatus of the down":   down.Servers(),
		"Stats of the down server":   down.Stats(),
		"Lease.Key":                  l.Key(),
		"LeaseAs.Key":                la.Key(),
		"Credentials (anonymous)":    ldapconn.Anonymous,
		"Strategy":                   ldapconn.RoundRobin,
		"Validator":                  ldapconn.RootDSE(),
		"empty password error":       emptyPasswordErr(p),
		"the lease after release":    releasedLease(t, p, user),
		"error chain of LeaseAs err": fmt.Errorf("wrapped: %w", leaseAsErr),
	}

	secrets := []string{ldaptest.AdminPassword, ldaptest.UserPassword(7), wrongPassword}
	for name, v := range values {
		for verb, out := range renderings(v) {
			for _, s := range secrets {
				for _, form := range []string{s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s)))} {
					if strings.Contains(out, form) {
						t.Errorf("%s formatted with %s shows the password %q:\n%s", name, verb, s, out)
					}
				}
			}
		}
	}
}

func emptyPasswordErr(p *ldapconn.Pool) error {
	return p.Authenticate(context.Background(), ldaptest.UserDN(7), "")
}

func releasedLease(t *testing.T, p *ldapconn.Pool, creds ldapconn.Credentials) *ldapconn.Lease {
	l, err := p.LeaseAs(t.Context(), creds)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	return l
}

// renderings returns v as every fmt verb, slog handler and json.Marshal
// render it, by the name of the rendering.
func renderings(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "% x", "%10.3v", "%T"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("msg", "value", v)
		log.Info("msg", slog.Group("group", "value", v))
		log.With("value", v).Info("msg")
		out[name] = b.String()
	}
	if b, err := json.Marshal(v); err == nil {
		out["json.Marshal"] = string(b)
	}
	return out
}
