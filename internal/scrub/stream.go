package scrub

// stream is the scanning state over a window of input. The window is owned
// by the caller; offsets here are relative to its start and are moved by
// shift when the caller discards a processed prefix.
type stream struct {
	a   *automaton
	pl  []string // placeholder by pair index
	st  uint32   // DFA state after buf[:pos]
	pos int      // bytes of the window fed to the DFA
	// done is the length of the window prefix that has been emitted or
	// replaced.
	done int
	// A complete match that a longer or further-left one may still beat.
	has        bool
	cs, ce, cp int
	n          int64 // replacements so far
}

// end says what run does with bytes it cannot yet decide on.
type end int

const (
	more  end = iota // more input follows: hold them back
	flush            // clean end of input: emit them
	drop             // input failed: drop a tail that may begin a needle
)

// run scans buf[s.pos:] and appends to dst everything that is decided: text
// that cannot be part of a match, and placeholders for matches.
func (s *stream) run(dst, buf []byte, e end) []byte {
	a := s.a
	i, st := s.pos, s.st
	for i < len(buf) {
		if !s.has && st < a.special {
			i, st = a.skip(buf, i, st)
		} else {
			st = a.step(st, a.class[buf[i]])
			i++
		}
		k := a.index(st)
		// A later-ending needle beats the candidate only if it starts
		// further left or at the same place (then it is longer).
		if o := int(a.out[k]); o > 0 && (!s.has || i-o <= s.cs) {
			s.has, s.cs, s.ce, s.cp = true, i-o, i, int(a.outID[k])
		}
		// The candidate is final once no live partial match starts at or
		// before it, or the live one starting there cannot grow.
		if s.has {
			if live := i - int(a.depth[k]); live > s.cs || live == s.cs && a.leaf[k] {
				dst, i, st = s.commit(dst, buf), s.ce, 0
			}
		}
	}
	s.pos, s.st = i, st
	switch {
	case e != more && s.has:
		// No more input can extend or beat the candidate: take it and
		// rescan after it.
		dst = s.commit(dst, buf)
		s.pos, s.st = s.ce, 0
		return s.run(dst, buf, e)
	case e == flush:
		dst = append(dst, buf[s.done:]...)
		s.done = len(buf)
	default:
		// Keep the candidate and any live partial match, which may start
		// before it.
		safe := i - int(a.depth[a.index(st)])
		if s.has {
			safe = min(safe, s.cs)
		}
		dst = append(dst, buf[s.done:safe]...)
		s.done = safe
		if e == drop {
			s.done = len(buf)
		}
	}
	return dst
}

func (s *stream) commit(dst, buf []byte) []byte {
	dst = append(dst, buf[s.done:s.cs]...)
	dst = append(dst, s.pl[s.cp]...)
	s.done, s.has = s.ce, false
	s.n++
	return dst
}

// shift forgets the first n bytes of the window.
func (s *stream) shift(n int) {
	s.pos -= n
	s.done -= n
	s.cs -= n
	s.ce -= n
}
