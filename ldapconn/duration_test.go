package ldapconn

import (
	"math"
	"testing"
	"time"
)

func TestDialTimeoutSaturates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		servers int
		want    time.Duration
	}{
		{"defaults", defaultConfig(), 2, 2*(5*time.Second+20*time.Second+100*time.Millisecond) + time.Second},
		{"longest connect", config{connectTimeout: math.MaxInt64, opTimeout: 1, retryMax: 1, retryDelay: 1}, 1, math.MaxInt64},
		{"longest operation", config{connectTimeout: 1, opTimeout: math.MaxInt64 / 2, retryMax: 1, retryDelay: 1}, 1, math.MaxInt64},
		{"tries times servers", config{connectTimeout: time.Hour, opTimeout: time.Hour, retryMax: 100, retryDelay: time.Hour}, math.MaxInt32, math.MaxInt64},
		{"just below", config{connectTimeout: math.MaxInt64 - 4*time.Second, opTimeout: 1, retryMax: 1, retryDelay: 1}, 1, math.MaxInt64 - 4*time.Second + 3 + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.dialTimeout(tt.servers); got != tt.want {
				t.Fatalf("dialTimeout(%d) = %v; want %v", tt.servers, got, tt.want)
			}
		})
	}
}

func TestSaturatingArithmetic(t *testing.T) {
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"add", satAdd(time.Second, time.Second), 2 * time.Second},
		{"add to the limit", satAdd(math.MaxInt64-1, 1), math.MaxInt64},
		{"add past the limit", satAdd(math.MaxInt64, 1), math.MaxInt64},
		{"multiply", satMul(time.Second, 3), 3 * time.Second},
		{"multiply by zero", satMul(math.MaxInt64, 0), 0},
		{"multiply to the limit", satMul(math.MaxInt64, 1), math.MaxInt64},
		{"multiply past the limit", satMul(1<<62, 2), math.MaxInt64},
		{"multiply far past the limit", satMul(1<<62, 1<<40), math.MaxInt64},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v; want %v", tt.name, tt.got, tt.want)
		}
	}
}
