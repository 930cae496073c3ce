package scrub

// The skip scan finds where the first form in a text may start without
// stepping the automaton through every byte, in the manner of Wu and
// Manber's multi-pattern search. Every form is at least gramLen bytes
// long, so one that starts at s covers the window b[s:s+gramLen]. The
// scan looks at the two bytes that end a window: gramShift says how far
// the window can move before those two bytes could sit where they occur
// in the first gramLen bytes of some form (gramLen-1 if they occur in
// none). Where it says 0, a form may start at the window's start, and a
// walk down the trie from there says whether one does. On ordinary text
// the window moves by most of gramLen at each step.
//
// Walks that fail cost extra steps; should they ever exceed the text's
// length (text made of near-misses of a repetitive secret), the scan
// hands over to the automaton, so the cost stays linear. The streaming
// Reader does not use the skip scan: it holds state across reads.

// minGramLen is the shortest gramLen worth a table: below it, the window
// moves too little to beat stepping through every byte.
const minGramLen = 8

// buildSkip fills gramLen and gramShift, unless some needle is shorter
// than minGramLen.
func (a *automaton) buildSkip(needles []needle) {
	m := a.maxLen
	for _, n := range needles {
		m = min(m, len(n.text))
	}
	if m < minGramLen {
		return
	}
	m = min(m, 256) // shifts fit a byte
	a.gramLen = m
	a.gramShift = make([]uint8, a.stride*a.stride)
	for i := range a.gramShift {
		a.gramShift[i] = uint8(m - 1)
	}
	for _, n := range needles {
		for q := 1; q < m; q++ {
			g := a.class[n.text[q-1]]*a.stride + a.class[n.text[q]]
			a.gramShift[g] = min(a.gramShift[g], uint8(m-1-q))
		}
	}
}

// firstStart returns -1 if no needle occurs in b. Otherwise it returns an
// offset before which no needle starts, and after which one occurs. It
// only reads b, for strings and byte slices alike, and allocates nothing.
func firstStart[T ~string | ~[]byte](a *automaton, b T) int {
	if a.gramShift == nil {
		return dfaFirstStart(a, b)
	}
	p, sure := skipFirstStart(a, b)
	if sure || p < 0 {
		return p
	}
	// No needle starts before p: the automaton takes it from there.
	if q := dfaFirstStart(a, b[p:]); q >= 0 {
		return p + q
	}
	return -1
}

// skipFirstStart returns where the first needle in b starts, or -1, and
// true; or, once failed walks have cost more steps than b has bytes, an
// offset before which no needle starts, and false.
func skipFirstStart[T ~string | ~[]byte](a *automaton, b T) (int, bool) {
	m, stride, shift, class := a.gramLen, a.stride, a.gramShift, &a.class
	budget := len(b)
	for e := m - 1; e < len(b); {
		if sh := shift[class[b[e-1]]*stride+class[b[e]]]; sh > 0 {
			e += int(sh)
			continue
		}
		s := e - (m - 1)
		n, found := walk(a, b, s)
		if found {
			return s, true
		}
		if budget -= n; budget < 0 {
			return s, false
		}
		e++
	}
	return -1, true
}

// walk follows the trie from the root along b[s:] and reports whether a
// needle starts at s, and how many bytes it stepped over.
func walk[T ~string | ~[]byte](a *automaton, b T, s int) (int, bool) {
	st := uint32(0)
	for i := s; i < len(b); i++ {
		st = a.step(st, a.class[b[i]])
		k, n := a.index(st), i-s+1
		if int(a.depth[k]) != n {
			return n, false // the automaton fell back: no trie edge
		}
		if int(a.out[k]) == n {
			return n, true // a needle is the whole path from s
		}
	}
	return len(b) - s, false
}
