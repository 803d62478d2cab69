package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Key says what a connection is bound as: connections are pooled per key, and
// a lease is for one key.
//
// Name identifies the key; keys with equal names are the same key. It is
// printed in logs, stats and the state table, so it must never hold a secret:
// derive it (package ldapconn uses an HMAC of the credentials). Credentials is
// handed to the Connector and never printed by this package.
type Key struct {
	Name        string
	Credentials any
}

// String returns k.Name.
func (k Key) String() string { return k.Name }

// GoString returns k.Name quoted, so that %#v cannot print Credentials.
func (k Key) GoString() string { return fmt.Sprintf("engine.Key{Name: %q}", k.Name) }

// Format prints k.Name for every verb, so that %+v cannot print Credentials.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, k.GoString())
		return
	}
	fmt.Fprint(f, k.Name)
}

// LogValue logs k as its Name only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.Name) }

// Connector makes, checks and closes connections for a pool. Its methods are
// called from worker goroutines, never from the pool's supervisor, and may
// block; they must honour ctx.
type Connector[C any] interface {
	// Connect opens a connection bound for key. The context carries the
	// connect timeout and ends when the pool closes; it is not the context
	// of the caller whose lease caused the dial, so a caller that gives up
	// does not waste the connection.
	Connect(ctx context.Context, key Key) (C, error)
	// Validate reports whether conn still works. A non-nil error closes it.
	Validate(ctx context.Context, conn C) error
	// Close closes conn. Its error is logged, never returned to a caller.
	Close(conn C) error
}

// Rebinder is implemented by a Connector that can re-authenticate an open
// connection as another key, which is cheaper than closing it and dialing
// anew. The pool uses it when the oldest waiter wants a key for which no
// connection is idle and the pool is full.
type Rebinder[C any] interface {
	Rebind(ctx context.Context, conn C, key Key) error
}

// Classifier is implemented by a Connector that can tell, from an
// operation's error and the connection itself, whether the connection is
// unusable (network failure, closed connection) rather than the operation
// having failed. Pool.Broken asks it; Do discards such a connection and
// retries once.
type Classifier[C any] interface {
	Broken(conn C, err error) bool
}

// Lifetimer is implemented by a Connector that wants some connections to live
// shorter than the pool's maximum lifetime: package ldapconn gives connections
// to a fallback server a short life so that the pool fails back soon.
type Lifetimer[C any] interface {
	Lifetime(conn C, max time.Duration) time.Duration
}

// Liveness is implemented by a Connector that can tell at once, without I/O,
// that a connection is dead (its peer closed it: a server restart, an idle
// cut). The supervisor asks it before handing out an idle connection and
// closes a dead one instead, so the caller gets a live one. Alive is called
// on the supervisor goroutine and must not block.
type Liveness[C any] interface {
	Alive(conn C) bool
}
