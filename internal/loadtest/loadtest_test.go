package loadtest

import (
	"testing"
	"time"
)

func round(base, cand time.Duration) (Result, Result) {
	return Result{Wall: base, Latencies: []time.Duration{base}}, Result{Wall: cand, Latencies: []time.Duration{cand}}
}

func TestRatioIsMedianRound(t *testing.T) {
	var c Comparison
	for _, cand := range []time.Duration{2, 4, 10} { // ratios 0.5, 0.25, 0.1
		c.Add(round(time.Second, cand*time.Second))
	}
	if got := c.Ratio(); got != 0.25 {
		t.Fatalf("Ratio = %v, want the median round's 0.25", got)
	}
}

// Relative compares the two round by round, not median with median.
func TestRelativePairsRounds(t *testing.T) {
	var a, b Comparison
	for _, walls := range [][2]time.Duration{{1, 2}, {4, 2}, {2, 8}} {
		a.Add(round(time.Second, walls[0]*time.Second))
		b.Add(round(time.Second, walls[1]*time.Second))
	}
	// a's ratios 1, 1/4, 1/2 and b's 1/2, 1/2, 1/8 have the same median;
	// per round, a is 2, 1/2 and 4 times b.
	if a.Ratio() != b.Ratio() {
		t.Fatalf("medians %v and %v should be equal", a.Ratio(), b.Ratio())
	}
	if got := a.Relative(&b); got != 2 {
		t.Fatalf("Relative = %v, want 2", got)
	}
	if got := b.Relative(&a); got != 0.5 {
		t.Fatalf("Relative = %v, want 0.5", got)
	}
	if got := a.Relative(&Comparison{}); got != 0 {
		t.Fatalf("Relative to nothing = %v, want 0", got)
	}
}
