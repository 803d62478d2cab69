package logbuf_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/internal/logbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConcurrentWritesAllLand(t *testing.T) {
	var buf logbuf.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&buf, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "\n"); n != 8 {
		t.Fatalf("%d lines after 8 concurrent writes:\n%s", n, buf.String())
	}
}
