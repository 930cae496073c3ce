package scrub

// automaton is an Aho–Corasick automaton over the needles.
//
// States no deeper than denseDepth have dense DFA rows: bytes are mapped to
// classes (every byte that occurs in no needle shares class 0) and a state
// id is its premultiplied row offset, so one step is trans[st+class[b]].
// Deeper states, reached only after denseDepth bytes of some needle, keep
// their trie edges and a failure link; this bounds the table's size by the
// number of needles rather than their total length. Ids at or above
// special belong to states that need the slow path: dense states with a
// match, then the deep states.
type automaton struct {
	class    [256]uint32
	stride   uint32
	trans    []uint32 // dense rows
	special  uint32   // first dense match row
	denseEnd uint32   // first deep state id; a deep id minus denseEnd indexes kidStart and fail
	nDense   uint32

	// Per state, by index.
	depth []int32 // length of the state's string
	out   []int32 // length of the longest needle that is a suffix, or 0
	outID []int32 // pair index of that needle
	leaf  []bool  // no needle extends the state's string

	// Deep states: trie edges kids[kidStart[j]:kidStart[j+1]] and failure link.
	kids     []edge
	kidStart []int32
	fail     []uint32

	maxLen int

	// The skip scan's table (see skip.go); nil if forms are too short
	// for it to pay.
	gramLen   int
	gramShift []uint8
}

type edge struct{ class, to uint32 }

const denseDepth = 12

type needle struct {
	text string
	pair int
}

type node struct {
	depth, own, ownID int32
	kids              []edge // to is a node index
}

func (n *node) kid(c uint32) (uint32, bool) {
	for _, e := range n.kids {
		if e.class == c {
			return e.to, true
		}
	}
	return 0, false
}

func build(needles []needle) *automaton {
	a := &automaton{}
	var used [256]bool
	for _, n := range needles {
		for i := 0; i < len(n.text); i++ {
			used[n.text[i]] = true
		}
		a.maxLen = max(a.maxLen, len(n.text))
	}
	a.stride = 1
	for b, u := range used {
		if u {
			a.class[b] = a.stride
			a.stride++
		}
	}

	// Trie. The first pair with a given form wins it.
	nodes := []node{{}}
	for _, n := range needles {
		s := uint32(0)
		for i := 0; i < len(n.text); i++ {
			c := a.class[n.text[i]]
			v, ok := nodes[s].kid(c)
			if !ok {
				v = uint32(len(nodes))
				nodes[s].kids = append(nodes[s].kids, edge{c, v})
				nodes = append(nodes, node{depth: int32(i + 1)})
			}
			s = v
		}
		if nodes[s].own == 0 {
			nodes[s].own, nodes[s].ownID = int32(len(n.text)), int32(n.pair)
		}
	}

	// Breadth-first: failure links, and outputs inherited along them. Only
	// the longest needle ending at a position matters for leftmost-longest,
	// and a state's own needle is longer than any it inherits.
	fail := make([]uint32, len(nodes))
	out := make([]int32, len(nodes))
	outID := make([]int32, len(nodes))
	goTo := func(s, c uint32) uint32 {
		for {
			if v, ok := nodes[s].kid(c); ok {
				return v
			}
			if s == 0 {
				return 0
			}
			s = fail[s]
		}
	}
	order := []uint32{0}
	for q := 0; q < len(order); q++ {
		s := order[q]
		out[s], outID[s] = nodes[s].own, nodes[s].ownID
		if out[s] == 0 {
			out[s], outID[s] = out[fail[s]], outID[fail[s]]
		}
		for _, e := range nodes[s].kids {
			if s != 0 {
				fail[e.to] = goTo(fail[s], e.class)
			}
			order = append(order, e.to)
		}
	}

	// Ids: dense states without a match, dense states with one, deep states.
	var plain, matching, deep []uint32
	for _, s := range order {
		switch {
		case nodes[s].depth > denseDepth:
			deep = append(deep, s)
		case out[s] == 0:
			plain = append(plain, s)
		default:
			matching = append(matching, s)
		}
	}
	a.nDense = uint32(len(plain) + len(matching))
	a.special = uint32(len(plain)) * a.stride
	a.denseEnd = a.nDense * a.stride
	id := make([]uint32, len(nodes))
	all := append(append(plain, matching...), deep...)
	for k, s := range all {
		if k < int(a.nDense) {
			id[s] = uint32(k) * a.stride
		} else {
			id[s] = a.denseEnd + uint32(k) - a.nDense
		}
	}
	a.depth = make([]int32, len(all))
	a.out = make([]int32, len(all))
	a.outID = make([]int32, len(all))
	a.leaf = make([]bool, len(all))
	a.trans = make([]uint32, a.denseEnd)
	a.kidStart = make([]int32, 0, len(deep)+1)
	for k, s := range all {
		a.depth[k], a.out[k], a.outID[k], a.leaf[k] = nodes[s].depth, out[s], outID[s], len(nodes[s].kids) == 0
		if k < int(a.nDense) {
			continue
		}
		a.kidStart = append(a.kidStart, int32(len(a.kids)))
		a.fail = append(a.fail, id[fail[s]])
		for _, e := range nodes[s].kids {
			a.kids = append(a.kids, edge{e.class, id[e.to]})
		}
	}
	a.kidStart = append(a.kidStart, int32(len(a.kids)))
	// Dense rows in breadth-first order: a missing edge goes where the
	// failure state's (already complete) row goes. The root's go to itself.
	for _, s := range order {
		if nodes[s].depth > denseDepth {
			break
		}
		row := a.trans[id[s]:][:a.stride]
		if s != 0 {
			copy(row, a.trans[id[fail[s]]:][:a.stride])
		}
		for _, e := range nodes[s].kids {
			row[e.class] = id[e.to]
		}
	}
	a.buildSkip(needles)
	return a
}

// index maps a state id to its index in the per-state slices.
func (a *automaton) index(st uint32) uint32 {
	if st < a.denseEnd {
		return st / a.stride
	}
	return a.nDense + st - a.denseEnd
}

// step is one transition from any state on byte class c.
func (a *automaton) step(st, c uint32) uint32 {
	for st >= a.denseEnd {
		j := st - a.denseEnd
		for _, e := range a.kids[a.kidStart[j]:a.kidStart[j+1]] {
			if e.class == c {
				return e.to
			}
		}
		st = a.fail[j]
	}
	return a.trans[st+c]
}

// skip advances from a dense state without a match over b[i:] until it
// enters a special state or runs out of input. It is the hot loop.
func (a *automaton) skip(b []byte, i int, st uint32) (int, uint32) {
	trans, class, special := a.trans, &a.class, a.special
	for i < len(b) {
		st = trans[st+class[b[i]]]
		i++
		if st >= special {
			break
		}
	}
	return i, st
}

// dfaFirstStart is firstStart stepping the automaton through every byte:
// it returns the start of the longest live partial match when the scan
// first completes a needle. No needle can start before it (its prefix up
// to that point would be a longer live partial match), and none ends
// before it (the scan would have stopped there).
func dfaFirstStart[T ~string | ~[]byte](a *automaton, b T) int {
	trans, class, special := a.trans, &a.class, a.special
	st := uint32(0)
	for i := 0; i < len(b); {
		if st < special {
			st = trans[st+class[b[i]]]
		} else {
			st = a.step(st, class[b[i]])
		}
		i++
		if st >= special {
			if k := a.index(st); a.out[k] > 0 {
				return i - int(a.depth[k])
			}
		}
	}
	return -1
}
