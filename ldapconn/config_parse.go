package ldapconn

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ParseConfig reads a Config from an LDAP URL whose query holds the other
// settings, as pgxpool reads a connection string:
//
//	ldaps://ldap1.example.org,ldap2.example.org:636/?bind_dn=cn%3Dsvc,dc%3Dexample&bind_password_file=/run/secrets/ldap&max_size=8&operation_timeout=3s&tls_ca_file=/etc/ssl/ca.pem
//
// The host part may list several hosts, separated by commas, each with an
// optional port, all of the URL's scheme (ldap or ldaps); or it may be
// empty ("ldaps:///?servers=...") and the servers= parameter give the list
// as NewPool takes it. A DN after the '/' (RFC 4516's base DN) and a user
// part are refused.
//
// Each parameter is a Config field by its json name (bind_dn, max_size,
// connect_timeout, ...; docs/configuration.md lists them): durations as
// "10s", booleans as strconv.ParseBool reads them, max_idle=0 as WithMaxIdle(0).
// An empty value leaves the default. Values are URL-escaped: write a DN's
// '=' as %3D or leave it, but a '&', '#' or '+' in a value must be %26,
// %23, %2B ('+' is a space).
// bind_password works but is best avoided: a URL ends up in process
// lists, shell histories and logs; use bind_password_file.
//
// An unknown or repeated parameter, or a value that does not parse, is an
// error, with a zero Config: an *OptionError (matching ErrBadRequest) that
// names the parameter with its value, the password's value as REDACTED. An
// unknown parameter is named without its value: it may be a misspelt
// bind_password. A bad host wraps ErrBadURI.
func ParseConfig(s string) (Config, error) {
	c, err := parseConfig(s)
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

func parseConfig(s string) (Config, error) {
	var c Config
	s = strings.TrimSpace(s)
	i := strings.Index(s, "://")
	if i < 0 {
		return c, urlError("no scheme; write ldap://host or ldaps://host")
	}
	scheme := strings.ToLower(s[:i])
	if scheme != "ldap" && scheme != "ldaps" {
		// The scheme is not quoted: a mistyped URL may have a user part
		// before it.
		return c, urlError("the scheme is not ldap or ldaps")
	}
	rest := s[i+len("://"):]
	if strings.ContainsRune(rest, '#') {
		return c, urlError("a fragment ('#') is not supported; escape a '#' in a value as %23")
	}
	hosts, query, _ := strings.Cut(rest, "?")
	hosts, path, _ := strings.Cut(hosts, "/")
	switch {
	case path != "":
		return c, urlError("a DN after the host is not supported; a pool has no base DN")
	case strings.ContainsRune(hosts, '@'):
		return c, urlError("credentials do not belong in the host part; use bind_dn and bind_password_file")
	}
	if err := setParams(&c, query); err != nil {
		return c, err
	}
	if hosts != "" {
		if c.Servers != "" {
			return c, urlError("servers are given both in the host part and in servers=; give one")
		}
		var list []string
		for h := range strings.SplitSeq(hosts, ",") {
			list = append(list, scheme+"://"+h)
		}
		c.Servers = strings.Join(list, ",")
	}
	if _, err := ParseServers(c.Servers); err != nil {
		return c, err
	}
	return c, nil
}

func urlError(why string) error { return &OptionError{Option: "ParseConfig", Reason: why} }

// setParams sets c's fields from a URL query. It splits the query itself,
// rather than with url.ParseQuery, so that an error can name a parameter
// without quoting the password's value.
func setParams(c *Config, query string) error {
	type param struct {
		field         configField
		key, rawValue string
		hasValue      bool
	}
	var params []param
	var unknown []string
	for pair := range strings.SplitSeq(query, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, hasValue := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return &OptionError{Option: "URL parameter " + strconv.Quote(rawKey), Reason: "bad escape in its name"}
		}
		f, ok := fieldByName(key)
		if !ok {
			unknown = append(unknown, strconv.Quote(key))
			continue
		}
		params = append(params, param{f, key, rawValue, hasValue})
	}
	if len(unknown) > 0 {
		what := "URL parameter "
		if len(unknown) > 1 {
			what = "URL parameters "
		}
		return &OptionError{Option: what + strings.Join(unknown, ", "),
			Reason: "unknown (docs/configuration.md lists the parameters)"}
	}
	seen := map[string]bool{}
	for _, p := range params {
		written := "URL parameter " + p.field.written(p.key, p.rawValue)
		value, err := url.QueryUnescape(p.rawValue)
		switch {
		case err != nil:
			return &OptionError{Option: written, Reason: "bad escape in its value"}
		case !p.hasValue:
			return &OptionError{Option: written, Reason: "needs a value (" + p.key + "=...)"}
		case seen[p.key]:
			return &OptionError{Option: written, Reason: "given twice"}
		}
		seen[p.key] = true
		if value == "" {
			continue // the default
		}
		if err := p.field.set(c, value); err != nil {
			return &OptionError{Option: "URL parameter " + p.field.written(p.key, value), Reason: err.Error()}
		}
	}
	return nil
}

