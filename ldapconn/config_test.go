package ldapconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// A password file is read at each dial, without its trailing newline.
func TestBindPasswordFile(t *testing.T) {
	srv := embedded(t)
	file := filepath.Join(t.TempDir(), "password")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(wrongPassword + "\n")
	p := newPoolFromConfig(t, ldapconn.Config{Servers: srv.URL(), BindDN: ldaptest.AdminDN, BindPasswordFile: file}, quiet)
	if _, err := p.Search(t.Context(), searchUID("user1")); !errors.Is(err, ldapconn.ErrInvalidCredentials) {
		t.Fatalf("Search with a wrong password in the file: %v; want ErrInvalidCredentials", err)
	}
	write(ldaptest.AdminPassword + "\r\n")
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatalf("Search after the file was rewritten: %v", err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatalf("Search on the pooled connection after the file went: %v", err)
	}
}

func newPoolFromConfig(t *testing.T, c ldapconn.Config, extra ...ldapconn.Option) *ldapconn.Pool {
	t.Helper()
	p, err := ldapconn.NewPoolFromConfig(c, extra...)
	if err != nil {
		t.Fatalf("NewPoolFromConfig: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// A Config read from JSON gives the pool its settings; JSON written from a
// Config has no password and durations as strings.
func TestConfigJSON(t *testing.T) {
	srv := embedded(t)
	in := `{
		"servers": "` + srv.URL() + `",
		"bind_dn": "` + ldaptest.AdminDN + `",
		"bind_password": "` + ldaptest.AdminPassword + `",
		"strategy": "round-robin",
		"connect_timeout": "2s",
		"operation_timeout": "3s",
		"wait_timeout": "1s",
		"retry_max": 2,
		"retry_delay": "50ms",
		"max_size": 3,
		"max_idle": 0,
		"auth_pool_size": 1,
		"validate_on_lease": true
	}`
	var c ldapconn.Config
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.MaxIdle == nil || *c.MaxIdle != 0 || c.OperationTimeout != ldapconn.Duration(3*time.Second) || c.Strategy != "round-robin" {
		t.Fatalf("decoded %+v", c)
	}
	p := newPoolFromConfig(t, c)
	if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
		t.Fatalf("Search: %v", err)
	}
	if st := p.Stats(); st.MaxSize != 3 || st.Idle != 0 {
		t.Fatalf("stats %+v; want max size 3 and no idle connection (max_idle 0)", st)
	}

	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), ldaptest.AdminPassword) || strings.Contains(string(out), "bind_password") {
		t.Fatalf("json.Marshal(Config) shows the password: %s", out)
	}
	var back ldapconn.Config
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	c.BindPassword = ""
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("read back %+v\nwant %+v", back, c)
	}
	if !strings.Contains(string(out), `"operation_timeout":"3s"`) {
		t.Fatalf("durations are not written as strings: %s", out)
	}

	for _, bad := range []string{`{"connect_timeout": 10}`, `{"connect_timeout": "10"}`, `{"connect_timeout": "ten seconds"}`} {
		if err := json.Unmarshal([]byte(bad), &c); !errors.Is(err, ldapconn.ErrBadRequest) {
			t.Errorf("Unmarshal(%s) = %v; want an error matching ErrBadRequest", bad, err)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := writeFile(t, "empty", "\n")
	notPEM := writeFile(t, "not-pem", "not a certificate")
	tests := []struct {
		name string
		c    ldapconn.Config
		want string
	}{
		{"max size", ldapconn.Config{MaxSize: -1}, "ldapconn: Config.MaxSize(-1): size must be at least 1"},
		{"ops per conn", ldapconn.Config{OpsPerConn: -1}, "ldapconn: Config.OpsPerConn(-1): must be at least 1"},
		{"max in flight", ldapconn.Config{MaxInFlight: -2}, "ldapconn: Config.MaxInFlight(-2): must not be negative"},
		{"min idle over max size", ldapconn.Config{MaxSize: 2, MinIdle: 3}, "ldapconn: Config.MinIdle(3): must not exceed MaxSize (2)"},
		{"max idle", ldapconn.Config{MaxIdle: ptr(-2)}, "ldapconn: Config.MaxIdle(-2): must not be negative"},
		{"operation timeout", ldapconn.Config{OperationTimeout: ldapconn.Duration(-time.Second)},
			"ldapconn: Config.OperationTimeout(-1s): must be positive"},
		{"wait timeout", ldapconn.Config{WaitTimeout: ldapconn.Duration(-time.Second)},
			"ldapconn: Config.WaitTimeout(-1s): duration must not be negative"},
		{"retry max", ldapconn.Config{RetryMax: 101}, "ldapconn: Config.RetryMax(101): tries must be at most 100"},
		{"retry delay", ldapconn.Config{RetryDelay: ldapconn.Duration(2 * time.Hour)},
			"ldapconn: Config.RetryDelay(2h0m0s): delay must be at most 1h0m0s"},
		{"max backoff", ldapconn.Config{RetryDelay: ldapconn.Duration(time.Second), MaxBackoff: ldapconn.Duration(time.Millisecond)},
			"ldapconn: Config.MaxBackoff(1ms): must be at least the retry delay (1s)"},
		{"strategy", ldapconn.Config{Strategy: "random"}, `ldapconn: Config.Strategy("random"): unknown`},
		{"DN without password", ldapconn.Config{BindDN: "cn=svc"}, `ldapconn: Config.BindDN("cn=svc"): needs BindPassword or BindPasswordFile`},
		{"password without DN", ldapconn.Config{BindPassword: wrongPassword}, `ldapconn: Config.BindDN(""): a password needs a bind DN`},
		{"password and file", ldapconn.Config{BindDN: "cn=svc", BindPassword: wrongPassword, BindPasswordFile: empty},
			`ldapconn: Config.BindPassword(REDACTED), Config.BindPasswordFile(`},
		{"missing password file", ldapconn.Config{BindDN: "cn=svc", BindPasswordFile: missing},
			`ldapconn: Config.BindPasswordFile("` + missing + `"): open ` + missing},
		{"empty password file", ldapconn.Config{BindDN: "cn=svc", BindPasswordFile: empty},
			`ldapconn: Config.BindPasswordFile("` + empty + `"): ` + empty + ` is empty`},
		{"missing CA file", ldapconn.Config{TLSCAFile: missing}, `ldapconn: Config.TLSCAFile("` + missing + `"): open`},
		{"CA file without PEM", ldapconn.Config{TLSCAFile: notPEM}, `ldapconn: Config.TLSCAFile("` + notPEM + `"): no PEM certificate in the file`},
		{"cert without key", ldapconn.Config{TLSCertFile: notPEM}, `ldapconn: Config.TLSCertFile("` + notPEM + `"): a client certificate needs TLSKeyFile too`},
		{"key without cert", ldapconn.Config{TLSKeyFile: notPEM}, `ldapconn: Config.TLSKeyFile("` + notPEM + `"): a client key needs TLSCertFile too`},
		{"bad key pair", ldapconn.Config{TLSCertFile: notPEM, TLSKeyFile: notPEM},
			`ldapconn: Config.TLSCertFile("` + notPEM + `"), Config.TLSKeyFile("` + notPEM + `"): tls: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Servers = "ldap://127.0.0.1:1"
			p, err := ldapconn.NewPoolFromConfig(tt.c)
			if err == nil {
				p.Close(t.Context())
				t.Fatalf("NewPoolFromConfig succeeded; want %s", tt.want)
			}
			var oe *ldapconn.OptionError
			if !strings.HasPrefix(err.Error(), tt.want) || !errors.As(err, &oe) || !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Fatalf("NewPoolFromConfig = %v; want an *OptionError starting %s", err, tt.want)
			}
			if strings.Contains(err.Error(), wrongPassword) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	_, err := ldapconn.NewPoolFromConfig(ldapconn.Config{Servers: "ldap://a b:x"})
	if !errors.Is(err, ldapconn.ErrBadURI) || !errors.Is(err, ldapconn.ErrBadRequest) {
		t.Fatalf("NewPoolFromConfig with a bad server = %v; want ErrBadURI", err)
	}
	// An option given after the Config is the caller's: its error keeps the
	// option's name.
	_, err = ldapconn.NewPoolFromConfig(ldapconn.Config{Servers: "ldap://a", MaxSize: 3}, ldapconn.WithMaxSize(0))
	if err == nil || !strings.HasPrefix(err.Error(), "ldapconn: WithMaxSize(0): ") {
		t.Fatalf("NewPoolFromConfig with WithMaxSize(0) after MaxSize 3 = %v; want WithMaxSize(0) named", err)
	}
}

func ptr[T any](v T) *T { return &v }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		url  string
		want ldapconn.Config
	}{
		{"ldap://a", ldapconn.Config{Servers: "ldap://a"}},
		{"LDAPS://a,b:1636/", ldapconn.Config{Servers: "ldaps://a,ldaps://b:1636"}},
		{"ldaps://ldap1.example.org,ldap2.example.org:636/?bind_dn=cn%3Dsvc,dc%3Dexample&max_size=8&operation_timeout=3s&tls_ca_file=/etc/ssl/ca.pem",
			ldapconn.Config{Servers: "ldaps://ldap1.example.org,ldaps://ldap2.example.org:636", BindDN: "cn=svc,dc=example",
				MaxSize: 8, OperationTimeout: ldapconn.Duration(3 * time.Second), TLSCAFile: "/etc/ssl/ca.pem"}},
		{"ldap://[::1]:1389,[fe80::1%25eth0]?bind_dn=cn=svc,dc=example&bind_password_file=/run/pw&start_tls=true&max_idle=0",
			ldapconn.Config{Servers: "ldap://[::1]:1389,ldap://[fe80::1%25eth0]", BindDN: "cn=svc,dc=example",
				BindPasswordFile: "/run/pw", StartTLS: true, MaxIdle: ptr(0)}},
		{"ldap:///?servers=ldap://a+ldaps://b:636&strategy=round-robin&max_size=",
			ldapconn.Config{Servers: "ldap://a ldaps://b:636", Strategy: "round-robin"}},
		{"ldap://a?bind_dn=cn%3Dsvc&bind_password=p%26ss&fail_fast=1&no_pool=false&min_idle=2&wait_timeout=1m30s",
			ldapconn.Config{Servers: "ldap://a", BindDN: "cn=svc", BindPassword: "p&ss", FailFast: true, MinIdle: 2,
				WaitTimeout: ldapconn.Duration(90 * time.Second)}},
	}
	for _, tt := range tests {
		got, err := ldapconn.ParseConfig(tt.url)
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", tt.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseConfig(%q)\n = %v\nwant %v", tt.url, got, tt.want)
		}
	}

	const pw = "Pa55-in-the-url"
	bad := []struct{ url, want string }{
		{"", "ldapconn: ParseConfig: no scheme"},
		{"ldap.example.org", "ldapconn: ParseConfig: no scheme"},
		{"http://a", "ldapconn: ParseConfig: the scheme is not ldap or ldaps"},
		{"ldap://cn=admin:" + pw + "@a", "ldapconn: ParseConfig: credentials do not belong in the host part"},
		{"ldap://a/dc=example", "ldapconn: ParseConfig: a DN after the host is not supported"},
		{"ldap://a/?bind_password=a#b", "ldapconn: ParseConfig: a fragment"},
		{"ldap:///", `ldapconn: bad server URI: the server list is empty`},
		{"ldap://a:99999", `ldapconn: bad server URI "ldap://a:99999": port`},
		{"ldap://a?servers=ldap://b", "ldapconn: ParseConfig: servers are given both"},
		{"ldap://a?max_size=8&colour=red&bind_pasword=" + pw, `ldapconn: URL parameters "colour", "bind_pasword": unknown`},
		{"ldap://a?max_size=eight", `ldapconn: URL parameter max_size="eight": not an integer`},
		{"ldap://a?max_size=1&max_size=2", `ldapconn: URL parameter max_size="2": given twice`},
		{"ldap://a?bind_password=" + pw + "&bind_password=" + pw, `ldapconn: URL parameter bind_password=REDACTED: given twice`},
		{"ldap://a?bind_password=" + pw + "%zz", `ldapconn: URL parameter bind_password=REDACTED: bad escape in its value`},
		{"ldap://a?start_tls", `ldapconn: URL parameter start_tls="": needs a value (start_tls=...)`},
		{"ldap://a?start_tls=yes", `ldapconn: URL parameter start_tls="yes": not a boolean`},
		{"ldap://a?connect_timeout=10", `ldapconn: URL parameter connect_timeout="10": not a duration`},
		{"ldap://a?max_idle=none", `ldapconn: URL parameter max_idle="none": not an integer`},
	}
	for _, tt := range bad {
		_, err := ldapconn.ParseConfig(tt.url)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ldapconn.ErrBadRequest) {
			t.Errorf("ParseConfig(%q) = %v; want an error starting %s, matching ErrBadRequest", tt.url, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("ParseConfig(%q) error shows the password: %v", tt.url, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("LDAP_SERVERS", "ldap://a, ldap://b")
	t.Setenv("LDAP_BIND_DN", "cn=svc")
	t.Setenv("LDAP_BIND_PASSWORD_FILE", "/run/secrets/ldap")
	t.Setenv("LDAP_MAX_SIZE", "8")
	t.Setenv("LDAP_MAX_IDLE", "0")
	t.Setenv("LDAP_IDLE_TIMEOUT", "2m")
	t.Setenv("LDAP_VALIDATE_ON_RELEASE", "true")
	t.Setenv("LDAP_MIN_IDLE", "") // empty: the default
	t.Setenv("LDAP_UNRELATED", "x")
	t.Setenv("APP_LDAP_SERVERS", "ldaps://c")
	want := ldapconn.Config{Servers: "ldap://a, ldap://b", BindDN: "cn=svc", BindPasswordFile: "/run/secrets/ldap",
		MaxSize: 8, MaxIdle: ptr(0), IdleTimeout: ldapconn.Duration(2 * time.Minute), ValidateOnRelease: true}
	for _, prefix := range []string{"", "LDAP", "LDAP_"} {
		got, err := ldapconn.ConfigFromEnv(prefix)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ConfigFromEnv(%q) = %v, %v\nwant %v", prefix, got, err, want)
		}
	}
	if got, err := ldapconn.ConfigFromEnv("APP_LDAP"); err != nil || got.Servers != "ldaps://c" || got.BindDN != "" {
		t.Fatalf("ConfigFromEnv(APP_LDAP) = %v, %v", got, err)
	}

	t.Setenv("LDAP_BIND_PASSWORD", wrongPassword)
	t.Setenv("LDAP_MAX_SIZE", "many")
	_, err := ldapconn.ConfigFromEnv("")
	if err == nil || err.Error() != `ldapconn: environment variable LDAP_MAX_SIZE="many": not an integer` {
		t.Fatalf("ConfigFromEnv with LDAP_MAX_SIZE=many = %v", err)
	}
	t.Setenv("LDAP_MAX_SIZE", "")
	c, err := ldapconn.ConfigFromEnv("")
	if err != nil || c.BindPassword != wrongPassword {
		t.Fatalf("ConfigFromEnv did not read LDAP_BIND_PASSWORD: %v", err)
	}
	_, err = ldapconn.NewPoolFromConfig(c)
	if err == nil || strings.Contains(err.Error(), wrongPassword) {
		t.Fatalf("NewPoolFromConfig with a password and a password file = %v; want an error without the password", err)
	}
}

// docs/configuration.md names every field in each of its three tables: the
// Go name and its key, the URL parameter, the environment variable.
func TestConfigurationDocListsEveryField(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	fields := s[strings.Index(s, "## Config fields"):strings.Index(s, "## URL parameters")]
	params := s[strings.Index(s, "## URL parameters"):strings.Index(s, "## Environment variables")]
	env := s[strings.Index(s, "## Environment variables"):]
	typ := reflect.TypeFor[ldapconn.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if yaml, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); yaml != key {
			t.Errorf("field %s: json key %q, yaml key %q; want the same", f.Name, key, yaml)
		}
		if !strings.Contains(fields, "| `"+f.Name+"` | `"+key+"` |") {
			t.Errorf("the Config fields table has no row for %s (%s)", f.Name, key)
		}
		if !strings.Contains(params, "`"+key+"`") {
			t.Errorf("the URL parameters table does not name %s", key)
		}
		if v := "`LDAP_" + strings.ToUpper(key) + "`"; !strings.Contains(env, v) {
			t.Errorf("the environment table does not name %s", v)
		}
	}
}
