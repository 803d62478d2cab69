package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fairpool/ldappool/sim"
)

// progressLine keeps one status line up to date on a terminal: each update
// returns the cursor to the start of the line and overwrites it. Its methods
// are safe for concurrent use.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	width int // of the last line written, to blank out its tail
}

// newProgressLine returns a progressLine writing to w, usually os.Stderr.
func newProgressLine(w io.Writer) *progressLine { return &progressLine{w: w} }

// update rewrites the line with p. Pass it as sim.Config.Progress.
func (l *progressLine) update(p sim.Progress) {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Ops) / p.Elapsed.Seconds()
	}
	pool := fmt.Sprint(p.PoolSize)
	if p.Depth > 1 {
		pool = fmt.Sprintf("%dx%d", p.PoolSize, p.Depth)
	}
	line := fmt.Sprintf("pool %s  %v/%v  ops %d (%.0f/s)  errors %d  open %d  leased %d  waiting %d",
		pool, p.Elapsed.Round(time.Second), p.Duration, p.Ops, rate, p.Errors, p.Open, p.Leased, p.Waiting)
	l.write(line)
}

// clear blanks the line, so that what is printed next starts on a clean one.
func (l *progressLine) clear() { l.write("") }

func (l *progressLine) write(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if line == "" && l.width == 0 {
		return
	}
	pad := max(l.width-len(line), 0)
	fmt.Fprintf(l.w, "\r%s%s\r%s", line, strings.Repeat(" ", pad), line)
	l.width = len(line)
}
