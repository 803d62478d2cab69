package engine

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Lease after Close has been called, and to
	// every waiter still queued when Close is called.
	ErrClosed = errors.New("engine: pool closed")

	// ErrExhausted is returned at once by Lease on a pool made with
	// WithFailFast when no connection can be handed out or dialed without
	// waiting (Keystone's MaxConnectionReachedError).
	ErrExhausted = errors.New("engine: pool exhausted")

	// ErrWaitTimeout is returned by Lease when the wait set with
	// WithWaitTimeout passed before a connection was free. It satisfies
	// errors.Is(err, context.DeadlineExceeded) too.
	ErrWaitTimeout error = waitTimeout{}

	// ErrBroken may be wrapped by the function given to Do to say that the
	// connection is unusable: Do then discards it instead of releasing it.
	ErrBroken = errors.New("engine: connection broken")

	// ErrKeyRejected is wrapped by a Connector's Connect or Rebind error when
	// the key itself was refused (a wrong password): the waiter gets the
	// error at once and the pool makes no second attempt with the key, since
	// retried wrong passwords lock accounts.
	ErrKeyRejected = errors.New("engine: key rejected")
)

type waitTimeout struct{}

func (waitTimeout) Error() string { return "engine: wait timeout" }

func (waitTimeout) Is(target error) bool { return target == context.DeadlineExceeded }

// ConnectError is returned by Lease when the dial made for it failed. It
// unwraps to the Connector's error.
type ConnectError struct {
	Key string // the key's name
	Err error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("engine: connect for %s: %v", e.Key, e.Err) }

// Unwrap returns the Connector's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// OptionError is returned by New when an option's value is invalid.
type OptionError struct {
	Option string // the option as written, with its value: "WithMaxSize(0)"
	Reason string
}

func (e *OptionError) Error() string { return "engine: " + e.Option + ": " + e.Reason }

func optionError(name string, value any, reason string) *OptionError {
	return &OptionError{Option: fmt.Sprintf("%s(%v)", name, value), Reason: reason}
}
