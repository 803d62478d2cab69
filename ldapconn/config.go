package ldapconn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is a pool's configuration as data, for programs that read it from
// a file (JSON, YAML) or from ParseConfig and ConfigFromEnv, instead of
// writing options. NewPoolFromConfig builds a pool from it.
//
// A zero field means the default of the option it stands for, so a Config
// holds only what its source said. encoding/json reads it by the json tags;
// any YAML library that honours `yaml` tags reads it too (Duration
// implements encoding.TextUnmarshaler, which YAML libraries use for
// scalars), and this package needs no YAML dependency for it.
//
// BindPassword is never printed: Config's Format, LogValue, MarshalJSON and
// MarshalYAML show it as REDACTED or leave it out. Prefer BindPasswordFile,
// which keeps the password out of the configuration and is read at each
// dial, so a rotated password is picked up without a restart.
type Config struct {
	// Servers is the server list as NewPool takes it: URIs separated by
	// commas or white space ("ldaps://ldap1.example.org, ldaps://ldap2").
	Servers string `json:"servers" yaml:"servers"`

	// BindDN and BindPassword are the service identity (WithBind); both
	// empty is anonymous. BindPasswordFile instead names a file holding the
	// password, read at each dial and rebind without one trailing newline
	// (WithBindPasswordFunc); give one of the two.
	BindDN           string `json:"bind_dn,omitempty" yaml:"bind_dn,omitempty"`
	BindPassword     string `json:"bind_password,omitempty" yaml:"bind_password,omitempty"`
	BindPasswordFile string `json:"bind_password_file,omitempty" yaml:"bind_password_file,omitempty"`

	// StartTLS upgrades every ldap:// connection with StartTLS
	// (WithStartTLS).
	StartTLS bool `json:"start_tls,omitempty" yaml:"start_tls,omitempty"`
	// TLSCAFile is a PEM file of the certificates that a server's must
	// chain to, in place of the system's roots. TLSCertFile and TLSKeyFile
	// are a client certificate and its key, in PEM, for servers that ask
	// for one; give both or neither. TLSServerName is the name a server's
	// certificate is checked against; default the host of its URI. The
	// files are read once, by Options.
	TLSCAFile     string `json:"tls_ca_file,omitempty" yaml:"tls_ca_file,omitempty"`
	TLSCertFile   string `json:"tls_cert_file,omitempty" yaml:"tls_cert_file,omitempty"`
	TLSKeyFile    string `json:"tls_key_file,omitempty" yaml:"tls_key_file,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty" yaml:"tls_server_name,omitempty"`
	// TLSInsecureSkipVerify accepts any certificate a server shows, from
	// any name and any issuer. Anyone on the path can then pose as the
	// directory and read the bind password and every result: use it only
	// against a test server, never in production.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty" yaml:"tls_insecure_skip_verify,omitempty"`

	// Strategy is "failover" (the default), "round-robin" or
	// "fewest-connections" (WithStrategy).
	Strategy string `json:"strategy,omitempty" yaml:"strategy,omitempty"`

	ConnectTimeout   Duration `json:"connect_timeout,omitempty" yaml:"connect_timeout,omitempty"`     // WithConnectTimeout; 5s
	OperationTimeout Duration `json:"operation_timeout,omitempty" yaml:"operation_timeout,omitempty"` // WithOperationTimeout; 10s
	WaitTimeout      Duration `json:"wait_timeout,omitempty" yaml:"wait_timeout,omitempty"`           // WithWaitTimeout; 0: the caller's context
	MaxLifetime      Duration `json:"max_lifetime,omitempty" yaml:"max_lifetime,omitempty"`           // WithMaxLifetime; 10m
	// IdleTimeout is WithIdleTimeout; 5m. Its zero is the default, not
	// "never": to keep idle connections for good, give a long one ("8760h").
	IdleTimeout    Duration `json:"idle_timeout,omitempty" yaml:"idle_timeout,omitempty"`
	RetryMax       int      `json:"retry_max,omitempty" yaml:"retry_max,omitempty"`             // WithRetry's tries; 1
	RetryDelay     Duration `json:"retry_delay,omitempty" yaml:"retry_delay,omitempty"`         // WithRetry's delay; 100ms
	MaxBackoff     Duration `json:"max_backoff,omitempty" yaml:"max_backoff,omitempty"`         // WithMaxBackoff; 30s
	FailbackAfter  Duration `json:"failback_after,omitempty" yaml:"failback_after,omitempty"`   // WithFailbackAfter; 1m
	ValidatePeriod Duration `json:"validate_period,omitempty" yaml:"validate_period,omitempty"` // WithValidatePeriod; 0: never

	MaxSize   int `json:"max_size,omitempty" yaml:"max_size,omitempty"`     // WithMaxSize; 10
	MinIdle   int `json:"min_idle,omitempty" yaml:"min_idle,omitempty"`     // WithMinIdle; 0
	SoftLimit int `json:"soft_limit,omitempty" yaml:"soft_limit,omitempty"` // WithSoftLimit; 0: off
	// MaxIdle is WithMaxIdle; nil: no bound but MaxSize. It is a pointer
	// because 0 means something (close every connection on release, as
	// NoPool) and so cannot mean the default.
	MaxIdle      *int `json:"max_idle,omitempty" yaml:"max_idle,omitempty"`
	AuthPoolSize int  `json:"auth_pool_size,omitempty" yaml:"auth_pool_size,omitempty"` // WithAuthPool; 2
	MaxDialing   int  `json:"max_dialing,omitempty" yaml:"max_dialing,omitempty"`       // WithMaxDialing; 4
	OpsPerConn   int  `json:"ops_per_conn,omitempty" yaml:"ops_per_conn,omitempty"`     // WithOpsPerConn; 16
	MaxInFlight  int  `json:"max_in_flight,omitempty" yaml:"max_in_flight,omitempty"`   // WithMaxInFlight; 0: max(MaxSize, SoftLimit) × OpsPerConn

	FailFast          bool `json:"fail_fast,omitempty" yaml:"fail_fast,omitempty"`                     // WithFailFast
	NoPool            bool `json:"no_pool,omitempty" yaml:"no_pool,omitempty"`                         // WithNoPool
	ValidateOnLease   bool `json:"validate_on_lease,omitempty" yaml:"validate_on_lease,omitempty"`     // WithValidateOnLease
	ValidateOnRelease bool `json:"validate_on_release,omitempty" yaml:"validate_on_release,omitempty"` // WithValidateOnRelease
	NoHedging         bool `json:"no_hedging,omitempty" yaml:"no_hedging,omitempty"`                   // WithHedging(false)
}

