package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// ErrInvalidCredentials is matched (errors.Is) by the error of a bind that
// the server refused with result 49. It is the caller's error: it never marks
// a server down and is never retried, since retried wrong passwords lock
// accounts. The error also matches ldap.IsErrorWithCode(err, 49).
var ErrInvalidCredentials = errors.New("ldapconn: invalid credentials")

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

// IsBroken reports whether err means the connection is unusable: a network
// failure, a closed connection, a timed-out operation. Such a connection is
// discarded, never pooled again.
func IsBroken(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, engine.ErrBroken) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable)
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
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// go-ldap reports its request timeout as a network error with this text.
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork && le.Err != nil &&
		strings.Contains(le.Err.Error(), "timed out")
}

// IsInvalidCredentials reports whether err is a bind refused with result 49.
func IsInvalidCredentials(err error) bool {
	return errors.Is(err, ErrInvalidCredentials) || ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials)
}
