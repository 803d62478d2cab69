package engine

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Background upkeep: warm connections, replacements, pruning, validation.

// replace remembers to dial a connection of key, once nobody waits, in place
// of one that failed a background check.
func (s *supervisor[C]) replace(key Key) {
	if len(s.replacements) < s.cfg.maxSize {
		s.replacements = append(s.replacements, key)
	}
}

// refill dials in the background for WithMinIdle and replacements, unless a
// backoff timer is pending after a failure. A key whose credentials were
// refused is left alone until a caller's lease for it succeeds.
func (s *supervisor[C]) refill() {
	if s.closed || s.timers[timerRefill] != nil || s.waiters.Len() > 0 {
		return
	}
	if k := s.cfg.defaultKey; k != nil && !s.rejected[k.Name] {
		for s.conns.idleOf(k.Name)+s.bgDialing < s.cfg.minIdle && s.canDial(false) {
			s.dial(nil, *k, false)
		}
	}
	for len(s.replacements) > 0 && s.canDial(false) {
		k := s.replacements[0]
		s.replacements = s.replacements[1:]
		if !s.rejected[k.Name] {
			s.dial(nil, k, true)
		}
	}
}

// armRefill delays background dials after a failure by the next backoff
// interval. A BackOff that says Stop (one with a MaxElapsedTime) gets its
// longest interval instead, not a dial at once.
func (s *supervisor[C]) armRefill() {
	if s.timers[timerRefill] == nil && !s.closed {
		d := s.back.NextBackOff()
		if d == backoff.Stop {
			d = maxRefillDelay
		}
		s.timers[timerRefill] = s.a.After(d, message[C]{kind: mRefill})
	}
}

// maxRefillDelay is the background dials' delay after a BackOff said Stop.
const maxRefillDelay = 30 * time.Second

// prune closes idle connections past their lifetime, idle too long (down to
// WithMinIdle of them), or above the max size.
func (s *supervisor[C]) prune() {
	now := s.now
	for _, e := range s.conns.idleEntries() {
		switch {
		case !now.Before(e.expires):
			s.c.Expiries++
			s.closeEntry(e, "lifetime over")
		case s.cfg.idleTimeout > 0 && now.Sub(e.idleAt) >= s.cfg.idleTimeout && s.conns.idle > s.cfg.minIdle,
			s.conns.open-s.conns.closing > s.cfg.maxSize:
			s.c.IdleClosed++
			s.closeEntry(e, "idle")
		}
	}
}

// validateAllIdle checks, in the background, idle connections not checked
// for a validate period, at most WithMaxDialing at a time.
func (s *supervisor[C]) validateAllIdle() {
	now := s.now
	for _, e := range s.conns.idleEntries() {
		if s.bgChecks >= s.cfg.maxDialing {
			return
		}
		if now.Sub(e.checked) >= s.cfg.validatePeriod {
			s.check(e, nil, validateIdle)
		}
	}
}
