// Package slapd runs OpenLDAP's slapd for tests.
//
// Start writes a throwaway slapd.conf into a temporary directory, loads the
// seeded directory of package ldaptest (ldaptest.BaseDN, ldaptest.PeopleDN
// with ldaptest.Users inetOrgPerson entries, ldaptest.AdminDN as rootdn) into
// an mdb database with slapadd, and runs slapd in the foreground on a free
// 127.0.0.1 port. It is the real-server counterpart of the embedded test
// server: the same assertions run against both, and slapd adds what the
// embedded server cannot do, such as killing, restarting on the same port,
// and freezing the server process.
//
// It needs Debian's slapd and ldap-utils packages (/usr/sbin/slapd,
// /usr/sbin/slapadd, modules in /usr/lib/ldap, schema in /etc/ldap/schema).
// Start skips the test when they are missing, and fails it when the
// environment variable CI is true.
//
// Access rules of the seeded directory: anonymous clients may only bind,
// users may bind with their own password, any authenticated identity may
// read everything except other users' passwords, and AdminDN (the rootdn)
// may do anything. There is no size limit.
package slapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldaptest"
)

// Installation paths of Debian's slapd and ldap-utils packages. They are
// variables so that tests can pretend slapd is missing.
var (
	slapdPath   = "/usr/sbin/slapd"
	slapaddPath = "/usr/sbin/slapadd"
	modulePath  = "/usr/lib/ldap"
	schemaDir   = "/etc/ldap/schema"
)

// Time limits.
const (
	readyTimeout   = 10 * time.Second // from exec to a successful bind
	restartTimeout = 10 * time.Second // retrying a port that is still in use
	stopGrace      = 5 * time.Second  // from SIGTERM to SIGKILL
	startAttempts  = 3                // fresh ports tried by New
	probeTimeout   = time.Second      // one readiness dial or bind
)

// notInstalledMessage is the message with which Start skips, or fails under
// CI, when slapd is missing.
const notInstalledMessage = "slapd not installed: apt-get install slapd ldap-utils (CI installs it via .ci/run)"

// ErrNotInstalled is returned (wrapped) by New when the slapd or slapadd
// binary is missing.
var ErrNotInstalled = errors.New(notInstalledMessage)

// errAddrInUse marks a slapd that exited because it could not bind its port.
var errAddrInUse = errors.New("slapd: address already in use")

// Option configures a Server.
type Option func(*config)

type config struct {
	certPEM, keyPEM []byte
	clientCAPEM     []byte // WithClientCA
	ldapi           bool   // WithLDAPI
	unauthBind      bool   // WithUnauthenticatedBinds
	log             io.Writer
	logLevel        string
}

// WithTLS makes slapd serve certPEM (a PEM certificate chain, leaf first)
// with the PEM private key keyPEM: StartTLS works on URL, and slapd also
// listens for ldaps on LDAPSURL. SelfSigned makes a suitable pair.
func WithTLS(certPEM, keyPEM []byte) Option {
	return func(c *config) {
		c.certPEM = bytes.Clone(certPEM)
		c.keyPEM = bytes.Clone(keyPEM)
	}
}

// WithClientCA makes slapd ask TLS clients for a certificate and trust
// those issued by caPEM (PEM certificates; a self-signed client certificate
// is its own CA). A client that presents one may bind with SASL EXTERNAL as
// the certificate's subject DN. It needs WithTLS.
func WithClientCA(caPEM []byte) Option {
	return func(c *config) { c.clientCAPEM = bytes.Clone(caPEM) }
}

// WithLDAPI makes slapd listen on a unix socket too, at LDAPIURL. A client
// there may bind with SASL EXTERNAL as its own user
// ("gidNumber=G+uidNumber=U,cn=peercred,cn=external,cn=auth"), which the
// seeded directory lets read, as any authenticated identity. The socket is
// in the server's directory, whose path must leave room for it: a unix
// socket's path is at most 107 bytes (t.TempDir's are well within that
// unless TMPDIR is long).
func WithLDAPI() Option { return func(c *config) { c.ldapi = true } }

// WithUnauthenticatedBinds makes slapd accept RFC 4513 unauthenticated
// binds, a DN with no password, as anonymous ("allow bind_anon_dn"). slapd
// refuses them by default with unwillingToPerform.
func WithUnauthenticatedBinds() Option { return func(c *config) { c.unauthBind = true } }

// WithLogOutput sends slapd's standard error (and output) to w, for
// debugging. The default discards it. w must be safe to write to until Stop
// (or the test's cleanup) returns; slapd writes nothing afterwards.
func WithLogOutput(w io.Writer) Option {
	return func(c *config) { c.log = w }
}

// WithLogLevel sets slapd's debug level (its -d argument, for example
// "stats" to log every operation, or "any"). The default is "none", which
// logs only start, stop and fatal errors. It matters only together with
// WithLogOutput.
func WithLogLevel(level string) Option {
	return func(c *config) { c.logLevel = level }
}