// ConfigFromEnv reads a Config from environment variables named prefix, an
// underscore and a field's json name in upper case; prefix "" is "LDAP":
//
//	LDAP_SERVERS                  the server list, as NewPool takes it
//	LDAP_BIND_DN                  the service identity's DN
//	LDAP_BIND_PASSWORD            its password (prefer LDAP_BIND_PASSWORD_FILE)
//	LDAP_BIND_PASSWORD_FILE       a file holding it, read at each dial
//	LDAP_START_TLS                true: StartTLS on ldap:// servers
//	LDAP_TLS_CA_FILE              PEM roots for the servers' certificates
//	LDAP_TLS_CERT_FILE            PEM client certificate
//	LDAP_TLS_KEY_FILE             its PEM key
//	LDAP_TLS_SERVER_NAME          the name to check certificates against
//	LDAP_TLS_INSECURE_SKIP_VERIFY true: check no certificate (tests only)
//	LDAP_STRATEGY                 failover, round-robin or fewest-connections
//	LDAP_CONNECT_TIMEOUT          LDAP_OPERATION_TIMEOUT  LDAP_WAIT_TIMEOUT
//	LDAP_MAX_LIFETIME             LDAP_IDLE_TIMEOUT       LDAP_RETRY_DELAY
//	LDAP_MAX_BACKOFF              LDAP_FAILBACK_AFTER     LDAP_VALIDATE_PERIOD
//	                              durations, as "10s"
//	LDAP_RETRY_MAX                LDAP_MAX_SIZE           LDAP_MIN_IDLE
//	LDAP_MAX_IDLE                 LDAP_SOFT_LIMIT         LDAP_AUTH_POOL_SIZE
//	LDAP_MAX_DIALING              LDAP_OPS_PER_CONN       LDAP_MAX_IN_FLIGHT
//	                              integers
//	LDAP_FAIL_FAST                LDAP_NO_POOL            LDAP_VALIDATE_ON_LEASE
//	LDAP_VALIDATE_ON_RELEASE      LDAP_NO_HEDGING         booleans
//
// Each is the Config field of the same name; docs/configuration.md says what
// each does and its default. A variable that is unset or empty leaves the
// default. A value that does not parse is an *OptionError naming the
// variable and its value (never the password's). Variables with the prefix
// that name no field are not an error: the environment is shared.
func ConfigFromEnv(prefix string) (Config, error) {
	if prefix = strings.TrimSuffix(prefix, "_"); prefix == "" {
		prefix = "LDAP"
	}
	var c Config
	for _, f := range configFields() {
		name := prefix + "_" + strings.ToUpper(f.name)
		value, ok := os.LookupEnv(name)
		if !ok || value == "" {
			continue
		}
		if err := f.set(&c, value); err != nil {
			return Config{}, &OptionError{Option: "environment variable " + f.written(name, value), Reason: err.Error()}
		}
	}
	return c, nil
}

// configField is one field of Config as ParseConfig, ConfigFromEnv and
// Format see it: its json name and its place in the struct. Reflection keeps
// the three in step with the struct: a field added to Config is a URL
// parameter and a variable at once.
type configField struct {
	name   string
	index  int
	secret bool // BindPassword: its value is never written
	text   bool // a string field: written quoted
}

var configFieldList = func() []configField {
	t := reflect.TypeFor[Config]()
	fields := make([]configField, t.NumField())
	for i := range fields {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		fields[i] = configField{name: name, index: i, secret: t.Field(i).Name == "BindPassword",
			text: t.Field(i).Type.Kind() == reflect.String}
	}
	return fields
}()

func configFields() []configField { return configFieldList }

func fieldByName(name string) (configField, bool) {
	i := slices.IndexFunc(configFieldList, func(f configField) bool { return f.name == name })
	if i < 0 {
		return configField{}, false
	}
	return configFieldList[i], true
}

// written is the field as a source wrote it, name=value, with the
// password's value REDACTED.
func (f configField) written(name, value string) string {
	if f.secret {
		return name + "=REDACTED"
	}
	return name + "=" + strconv.Quote(value)
}

// set parses s into f's field of c. Its error holds no value: the caller
// names the field and its value.
func (f configField) set(c *Config, s string) error {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		*p = n
	case **int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		*p = &n
	case *Duration:
		var d Duration
		if d.UnmarshalText([]byte(s)) != nil {
			return fmt.Errorf("not a duration such as \"10s\" or \"250ms\"")
		}
		*p = d
	default:
		panic(fmt.Sprintf("ldapconn: Config field %s has a type configField cannot set", f.name))
	}
	return nil
}

// get returns f's field of c as text, and false when it is zero (unset).
func (f configField) get(c *Config) (string, bool) {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	if v.IsZero() {
		return "", false
	}
	switch p := v.Interface().(type) {
	case string:
		return p, true
	case *int:
		return strconv.Itoa(*p), true
	default:
		return fmt.Sprint(p), true
	}
}
