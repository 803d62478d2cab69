package ldapconn

import (
	"testing"
	"time"
)

// The hedge delay follows the 99th percentile of the last tailSamples
// answers, and none is claimed before tailReady of them.
func TestTailWindowKeepsTheRecentNinetyNinthPercentile(t *testing.T) {
	var w tailWindow
	for i := 1; i < tailReady; i++ {
		w.add(time.Duration(i) * time.Millisecond)
	}
	if got := w.percentile99(); got != 0 {
		t.Fatalf("after %d answers: %v; want none yet", tailReady-1, got)
	}
	for i := tailReady; i <= tailSamples; i++ { // 1 ms to 256 ms
		w.add(time.Duration(i) * time.Millisecond)
	}
	if got, want := w.percentile99(), 254*time.Millisecond; got != want {
		t.Fatalf("answers of 1 to 256 ms: p99 %v; want %v", got, want)
	}
	for range tailSamples { // the old answers leave the window
		w.add(time.Millisecond)
	}
	if got := w.percentile99(); got != time.Millisecond {
		t.Fatalf("after %d answers of 1 ms: p99 %v; want 1ms", tailSamples, got)
	}
}
