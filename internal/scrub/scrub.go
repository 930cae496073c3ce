package scrub

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

const (
	// MinSecretLen is the shortest secret New accepts, in bytes.
	MinSecretLen = 8
	// MaxSecretLen is the longest secret New accepts, in bytes.
	MaxSecretLen = 4096
	// MaxPlaceholderLen is the longest placeholder New accepts, in bytes.
	MaxPlaceholderLen = 256
)

// ErrConfig is wrapped by every error New returns.
var ErrConfig = errors.New("scrub: invalid pair")

// Pair is a secret and the placeholder that replaces it.
type Pair struct {
	Secret      string
	Placeholder string // non-empty, only [A-Za-z0-9_-]
}

// Scrubber replaces the secrets it was built with. It is safe for
// concurrent use. It prints redacted under every fmt verb.
type Scrubber struct {
	m *matcher // behind a pointer so that printing a Scrubber value shows no secret material
}

type matcher struct {
	a       *automaton
	fold    *automaton // the forms in ASCII lower case, for ContainsFold
	pl      []string
	needles []needle
	pairs   int
	bufs    sync.Pool // *buffers of Readers that finished, zeroed
}

// New builds a Scrubber for pairs. A secret's forms (see the package
// documentation) that several pairs share are replaced by the first such
// pair's placeholder. Errors name pairs by index and never quote a secret.
func New(pairs []Pair) (*Scrubber, error) {
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: no pairs", ErrConfig)
	}
	m := &matcher{pairs: len(pairs)}
	for i, p := range pairs {
		switch {
		case len(p.Secret) < MinSecretLen:
			return nil, fmt.Errorf("%w: pair %d: secret is shorter than %d bytes, too short to scrub without corrupting ordinary text", ErrConfig, i, MinSecretLen)
		case len(p.Secret) > MaxSecretLen:
			return nil, fmt.Errorf("%w: pair %d: secret is longer than %d bytes", ErrConfig, i, MaxSecretLen)
		case p.Placeholder == "":
			return nil, fmt.Errorf("%w: pair %d: empty placeholder", ErrConfig, i)
		case len(p.Placeholder) > MaxPlaceholderLen:
			return nil, fmt.Errorf("%w: pair %d: placeholder is longer than %d bytes", ErrConfig, i, MaxPlaceholderLen)
		case strings.IndexFunc(p.Placeholder, notPlaceholderRune) >= 0:
			return nil, fmt.Errorf("%w: pair %d: placeholder %q has characters outside [A-Za-z0-9_-]", ErrConfig, i, p.Placeholder)
		}
		m.pl = append(m.pl, p.Placeholder)
		for _, f := range forms(p.Secret) {
			m.needles = append(m.needles, needle{text: f, pair: i})
		}
	}
	// A placeholder that holds a form would put it back into the output; one
	// that a form holds could complete it with the text around it.
	for i, p := range m.pl {
		for _, n := range m.needles {
			if strings.Contains(p, n.text) || strings.Contains(n.text, p) {
				// The placeholder is not quoted: it may hold the secret.
				return nil, fmt.Errorf("%w: pair %d: placeholder overlaps an encoding of the secret of pair %d", ErrConfig, i, n.pair)
			}
		}
	}
	m.a = build(m.needles)
	var folded []needle
	seen := map[string]bool{}
	for _, n := range m.needles {
		if f := string(lowerASCII(nil, n.text)); !seen[f] {
			seen[f] = true
			folded = append(folded, needle{text: f, pair: n.pair})
		}
	}
	m.fold = build(folded)
	return &Scrubber{m: m}, nil
}

// Overlaps reports whether placeholder holds one of secret's forms, or
// one of them holds it: such a placeholder could put the secret back into
// what it stands in for, or complete it. New refuses such a pair.
func Overlaps(secret, placeholder string) bool {
	for _, f := range forms(secret) {
		if strings.Contains(placeholder, f) || strings.Contains(f, placeholder) {
			return true
		}
	}
	return false
}

