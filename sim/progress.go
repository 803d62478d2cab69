package sim

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressLine keeps one status line up to date on a terminal: each Update
// returns the cursor to the start of the line and overwrites it. Its methods
// are safe for concurrent use.
type ProgressLine struct {
	mu    sync.Mutex
	w     io.Writer
	width int // of the last line written, to blank out its tail
}

// NewProgressLine returns a ProgressLine writing to w, usually os.Stderr.
func NewProgressLine(w io.Writer) *ProgressLine { return &ProgressLine{w: w} }

// Update rewrites the line with p. Pass it as Config.Progress.
func (l *ProgressLine) Update(p Progress) {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Ops) / p.Elapsed.Seconds()
	}
	line := fmt.Sprintf("pool %d  %v/%v  ops %d (%.0f/s)  errors %d  open %d  leased %d  waiting %d",
		p.PoolSize, p.Elapsed.Round(time.Second), p.Duration, p.Ops, rate, p.Errors, p.Open, p.Leased, p.Waiting)
	l.write(line)
}

// Clear blanks the line, so that what is printed next starts on a clean one.
func (l *ProgressLine) Clear() { l.write("") }

func (l *ProgressLine) write(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if line == "" && l.width == 0 {
		return
	}
	pad := max(l.width-len(line), 0)
	fmt.Fprintf(l.w, "\r%s%s\r%s", line, strings.Repeat(" ", pad), line)
	l.width = len(line)
}