// Server is a slapd process serving the seeded directory. Its methods are
// safe for concurrent use.
type Server struct {
	dir     string
	conf    string
	cfg     config
	port    int
	tlsPort int // 0 without TLS

	mu   sync.Mutex
	proc *process // the current or last process; nil only during New
}

// Start starts a slapd for the test in a directory from t.TempDir and stops
// it when the test ends. It skips the test when slapd is not installed,
// unless the environment variable CI is true, in which case it fails it.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if err := checkInstalled(); err != nil {
		notInstalled(t, err)
		return nil
	}
	s, err := New(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("slapd: %v", err)
	}
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("slapd: %v", err)
		}
	})
	return s
}

// notInstalled skips t, or fails it when a missing slapd is fatal.
func notInstalled(t testing.TB, err error) {
	t.Helper()
	msg := notInstalledMessage + ": " + err.Error()
	if missingIsFatal(os.Getenv("CI")) {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// missingIsFatal reports whether a missing slapd fails the test rather than
// skipping it, given the value of the CI environment variable.
func missingIsFatal(ci string) bool {
	fatal, err := strconv.ParseBool(strings.TrimSpace(ci))
	return err == nil && fatal
}

// checkInstalled returns an error when slapd or slapadd is missing.
func checkInstalled() error {
	for _, p := range []string{slapdPath, slapaddPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", p)
		}
	}
	return nil
}

// New creates the configuration and the seeded database of a slapd in dir
// (created if needed; it must not hold a database already), starts slapd on
// a free loopback port and waits until it accepts binds. The caller must
// call Stop. Tests should use Start.
func New(dir string, opts ...Option) (*Server, error) {
	cfg := config{log: io.Discard, logLevel: "none"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = io.Discard
	}
	if err := checkInstalled(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, cfg: cfg, conf: filepath.Join(dir, "slapd.conf")}
	if cfg.ldapi && len(s.socketPath()) > maxSocketPath {
		return nil, fmt.Errorf("slapd: WithLDAPI: socket path %s is longer than %d bytes; use a shorter directory (TMPDIR)", s.socketPath(), maxSocketPath)
	}
	if err := s.setup(); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if s.port, s.tlsPort, err = freePorts(cfg.certPEM != nil); err != nil {
			return nil, err
		}
		p, err := s.launch()
		if err == nil {
			s.proc = p
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return nil, err
		}
	}
}