func lowerASCII[T ~string | ~[]byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ContainsFold reports whether v holds a form of any secret when ASCII
// case is ignored. It is meant for header names, which HTTP compares
// without case and Go's reader rewrites in canonical case: a name cannot
// be scrubbed, only dropped. Names up to 256 bytes cost no allocation.
func (s *Scrubber) ContainsFold(v string) bool {
	var buf [256]byte
	return firstStart(s.m.fold, lowerASCII(buf[:0], v)) >= 0
}

func notPlaceholderRune(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-')
}

func (s *Scrubber) stream() stream {
	return stream{a: s.m.a, pl: s.m.pl}
}

// Replace returns v with every form of every secret replaced, and the
// number of replacements. It is meant for header values. When v holds no
// form, Replace returns v itself and allocates nothing.
func (s *Scrubber) Replace(v string) (string, int) {
	p := firstStart(s.m.a, v)
	if p < 0 {
		return v, 0
	}
	out, n := s.appendFrom(nil, []byte(v), p)
	return string(out), n
}

// AppendReplace appends src to dst with every form of every secret
// replaced, and returns the extended buffer and the number of
// replacements. It is meant for a body held whole in memory: it gives
// what a Reader would, and allocates only if dst must grow.
func (s *Scrubber) AppendReplace(dst, src []byte) ([]byte, int) {
	p := firstStart(s.m.a, src)
	if p < 0 {
		return append(dst, src...), 0
	}
	return s.appendFrom(dst, src, p)
}

// Contains reports whether b holds a form of any secret, that is whether
// AppendReplace would replace anything. It allocates nothing.
func (s *Scrubber) Contains(b []byte) bool { return firstStart(s.m.a, b) >= 0 }

// appendFrom appends src to dst with every form replaced, where no form
// starts before src[p].
func (s *Scrubber) appendFrom(dst, src []byte, p int) ([]byte, int) {
	dst = append(dst, src[:p]...)
	st := s.stream()
	dst = st.run(dst, src[p:], flush)
	return dst, int(st.n)
}

// maxHold is the most bytes a Reader holds back between reads: the
// longest form's length minus one.
func (s *Scrubber) maxHold() int { return s.m.a.maxLen - 1 }

// The printing methods have value receivers so that a Scrubber value
// prints redacted too; so does a matcher, should one ever be printed.

func (s Scrubber) redacted() string {
	pairs := 0
	if s.m != nil {
		pairs = s.m.pairs
	}
	return fmt.Sprintf("scrub.Scrubber{pairs=%d, REDACTED}", pairs)
}

// Format prints a redacted summary for every fmt verb.
func (s Scrubber) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.redacted()) }

// GoString returns a redacted summary.
func (s Scrubber) GoString() string { return s.redacted() }

// LogValue shows only the number of pairs in structured logs.
func (s Scrubber) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("pairs", s.m.pairs), slog.String("secrets", "REDACTED"))
}

func (m *matcher) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "scrub.matcher{REDACTED}") }

// Watcher tells when a form of a secret has gone by in a stream that is
// fed to it piece by piece, without holding or copying the stream: what
// the tripwire needs where bytes are only watched, not changed. It is not
// safe for concurrent use.
type Watcher struct {
	a  *automaton
	st uint32 // the automaton's state after the bytes seen
}

// Watcher returns a Watcher for s's secrets at the start of a stream.
func (s *Scrubber) Watcher() *Watcher { return &Watcher{a: s.m.a} }

// Seen feeds p, the stream's next bytes, and reports whether a form ends
// within it (it may have begun in earlier pieces). After true, the next
// call goes on from the end of that form.
func (w *Watcher) Seen(p []byte) bool {
	a, st := w.a, w.st
	for i := 0; i < len(p); {
		if st < a.special {
			if i, st = a.skip(p, i, st); st < a.special {
				break // out of input in a state without a match
			}
		} else {
			st = a.step(st, a.class[p[i]])
			i++
		}
		if a.out[a.index(st)] > 0 {
			w.st = st
			return true
		}
	}
	w.st = st
	return false
}