// NewPoolFromConfig makes a pool over c.Servers with c's options, then
// extra (a logger, a validator: what data cannot say), which override c's.
// An invalid field is an *OptionError naming it as a Config field with its
// value ("Config.MaxSize(-1): size must be at least 1"); a bad server list
// wraps ErrBadURI. Both match ErrBadRequest.
func NewPoolFromConfig(c Config, extra ...Option) (*Pool, error) {
	opts, fields, err := c.options()
	if err != nil {
		return nil, err
	}
	p, err := NewPool(c.Servers, append(opts, extra...)...)
	var oe *OptionError
	if errors.As(err, &oe) {
		return nil, fields.rename(oe)
	}
	return p, err
}

// Options returns the options c stands for, for NewPool: one per field that
// is not zero. It reads the TLS files and checks the password file, and
// fails with an *OptionError naming the field when one cannot be used, a
// duration does not parse or the strategy is unknown. The values are
// checked against each other by NewPool; NewPoolFromConfig names the field
// in those errors too.
func (c Config) Options() ([]Option, error) {
	opts, _, err := c.options()
	return opts, err
}

// fieldNames maps an option as an error writes it ("WithMaxSize(-1)") to
// the field it came from ("Config.MaxSize(-1)").
type fieldNames map[string]string

// rename returns oe under the name of its Config field, when a field gave
// that option with that value, and names fields for options in its reason.
func (f fieldNames) rename(oe *OptionError) error {
	name, ok := f[oe.Option]
	if !ok {
		return oe
	}
	if strings.HasPrefix(oe.Option, "WithRetry(") {
		// WithRetry carries two fields; its reason says which is wrong.
		if which, ok := f["WithRetry:"+strings.Fields(oe.Reason + " ")[0]]; ok {
			name = which
		}
	}
	reason := oe.Reason
	for option, field := range optionFields {
		reason = strings.ReplaceAll(reason, option+" ", field+" ")
	}
	return &OptionError{Option: name, Reason: reason}
}

