// Package logbuf is a bytes.Buffer that is safe for concurrent use, for
// tests that capture what a pool logs from its own goroutines.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from any goroutine. The zero value is empty and
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
