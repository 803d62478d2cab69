package engine_test

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/fairpool/ldappool/engine"
)

// A rebind refused because the key is wrong reaches the waiter at once; the
// pool does not try the key again with a dial.
func TestRejectedRebindIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &rebindingConnector{rebindErr: fmt.Errorf("invalid credentials: %w", engine.ErrKeyRejected)}
		p := newPool(t, rc, engine.WithMaxSize(1))
		mustLease(t, p, keyA).Release()
		_, err := p.Lease(t.Context(), keyB)
		if !errors.Is(err, engine.ErrKeyRejected) {
			t.Fatalf("Lease = %v; want the rejection", err)
		}
		if d := rc.dials("B"); d != 0 {
			t.Fatalf("%d dials for the rejected key after a refused rebind; want 0", d)
		}
	})
}
