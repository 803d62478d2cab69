package engine

// The idle connections, a LIFO stack a key. Owned by the supervisor.

func (s *supervisor[C]) pushIdle(e *entry[C]) {
	e.state, e.idleAt = eIdle, s.now
	s.idle[e.key.Name] = append(s.idle[e.key.Name], e)
	s.idleN++
}

// popIdle takes the most recently used idle connection of key, closing any
// past their lifetime on the way.
func (s *supervisor[C]) popIdle(key string) *entry[C] {
	for stack := s.idle[key]; len(stack) > 0; stack = s.idle[key] {
		e := stack[len(stack)-1]
		s.removeIdle(e)
		if s.now.Before(e.expires) {
			return e
		}
		s.c.Expiries++
		s.closeEntry(e, "lifetime over")
	}
	return nil
}

// popOldestIdle takes the connection idle longest, whatever its key.
func (s *supervisor[C]) popOldestIdle() *entry[C] {
	var oldest *entry[C]
	for _, stack := range s.idle {
		if len(stack) > 0 && (oldest == nil || stack[0].idleAt.Before(oldest.idleAt)) {
			oldest = stack[0]
		}
	}
	if oldest != nil {
		s.removeIdle(oldest)
	}
	return oldest
}

func (s *supervisor[C]) removeIdle(e *entry[C]) {
	stack := s.idle[e.key.Name]
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i] == e {
			stack = append(stack[:i], stack[i+1:]...)
			break
		}
	}
	// An emptied stack stays in the map, so that the next release of the
	// key reuses its array; prune drops the empty ones.
	s.idle[e.key.Name] = stack
	s.idleN--
}
