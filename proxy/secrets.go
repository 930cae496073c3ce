package proxy

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tokrun/tokrun/internal/match"
	"github.com/tokrun/tokrun/internal/scrub"
	"github.com/tokrun/tokrun/policy"
)

// secretIndex holds, for one policy, what the proxy needs to scrub
// secrets from responses and to catch placeholders headed elsewhere. It
// is built once per policy (and placeholder registration), not per
// request.
type secretIndex struct {
	pol *policy.Policy
	gen uint64
	// scrubbers replace a secret's encodings with its placeholder.
	scrubbers map[string]*scrub.Scrubber
	// lengths are the secrets' lengths: responses are scrubbed of the
	// longest first, so that a secret holding another is replaced whole.
	lengths map[string]int
	// detectors find a secret's placeholders in their encodings.
	detectors map[string]*scrub.Scrubber
	// hosts are the sealed host patterns of each secret.
	hosts map[string][]match.HostPattern
	lower map[string][]string // placeholders in lower case, by secret
	names []string
}

// AddPlaceholders registers placeholders for a secret, in addition to the
// policy's fixed ones: the tripwire refuses requests that carry them to a
// host outside the secret's sealed binding, and scrubbing replaces echoes
// of the secret with the first registered placeholder. tokrun registers
// the random per-run placeholders it gives the sandbox.
func (s *Server) AddPlaceholders(secret string, placeholders ...string) error {
	for _, p := range placeholders {
		if err := policy.CheckPlaceholder(p); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	s.phMu.Lock()
	defer s.phMu.Unlock()
	if s.extra == nil {
		s.extra = map[string][]string{}
	}
	s.extra[secret] = append(s.extra[secret], placeholders...)
	s.phGen.Add(1)
	return nil
}

// secrets returns the index for the policy in force, building it when the
// policy or the registered placeholders changed.
func (s *Server) secrets(p *policy.Policy) *secretIndex {
	if ix := s.index.Load(); ix != nil && ix.pol == p && ix.gen == s.phGen.Load() {
		return ix // the common case: no lock on the request path
	}
	s.phMu.Lock()
	defer s.phMu.Unlock()
	gen := s.phGen.Load()
	if ix := s.index.Load(); ix != nil && ix.pol == p && ix.gen == gen {
		return ix
	}
	ix := &secretIndex{pol: p, gen: gen, scrubbers: map[string]*scrub.Scrubber{}, lengths: map[string]int{},
		detectors: map[string]*scrub.Scrubber{}, hosts: map[string][]match.HostPattern{}, lower: map[string][]string{}}
	for _, sec := range p.Secrets() {
		phs := append(slices.Clone(s.extra[sec.Name]), sec.Placeholders...)
		replacement := "tokrun-redacted-" + strings.Map(func(r rune) rune {
			if r == '.' {
				return '_'
			}
			return r
		}, sec.Name)
		if len(phs) > 0 {
			replacement = phs[0]
		}
		if sc, err := scrub.New([]scrub.Pair{{Secret: sec.Sealed.Reveal(), Placeholder: replacement}}); err == nil {
			ix.scrubbers[sec.Name] = sc
			ix.lengths[sec.Name] = len(sec.Sealed.Reveal())
		} else {
			// Policy loading refuses secrets too short to scrub, so this
			// is a placeholder that overlaps its own secret.
			s.log.Error("cannot scrub secret; its responses will be refused", "secret", sec.Name, "err", err)
		}
		for _, ph := range phs {
			ix.lower[sec.Name] = append(ix.lower[sec.Name], strings.ToLower(ph))
		}
		if len(phs) > 0 {
			pairs := make([]scrub.Pair, len(phs))
			for i, ph := range phs {
				pairs[i] = scrub.Pair{Secret: ph, Placeholder: "tokrun-tripwire"}
			}
			if d, err := scrub.New(pairs); err == nil {
				ix.detectors[sec.Name] = d
			} else {
				s.log.Error("cannot build tripwire", "secret", sec.Name, "err", err)
			}
		}
		for _, h := range sec.Sealed.Binding().Hosts {
			if hp, err := match.ParseHostPattern(h); err == nil {
				ix.hosts[sec.Name] = append(ix.hosts[sec.Name], hp)
			}
		}
		ix.names = append(ix.names, sec.Name)
	}
	s.index.Store(ix)
	return ix
}

// foreign returns the detectors of secrets whose sealed hosts do not
// include host: their placeholders must not go there.
func (ix *secretIndex) foreign(host string) []tripDetector {
	var out []tripDetector
	for _, name := range ix.names {
		d := ix.detectors[name]
		if d == nil || slices.ContainsFunc(ix.hosts[name], func(p match.HostPattern) bool { return p.Match(host) }) {
			continue
		}
		out = append(out, tripDetector{secret: name, d: d, lower: ix.lower[name]})
	}
	return out
}

type tripDetector struct {
	secret string
	d      *scrub.Scrubber
	lower  []string // the placeholders in lower case, for host names
}

// tripwireError reports a placeholder found on its way to a foreign host.
type tripwireError struct {
	secret string
	where  string // "url", "header", "body", "websocket"
}

func (e *tripwireError) Error() string {
	place := "the request " + e.where
	if e.where == "websocket" {
		place = "a WebSocket frame"
	}
	return fmt.Sprintf("a placeholder of secret %s was sent in %s to a host outside its binding", e.secret, place)
}

// checkHead looks for foreign placeholders in the request target as the
// client wrote it (origin or absolute form) and in the headers.
func checkHead(r *http.Request, dets []tripDetector) *tripwireError {
	for _, td := range dets {
		if _, n := td.d.Replace(r.RequestURI); n > 0 {
			return &tripwireError{secret: td.secret, where: "url"}
		}
		for name, vs := range r.Header {
			// A name is sent in canonical case, not as it was written.
			if td.d.ContainsFold(name) {
				return &tripwireError{secret: td.secret, where: "header"}
			}
			for _, v := range vs {
				if _, n := td.d.Replace(name + ": " + v); n > 0 {
					return &tripwireError{secret: td.secret, where: "header"}
				}
			}
		}
	}
	return nil
}

// checkDecided looks for foreign placeholders in what will actually be
// sent: the canonical host (a placeholder as a subdomain under a wildcard
// rule), the normalised path (after percent-decoding) and the decoded
// query.
func checkDecided(host, path, rawQuery string, dets []tripDetector) *tripwireError {
	// Decoded leniently: an invalid escape elsewhere must not leave the
	// rest encoded.
	q := match.LenientUnescape(rawQuery)
	for _, td := range dets {
		for _, v := range []string{host, path, q} {
			if _, n := td.d.Replace(v); n > 0 {
				return &tripwireError{secret: td.secret, where: "url"}
			}
		}
		for _, ph := range td.lower {
			if strings.Contains(host, ph) {
				return &tripwireError{secret: td.secret, where: "url"}
			}
		}
	}
	return nil
}

// tripReader passes a request body through the detectors and fails the
// read, before the bytes go anywhere, when a placeholder appears.
type tripReader struct {
	rs   []*scrub.Reader
	dets []tripDetector
	top  io.Reader
	src  io.Closer
	hit  atomic.Pointer[tripwireError] // set by the upstream client's writer

	mu   sync.Mutex
	late func(*tripwireError) // see afterResponse
}

// afterResponse arranges for fn to be called, once, with a hit found from
// now on: the upstream has begun its answer, so the request can no longer
// be refused, only cut off. It returns the hit found before, if any, and
// then keeps nothing.
func (t *tripReader) afterResponse(fn func(*tripwireError)) *tripwireError {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hit := t.hit.Load(); hit != nil {
		return hit
	}
	t.late = fn
	return nil
}

func newTripReader(body io.ReadCloser, dets []tripDetector) *tripReader {
	t := &tripReader{dets: dets, src: body}
	var r io.Reader = body
	for _, td := range dets {
		sr := td.d.Reader(r)
		t.rs = append(t.rs, sr)
		r = sr
	}
	t.top = r
	return t
}

func (t *tripReader) Read(p []byte) (int, error) {
	if hit := t.hit.Load(); hit != nil {
		return 0, hit
	}
	n, err := t.top.Read(p)
	for i, r := range t.rs {
		if r.Count() > 0 {
			hit := &tripwireError{secret: t.dets[i].secret, where: "body"}
			t.mu.Lock()
			first := t.hit.CompareAndSwap(nil, hit)
			late := t.late
			t.mu.Unlock()
			if first && late != nil {
				late(hit)
			}
			return 0, hit
		}
	}
	return n, err
}

func (t *tripReader) Close() error { return t.src.Close() }
