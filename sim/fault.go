package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// FaultKind names what goes wrong with the server model.
type FaultKind string

// The faults the server model can play.
const (
	// Down refuses connections from From to To, and breaks every connection
	// open at From, as a server restart does.
	Down FaultKind = "down"
	// Slow multiplies operation latency by Factor from From to To.
	Slow FaultKind = "slow"
	// Drop breaks every connection open at From, as a firewall cutting idle
	// connections does; the server goes on accepting new ones.
	Drop FaultKind = "drop"
)

// DefaultSlowFactor is how much a Slow fault multiplies latency when its
// Factor is 0.
const DefaultSlowFactor = 10

// FaultError is the error of a fault that cannot be played: ParseFaults and
// Fault.Validate return it.
type FaultError struct {
	Fault  string // the fault as written
	Reason string
}

// Error writes the fault and the reason, as "sim: fault down:8s-5s: want 0 <= start < end".
func (e *FaultError) Error() string { return fmt.Sprintf("sim: fault %s: %s", e.Fault, e.Reason) }

// Fault is one event of the server model's fault schedule. Times are offsets
// from the start of a run.
type Fault struct {
	Kind     FaultKind
	From, To time.Duration // Drop uses From only
	Factor   float64       // Slow: latency multiplier; 0 means DefaultSlowFactor
}

// String writes f in the syntax ParseFaults reads.
func (f Fault) String() string {
	switch f.Kind {
	case Drop:
		return fmt.Sprintf("drop:%v", f.From)
	case Slow:
		if f.Factor != 0 && f.Factor != DefaultSlowFactor {
			return fmt.Sprintf("slow:%v-%v:x%g", f.From, f.To, f.Factor)
		}
	}
	return fmt.Sprintf("%s:%v-%v", f.Kind, f.From, f.To)
}

// Validate reports a fault whose kind is unknown or whose times make no
// sense, as a *FaultError.
func (f Fault) Validate() error {
	bad := func(why string) error { return &FaultError{Fault: f.String(), Reason: why} }
	switch f.Kind {
	case Down, Slow:
		if f.From < 0 || f.To <= f.From {
			return bad("want 0 <= start < end")
		}
	case Drop:
		if f.From < 0 {
			return bad("time must not be negative")
		}
	default:
		return bad(fmt.Sprintf("kind %q is not down, slow or drop", f.Kind))
	}
	if f.Factor < 0 || math.IsNaN(f.Factor) || math.IsInf(f.Factor, 0) {
		return bad("factor must be a non-negative number")
	}
	return nil
}

// factor returns the latency multiplier of a Slow fault.
func (f Fault) factor() float64 {
	if f.Factor == 0 {
		return DefaultSlowFactor
	}
	return f.Factor
}

// ParseFaults reads a fault schedule written as comma-separated events:
//
//	down:5s-8s       refuse connections from 5s to 8s, breaking those open at 5s
//	slow:10s-12s     operations 10 times slower from 10s to 12s
//	slow:10s-12s:x3  operations 3 times slower
//	drop:9s          break every open connection at 9s
//
// An empty string is an empty schedule. An event that does not parse is a
// *FaultError.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		f, err := parseFault(item)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFault(item string) (Fault, error) {
	bad := func(why string) (Fault, error) { return Fault{}, &FaultError{Fault: item, Reason: why} }
	kind, rest, ok := strings.Cut(item, ":")
	if !ok {
		return bad("want kind:time, as down:5s-8s, slow:10s-12s or drop:9s")
	}
	f := Fault{Kind: FaultKind(kind)}
	switch f.Kind {
	case Drop:
		at, err := time.ParseDuration(rest)
		if err != nil {
			return bad("want drop:TIME, as drop:9s")
		}
		f.From = at
	case Down, Slow:
		span, factor, hasFactor := strings.Cut(rest, ":")
		if hasFactor && f.Kind != Slow {
			return bad("only slow takes a factor")
		}
		from, to, ok := strings.Cut(span, "-")
		var err1, err2 error
		f.From, err1 = time.ParseDuration(from)
		f.To, err2 = time.ParseDuration(to)
		if !ok || err1 != nil || err2 != nil {
			return bad("want " + kind + ":START-END, as " + kind + ":5s-8s")
		}
		if hasFactor {
			x, err := strconv.ParseFloat(strings.TrimPrefix(factor, "x"), 64)
			if err != nil || !(x > 0) {
				return bad("want a positive factor, as slow:10s-12s:x3")
			}
			f.Factor = x
		}
	default:
		return bad("kind " + kind + " is not down, slow or drop")
	}
	if err := f.Validate(); err != nil {
		return bad(err.(*FaultError).Reason)
	}
	return f, nil
}
