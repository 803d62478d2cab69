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
	"time"

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
	// Two servers: a hedge lane, its row in the state table, and the
	// servers' hedge counters.
	second := embedded(t)
	hedged := newPool(t, srv.URL()+","+second.URL(), bindOpt, ldapconn.WithMaxSize(4))
	for range 20 {
		if _, err := hedged.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection", func() bool { return second.Stats().Open == 1 })
	if !strings.Contains(hedged.String(), "(hedge lane)") {
		t.Fatalf("the state table of a two-server pool has no hedge lane row:\n%s", hedged)
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
		"*Pool with a hedge lane":    hedged,
		"Stats with a hedge lane":    hedged.Stats(),
		"ServerStatus, two servers":  hedged.Servers(),
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

	_, twoBinds := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword), ldapconn.WithExternalBind())
	values["NewPool's OptionError"] = twoBinds
	secrets := []string{ldaptest.AdminPassword, ldaptest.UserPassword(7), wrongPassword}
	for name, v := range values {
		for verb, out := range renderings(v) {
			printable(t, name, verb, out)
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

// A Config, however it is printed, logged or marshalled, alone or inside
// another value, never shows its bind password; neither do the errors of
// ParseConfig, ConfigFromEnv and NewPoolFromConfig about it.
func TestConfigPasswordIsNotPrinted(t *testing.T) {
	c := ldapconn.Config{Servers: "ldap://a", BindDN: ldaptest.AdminDN, BindPassword: wrongPassword,
		MaxIdle: new(int), ConnectTimeout: ldapconn.Duration(time.Second)}
	_, parseErr := ldapconn.ParseConfig("ldap://a?bind_password=" + wrongPassword + "&bind_password=" + wrongPassword)
	_, escapeErr := ldapconn.ParseConfig("ldap://a?bind_password=" + wrongPassword + "%zz")
	t.Setenv("LDAP_BIND_PASSWORD", wrongPassword)
	t.Setenv("LDAP_BIND_PASSWORD_FILE", "/nonexistent")
	envConfig, err := ldapconn.ConfigFromEnv("")
	if err != nil {
		t.Fatal(err)
	}
	_, poolErr := ldapconn.NewPoolFromConfig(envConfig)
	_, noDNErr := ldapconn.NewPoolFromConfig(ldapconn.Config{Servers: "ldap://a", BindPassword: wrongPassword})
	type holder struct {
		Name   string
		Config ldapconn.Config
		Ptr    *ldapconn.Config
	}
	values := map[string]any{
		"Config":                     c,
		"*Config":                    &c,
		"Config in a struct":         holder{Name: "n", Config: c, Ptr: &c},
		"Config in a slice":          []ldapconn.Config{c},
		"Config in a map":            map[string]ldapconn.Config{"ldap": c},
		"Config from the env":        envConfig,
		"ParseConfig twice":          parseErr,
		"ParseConfig bad escape":     escapeErr,
		"NewPoolFromConfig both":     poolErr,
		"NewPoolFromConfig no DN":    noDNErr,
		"error chain of pool errors": fmt.Errorf("wrapped: %w", poolErr),
	}
	for name, v := range values {
		if v == nil {
			t.Fatalf("%s is nil; want an error", name)
		}
		for verb, out := range renderings(v) {
			printable(t, name, verb, out)
			for _, form := range []string{wrongPassword, hex.EncodeToString([]byte(wrongPassword)), strings.ToUpper(hex.EncodeToString([]byte(wrongPassword)))} {
				if strings.Contains(out, form) {
					t.Errorf("%s formatted with %s shows the password:\n%s", name, verb, out)
				}
			}
		}
	}
	// MarshalYAML hands YAML libraries a value without the password.
	y, err := c.MarshalYAML()
	if err != nil || strings.Contains(fmt.Sprintf("%+v", y), wrongPassword) {
		t.Fatalf("MarshalYAML = %+v, %v; want no password", y, err)
	}
	// The redaction says a password was set.
	if s := fmt.Sprint(c); !strings.Contains(s, "bind_password=REDACTED") {
		t.Fatalf("Config prints as %s; want bind_password=REDACTED", s)
	}
}

// printable fails the test when a value did not print: fmt and slog turn a
// Format or LogValue that panics into "%!v(PANIC=...)", which holds no
// password either, and an empty rendering says nothing.
func printable(t *testing.T, name, verb, out string) {
	t.Helper()
	if strings.Contains(out, "PANIC=") || strings.TrimSpace(out) == "" {
		t.Errorf("%s formatted with %s printed %q; want a description", name, verb, out)
	}
}