// setup writes the configuration and loads the seed with slapadd.
func (s *Server) setup() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(schemaDir, "inetorgperson.schema")); err != nil {
		return fmt.Errorf("slapd: schema missing (package slapd): %w", err)
	}
	db := filepath.Join(s.dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		return fmt.Errorf("slapd: database directory: %w", err)
	}
	var tlsFiles [2]string
	if s.cfg.certPEM != nil {
		tlsFiles = [2]string{filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")}
		if err := os.WriteFile(tlsFiles[0], s.cfg.certPEM, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(tlsFiles[1], s.cfg.keyPEM, 0o600); err != nil {
			return err
		}
	}
	caFile := ""
	if s.cfg.clientCAPEM != nil {
		caFile = filepath.Join(s.dir, "client-ca.pem")
		if err := os.WriteFile(caFile, s.cfg.clientCAPEM, 0o600); err != nil {
			return err
		}
	}
	conf, err := slapdConf(s.dir, db, confTLS{tlsFiles[0], tlsFiles[1], caFile}, s.cfg.unauthBind)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.conf, conf, 0o600); err != nil {
		return err
	}
	seed := filepath.Join(s.dir, "seed.ldif")
	if err := os.WriteFile(seed, seedLDIF(), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(slapaddPath, "-q", "-f", s.conf, "-l", seed)
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("slapd: slapadd: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// freePorts returns one free loopback port, or two when tls is set. They
// are free now; slapd may still lose a race for them.
func freePorts(tls bool) (port, tlsPort int, err error) {
	n := 1
	if tls {
		n = 2
	}
	ports := make([]int, 2)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("slapd: free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// URL returns the ldap:// URL of the server, for example
// "ldap://127.0.0.1:38211". It stays the same across Restart.
func (s *Server) URL() string {
	return "ldap://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// LDAPSURL returns the ldaps:// URL of the server when it was started with
// WithTLS, and "" otherwise.
func (s *Server) LDAPSURL() string {
	if s.tlsPort == 0 {
		return ""
	}
	return "ldaps://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// LDAPIURL returns the ldapi:// URL of the server's unix socket when it was
// started with WithLDAPI, and "" otherwise: the socket path percent-encoded,
// as OpenLDAP writes it ("ldapi://%2Ftmp%2F...%2Fldapi").
func (s *Server) LDAPIURL() string {
	if !s.cfg.ldapi {
		return ""
	}
	var b strings.Builder
	b.WriteString("ldapi://")
	for _, c := range []byte(s.socketPath()) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// LDAPIPath returns the path of the server's unix socket when it was
// started with WithLDAPI, and "" otherwise. go-ldap's DialURL takes it as
// "ldapi://" + path; it cannot read LDAPIURL's host-encoded form.
func (s *Server) LDAPIPath() string {
	if !s.cfg.ldapi {
		return ""
	}
	return s.socketPath()
}

// socketPath is where slapd listens with WithLDAPI.
func (s *Server) socketPath() string { return filepath.Join(s.dir, "ldapi") }

// maxSocketPath is the longest unix socket path: sun_path holds 108 bytes
// on Linux, its terminating NUL included.
const maxSocketPath = 107

// PID returns the process id of the running slapd, or 0 when it is not
// running (after Stop or Kill).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Stop stops slapd: SIGTERM, and SIGKILL if it has not exited within a few
// seconds (which Stop reports as an error). It also resumes a frozen slapd
// so that it can shut down. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	return s.proc.stop()
}

// Kill kills slapd with SIGKILL, as a crash would, and returns once it has
// exited. Killing a stopped server does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	return s.proc.kill()
}

// Restart starts slapd again on the same port(s) with the same database,
// stopping it first if it is still running, and waits until it accepts
// binds. It retries for a few seconds while the port is still in use.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		if err := s.proc.stop(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(restartTimeout)
	for {
		p, err := s.launch()
		if err == nil {
			s.proc = p
			return nil
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Freeze suspends slapd with SIGSTOP: connections stay open and new ones
// are accepted by the kernel, but nothing is answered until Thaw.
func (s *Server) Freeze() error {
	if err := s.signal(sigStop); err != nil {
		return err
	}
	s.mu.Lock()
	pid := s.proc.cmd.Process.Pid
	s.mu.Unlock()
	waitStopped(pid)
	return nil
}

// waitStopped waits, up to a second, until every thread of process pid is
// stopped: a signal is delivered after kill returns, and a thread may finish
// the reply it was writing. Where /proc cannot tell, it returns at once.
func waitStopped(pid int) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return
		}
		stopped := true
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			// The state follows the command name, which is in parentheses.
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) {
				return
			}
			if st := b[i+2]; st != 'T' && st != 't' {
				stopped = false
			}
		}
		if stopped {
			return
		}
		time.Sleep(time.Millisecond) // polls the kernel's state; nothing to wait on instead
	}
}

// Thaw resumes a frozen slapd with SIGCONT.
func (s *Server) Thaw() error { return s.signal(sigCont) }

func (s *Server) signal(sig os.Signal) error {
	if sig == nil {
		return errors.New("slapd: signal not supported on this platform")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return errors.New("slapd: not running")
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("slapd: %v: %w", sig, err)
	}
	return nil
}

// listenURLs is slapd's -h argument.
func (s *Server) listenURLs() string {
	urls := s.URL() + "/"
	if s.tlsPort != 0 {
		urls += " " + s.LDAPSURL() + "/"
	}
	if s.cfg.ldapi {
		urls += " " + s.LDAPIURL()
	}
	return urls
}

// launch starts a slapd process and waits until it accepts binds. A slapd
// that exits because its port is taken yields an error wrapping
// errAddrInUse.
func (s *Server) launch() (*process, error) {
	cmd := exec.Command(slapdPath, "-f", s.conf, "-h", s.listenURLs(), "-d", s.cfg.logLevel)
	cmd.Dir = s.dir
	p := &process{cmd: cmd, done: make(chan struct{})}
	w := io.MultiWriter(&p.stderr, s.cfg.log)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("slapd: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// waitReady dials and binds as AdminDN until it works, slapd exits, or
// readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	delay := 5 * time.Millisecond
	for {
		err := s.probe()
		if err == nil {
			return nil
		}
		if p.exited() {
			return p.startupError()
		}
		if time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("slapd: not ready after %v: %v; log: %s", readyTimeout, err, p.stderr.String())
		}
		t := time.NewTimer(delay)
		select {
		case <-p.done:
			t.Stop()
			return p.startupError()
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// probe dials the server and binds as AdminDN.
func (s *Server) probe() error {
	conn, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: probeTimeout}))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetTimeout(probeTimeout)
	return conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword)
}

// process is one run of slapd.
type process struct {
	cmd    *exec.Cmd
	stderr tail
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's result, set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startupError describes why a process exited before it was ready.
func (p *process) startupError() error {
	<-p.done
	log := p.stderr.String()
	if strings.Contains(log, "errno=98") || strings.Contains(log, "Address already in use") {
		return fmt.Errorf("%w: %s", errAddrInUse, log)
	}
	return fmt.Errorf("slapd: exited during startup (%v): %s", p.err, log)
}

// stop sends SIGTERM (and SIGCONT, in case it is frozen), then SIGKILL
// after stopGrace, and waits for the process to exit.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	if sigTerm == nil {
		return p.kill()
	}
	if err := p.cmd.Process.Signal(sigTerm); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("slapd: SIGTERM: %w", err)
	}
	if sigCont != nil {
		_ = p.cmd.Process.Signal(sigCont)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	p.kill()
	return fmt.Errorf("slapd: pid %d did not exit within %v of SIGTERM; killed it", p.cmd.Process.Pid, stopGrace)
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("slapd: SIGKILL: %w", err)
	}
	<-p.done
	return nil
}

// tail keeps the last tailSize bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 8 << 10

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - tailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