// optionFields names fields after the options that other options' reasons
// mention ("must not exceed WithMaxSize (4)").
var optionFields = map[string]string{"WithMaxSize": "MaxSize", "WithMaxBackoff": "MaxBackoff", "WithMaxIdle": "MaxIdle"}

func (c Config) options() ([]Option, fieldNames, error) {
	var opts []Option
	fields := fieldNames{}
	add := func(field string, value any, o Option, written string) {
		opts = append(opts, o)
		fields[written] = fmt.Sprintf("Config.%s(%v)", field, value)
	}
	bad := func(field string, value any, why string) error {
		return &OptionError{Option: fmt.Sprintf("Config.%s(%v)", field, value), Reason: why}
	}

	bind, err := c.bindOption()
	if err != nil {
		return nil, nil, err
	}
	if bind != nil {
		opts = append(opts, bind)
	}
	if c.StartTLS {
		opts = append(opts, WithStartTLS())
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, WithTLSConfig(tlsCfg))
	}
	if c.Strategy != "" {
		s, ok := strategies[strings.ReplaceAll(strings.ToLower(c.Strategy), "_", "-")]
		if !ok {
			return nil, nil, bad("Strategy", strconv.Quote(c.Strategy), "unknown; the strategies are failover, round-robin and fewest-connections")
		}
		opts = append(opts, WithStrategy(s))
	}

	durations := []struct {
		field string
		d     Duration
		with  func(time.Duration) Option
		name  string
	}{
		{"ConnectTimeout", c.ConnectTimeout, WithConnectTimeout, "WithConnectTimeout"},
		{"OperationTimeout", c.OperationTimeout, WithOperationTimeout, "WithOperationTimeout"},
		{"WaitTimeout", c.WaitTimeout, WithWaitTimeout, "WithWaitTimeout"},
		{"MaxLifetime", c.MaxLifetime, WithMaxLifetime, "WithMaxLifetime"},
		{"IdleTimeout", c.IdleTimeout, WithIdleTimeout, "WithIdleTimeout"},
		{"MaxBackoff", c.MaxBackoff, WithMaxBackoff, "WithMaxBackoff"},
		{"FailbackAfter", c.FailbackAfter, WithFailbackAfter, "WithFailbackAfter"},
		{"ValidatePeriod", c.ValidatePeriod, WithValidatePeriod, "WithValidatePeriod"},
	}
	for _, d := range durations {
		if d.d != 0 {
			v := time.Duration(d.d)
			add(d.field, v, d.with(v), fmt.Sprintf("%s(%v)", d.name, v))
		}
	}
	if c.RetryMax != 0 || c.RetryDelay != 0 {
		tries, delay := c.RetryMax, time.Duration(c.RetryDelay)
		if tries == 0 {
			tries = defaultConfig().retryMax
		}
		if delay == 0 {
			delay = defaultConfig().retryDelay
		}
		written := fmt.Sprintf("WithRetry(%d, %v)", tries, delay)
		add("RetryMax", tries, WithRetry(tries, delay), written)
		fields["WithRetry:tries"] = fmt.Sprintf("Config.RetryMax(%d)", tries)
		fields["WithRetry:delay"] = fmt.Sprintf("Config.RetryDelay(%v)", delay)
	}

	ints := []struct {
		field string
		n     int
		with  func(int) Option
		name  string
	}{
		{"MaxSize", c.MaxSize, WithMaxSize, "WithMaxSize"},
		{"MinIdle", c.MinIdle, WithMinIdle, "WithMinIdle"},
		{"SoftLimit", c.SoftLimit, WithSoftLimit, "WithSoftLimit"},
		{"AuthPoolSize", c.AuthPoolSize, WithAuthPool, "WithAuthPool"},
		{"MaxDialing", c.MaxDialing, WithMaxDialing, "WithMaxDialing"},
		{"OpsPerConn", c.OpsPerConn, WithOpsPerConn, "WithOpsPerConn"},
		{"MaxInFlight", c.MaxInFlight, WithMaxInFlight, "WithMaxInFlight"},
	}
	for _, n := range ints {
		if n.n != 0 {
			add(n.field, n.n, n.with(n.n), fmt.Sprintf("%s(%d)", n.name, n.n))
		}
	}
	if c.MaxIdle != nil {
		add("MaxIdle", *c.MaxIdle, WithMaxIdle(*c.MaxIdle), fmt.Sprintf("WithMaxIdle(%d)", *c.MaxIdle))
	}
	for _, b := range []struct {
		on   bool
		with func() Option
	}{
		{c.FailFast, WithFailFast},
		{c.NoPool, WithNoPool},
		{c.ValidateOnLease, WithValidateOnLease},
		{c.ValidateOnRelease, WithValidateOnRelease},
		{c.NoHedging, func() Option { return WithHedging(false) }},
	} {
		if b.on {
			opts = append(opts, b.with())
		}
	}
	return opts, fields, nil
}

