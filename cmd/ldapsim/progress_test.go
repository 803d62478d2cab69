package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func TestProgressLineOverwritesItself(t *testing.T) {
	var out bytes.Buffer
	l := newProgressLine(&out)
	l.update(sim.Progress{Elapsed: 2 * time.Second, Duration: 15 * time.Second, PoolSize: 4, Ops: 2000, Open: 4, Leased: 4, Waiting: 12})
	first := out.String()
	if want := "\rpool 4  2s/15s  ops 2000 (1000/s)  errors 0  open 4  leased 4  waiting 12"; !bytes.HasPrefix([]byte(first), []byte(want)) {
		t.Fatalf("first line %q; want it to begin %q", first, want)
	}
	width := (len(first) - 2) / 2 // "\r" line "\r" line
	out.Reset()
	l.clear()
	if got, want := out.String(), "\r"+strings.Repeat(" ", width)+"\r"; got != want {
		t.Fatalf("clear wrote %q; want %q, the line blanked", got, want)
	}
}
