package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// Every error a caller can get is classified with errors.Is or errors.As:
//
//	wrong password          errors.Is(err, ErrInvalidCredentials)
//	empty password          errors.Is(err, ErrEmptyPassword) (also ErrBadRequest)
//	bad input               errors.Is(err, ErrBadRequest), ErrBadURI, *OptionError
//	directory down          errors.Is(err, ErrServerDown), errors.As(err, **AllServersDownError)
//	timed out               errors.Is(err, context.DeadlineExceeded): the caller's
//	                        deadline, WithWaitTimeout (ErrWaitTimeout) and the
//	                        operation timeout alike
//	pool full (fail-fast)   errors.Is(err, ErrExhausted)
//	pool closed             errors.Is(err, ErrClosed)
//	released lease          errors.Is(err, ErrLeaseReleased)
//	connection broken       IsBroken(err)
//	write may have happened errors.Is(err, ErrOutcomeUnknown) (Do, DoAs)
//	Bind inside Do          errors.Is(err, ErrSharedConnection)
//	safe to try again       IsRetryable(err)
//	the server's answer     ldap.IsErrorWithCode(err, code) (noSuchObject, ...)
//
// docs/errors.md has the same table with what to do about each.

var (
	// ErrInvalidCredentials is matched by the error of a bind that the server
	// refused with result 49. It is the caller's error: it never marks a
	// server down and is never retried, since retried wrong passwords lock
	// accounts. The error also matches ldap.IsErrorWithCode(err, 49).
	ErrInvalidCredentials = errors.New("ldapconn: invalid credentials")

	// ErrEmptyPassword is returned for a DN with no password: LDAP treats
	// that as an unauthenticated bind that succeeds without checking
	// anything. It also matches ErrBadRequest.
	ErrEmptyPassword error = &kindOf{"ldapconn: empty password", ErrBadRequest}

	// ErrBadRequest is matched by the error of a call whose arguments cannot
	// be used (an empty DN to Authenticate, a password without a DN, a bad
	// server URI, a nil request or a nil function to Do); nothing was sent
	// to a server.
	ErrBadRequest = errors.New("ldapconn: bad request")

	// ErrServerDown is matched by the error returned when no server could
	// be dialed (an *AllServersDownError).
	ErrServerDown = errors.New("ldapconn: every server is down")

	// ErrOutcomeUnknown is matched by the error of Do or DoAs when the
	// function sent a write (Add, Del, Modify, ModifyDN, PasswordModify,
	// Extended) and the connection then broke: the server may or may not
	// have applied it, so Do does not run the function again. Check the
	// directory before trying the write again.
	ErrOutcomeUnknown = errors.New("ldapconn: the connection broke after a write was sent; its outcome is unknown")

	// ErrSharedConnection is matched by the error of a call that would
	// change a shared connection's identity or security state (Bind and
	// the other binds, StartTLS, Unbind, SetTimeout) on the Client that Do
	// or Search lends: with WithOpsPerConn above 1 other operations run on
	// the same connection at once. Authenticate checks a password; Lease,
	// LeaseAs and DoAs lend a connection of the caller's own.
	ErrSharedConnection = errors.New("ldapconn: the connection is shared with other operations")

	// ErrClosed is matched by the error of every call made after Close,
	// and of the callers still waiting for a connection when it was called.
	ErrClosed = engine.ErrClosed

	// ErrExhausted is matched by the error of a lease refused at once by a
	// pool made WithFailFast.
	ErrExhausted = engine.ErrExhausted

	// ErrWaitTimeout is matched by the error of a lease that waited past
	// WithWaitTimeout; it matches context.DeadlineExceeded too.
	ErrWaitTimeout = engine.ErrWaitTimeout
)

// errConnClosed is go-ldap's own error for an operation on a closed
// connection, for the paths where go-ldap says nothing (SearchAsync ends
// without an error on a closed connection or a cancelled context).
var errConnClosed = ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed"))

var errPasswordWithoutDN error = &kindOf{"ldapconn: a password without a bind DN", ErrBadRequest}

// kindOf is a sentinel error that also matches a broader one.
type kindOf struct {
	msg  string
	kind error
}

func (e *kindOf) Error() string        { return e.msg }
func (e *kindOf) Is(target error) bool { return target == e.kind }

// OptionError is returned by NewPool for an invalid option: it names the
// option as written, with its value ("WithMaxSize(0)"), and why.
type OptionError struct {
	Option string
	Reason string
}

func (e *OptionError) Error() string { return "ldapconn: " + e.Option + ": " + e.Reason }

// Is makes every OptionError match ErrBadRequest.
func (e *OptionError) Is(target error) bool { return target == ErrBadRequest }

type credentialsError struct {
	dn  string
	err error
}