var strategies = map[string]Strategy{"failover": Failover, "round-robin": RoundRobin, "fewest-connections": FewestConnections}

// bindOption returns the option of the service identity, nil for anonymous.
// It checks here what WithBind would refuse, so that the error names the
// fields, and reads the password file once so that a wrong path fails now
// rather than at the first dial.
func (c Config) bindOption() (Option, error) {
	dn := strconv.Quote(c.BindDN)
	switch {
	case c.BindPassword != "" && c.BindPasswordFile != "":
		return nil, &OptionError{Option: "Config.BindPassword(REDACTED), Config.BindPasswordFile(" + strconv.Quote(c.BindPasswordFile) + ")",
			Reason: "give one of the two"}
	case c.BindDN == "" && (c.BindPassword != "" || c.BindPasswordFile != ""):
		return nil, &OptionError{Option: "Config.BindDN(\"\")", Reason: "a password needs a bind DN"}
	case c.BindPasswordFile != "":
		source := passwordFile(c.BindPasswordFile)
		if pw, err := source(context.Background()); err != nil || pw == "" {
			if err == nil {
				err = fmt.Errorf("%s is empty: %w", c.BindPasswordFile, ErrEmptyPassword)
			}
			return nil, &OptionError{Option: "Config.BindPasswordFile(" + strconv.Quote(c.BindPasswordFile) + ")", Reason: err.Error()}
		}
		return WithBindPasswordFunc(c.BindDN, source), nil
	case c.BindPassword != "":
		return WithBind(c.BindDN, c.BindPassword), nil
	case c.BindDN != "":
		return nil, &OptionError{Option: "Config.BindDN(" + dn + ")",
			Reason: "needs BindPassword or BindPasswordFile: a DN with an empty password binds unauthenticated, checking nothing"}
	}
	return nil, nil
}

// Duration is a time.Duration written as time.ParseDuration reads it
// ("10s", "1m30s", "250ms") in JSON, YAML and the environment. A number
// is refused: 10 would be ten nanoseconds.
type Duration time.Duration

// String writes d as time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as String does; JSON and YAML write it as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration as time.ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%w: %q is not a duration such as \"10s\" or \"250ms\"", ErrBadRequest, b)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a JSON string as UnmarshalText does, and refuses a
// number with an error saying what to write instead.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) == 0 || b[0] != '"' {
		return fmt.Errorf("%w: a duration is a string with a unit, such as \"10s\", not %s", ErrBadRequest, bytes.TrimSpace(b))
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return d.UnmarshalText([]byte(s))
}