func (e *credentialsError) Error() string {
	return fmt.Sprintf("ldapconn: bind as %q: invalid credentials: %v", e.dn, e.err)
}

func (e *credentialsError) Unwrap() error { return e.err }

func (e *credentialsError) Is(target error) bool {
	return target == ErrInvalidCredentials || target == engine.ErrKeyRejected
}

// refusedError is a bind the server refused for another reason than the
// password (see refusal): its error is the server's answer (ldap.Error,
// whose code ldap.IsErrorWithCode reads), and the engine takes it as the
// key refused, so the waiter gets it at once and nothing is retried.
type refusedError struct {
	dn  string
	err error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("ldapconn: bind as %q refused: %v", e.dn, e.err)
}

func (e *refusedError) Unwrap() error { return e.err }

func (e *refusedError) Is(target error) bool { return target == engine.ErrKeyRejected }

// timeoutError is an operation that go-ldap's request timeout (the
// operation timeout) ended: it matches context.DeadlineExceeded, and unwraps
// to go-ldap's error.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string        { return "ldapconn: operation timed out: " + e.err.Error() }
func (e *timeoutError) Unwrap() error        { return e.err }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
func (e *timeoutError) Timeout() bool        { return true }
func (e *timeoutError) Temporary() bool      { return true }
func isRequestTimeout(err error) bool        { return ldapNetworkError(err, "timed out") }
func ldapNetworkError(err error, s string) bool {
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork && le.Err != nil && strings.Contains(le.Err.Error(), s)
}

// classify gives an operation's error its class: go-ldap's request timeout
// becomes a timeoutError.
func classify(err error) error {
	if err != nil && isRequestTimeout(err) {
		return &timeoutError{err}
	}
	return err
}

// go-ldap reports a connection that died under an operation with plain
// errors that wrap nothing; these are their texts.
var brokenTexts = []string{
	"unable to read LDAP response packet",
	"unable to send request",
	"ldap: connection closed",
	"ldap: response channel closed",
	"ldap: connection timed out",
}

// IsBroken reports whether err means the connection it came from is
// unusable: a network failure, a connection the server closed or reset
// (whichever shape go-ldap gives it), an operation that timed out. Such a
// connection is discarded, never pooled again. The end of a caller's
// context is not a broken connection.
func IsBroken(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, engine.ErrBroken) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var te *timeoutError
	if errors.As(err, &te) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	if ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable) {
		return true
	}
	for _, text := range brokenTexts {
		if strings.Contains(err.Error(), text) && !errors.Is(err, context.Canceled) && !isCallerDeadline(err) {
			return true
		}
	}
	return false
}

// timedOut reports whether err is an operation timeout: a slow server, not a
// dead connection, so not worth doing again at once.
func timedOut(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}

// isCallerDeadline reports whether err is a context's deadline and not an
// operation timeout.
func isCallerDeadline(err error) bool {
	var te *timeoutError
	return errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &te)
}

// IsRetryable reports whether a call that failed with err may be tried
// again as it is: nothing it asked for happened, or what it asked for was a
// read. It is true when the directory was down or busy, the pool was full or
// the wait timed out, or the connection broke; it is false for a wrong
// password (a retry may lock the account), bad input, a closed pool, a
// cancelled context and the server's answers (noSuchObject, ...). A write
// whose connection broke may or may not have been applied: check before
// trying it again.
func IsRetryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrBadRequest), errors.Is(err, ErrOutcomeUnknown),
		errors.Is(err, ErrClosed), errors.Is(err, ErrLeaseReleased), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrServerDown), errors.Is(err, ErrExhausted), errors.Is(err, ErrWaitTimeout),
		errors.Is(err, context.DeadlineExceeded), IsBroken(err):
		return true
	}
	var ce *engine.ConnectError
	return errors.As(err, &ce)
}

// opCountsAgainstServer reports whether an operation's error on an open
// connection says the server is in trouble: the operation timed out (a frozen
// or overloaded server) or the server answered busy or unavailable. A closed
// or reset connection does not: after a restart or an idle cut the server is
// fine and a new connection will do.
func opCountsAgainstServer(err error) bool {
	if err == nil {
		return false
	}
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable) {
		return true
	}
	var te *timeoutError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !isCallerDeadline(err)
}

// IsInvalidCredentials reports whether err is a bind refused with result 49.
func IsInvalidCredentials(err error) bool {
	return errors.Is(err, ErrInvalidCredentials) || ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials)
}

// refusedOnShare is the error of a call a share refuses.
func refusedOnShare(op string) error {
	return fmt.Errorf("%w: %s would change it for all of them; use Authenticate to check a password, or Lease, LeaseAs or DoAs for a connection of your own",
		ErrSharedConnection, op)
}
