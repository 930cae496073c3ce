package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRunTrue measures the wall time of "tokrun -- true" against the
// raw embedded sandbox (internal/rawsandbox: the same gVisor sandbox and
// init, without the proxy, policy, key or CLI), alternating the two in one
// run so that both see the same machine. It reports the medians and their
// ratio (target: tokrun at most 1.3x the raw sandbox).
func BenchmarkRunTrue(b *testing.B) {
	if e2eSkip != "" {
		b.Skip(e2eSkip)
	}
	raw := buildRaw(b)
	w := benchWorld(b)
	var rawT, tokT []time.Duration
	// Every pair starts two sandboxes; at least 10 pairs make the medians
	// meaningful whatever b.N the framework picks.
	n := max(b.N, 10)
	b.ResetTimer()
	for range n {
		rawT = append(rawT, timed(b, exec.Command(raw, w.stateDir, "/bin/true")))
		cmd := exec.Command(tokrunBin, "--state-dir", w.stateDir, "--", "/bin/true")
		cmd.Dir = w.project
		tokT = append(tokT, timed(b, cmd))
	}
	b.StopTimer()
	r, t := median(rawT), median(tokT)
	b.ReportMetric(float64(r.Microseconds())/1000, "raw-ms")
	b.ReportMetric(float64(t.Microseconds())/1000, "tokrun-ms")
	b.ReportMetric(float64(t)/float64(r), "x-raw")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIdleMemory measures the memory (proportional set size, summed
// over tokrun, the sandbox and the gofer) of an idle "tokrun -- sleep",
// against the raw sandbox idling the same way.
func BenchmarkIdleMemory(b *testing.B) {
	if e2eSkip != "" {
		b.Skip(e2eSkip)
	}
	raw := buildRaw(b)
	w := benchWorld(b)
	var rawM, tokM []float64
	for range max(b.N, 3) {
		rawM = append(rawM, idlePSS(b, exec.Command(raw, w.stateDir, "/bin/sh", "-c", "echo ready; exec sleep 60")))
		cmd := exec.Command(tokrunBin, "--state-dir", w.stateDir, "--", "/bin/sh", "-c", "echo ready; exec sleep 60")
		cmd.Dir = w.project
		tokM = append(tokM, idlePSS(b, cmd))
	}
	slices.Sort(rawM)
	slices.Sort(tokM)
	b.ReportMetric(rawM[len(rawM)/2], "raw-MiB")
	b.ReportMetric(tokM[len(tokM)/2], "tokrun-MiB")
	b.ReportMetric(0, "ns/op")
}

type benchDirs struct{ project, stateDir string }

func benchWorld(b *testing.B) benchDirs {
	b.Helper()
	project := b.TempDir()
	state, err := os.MkdirTemp("", "tokrun-bench-state-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { removeState(b, state) })
	return benchDirs{project, state}
}

func buildRaw(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "rawsandbox")
	cmd := exec.Command("go", "build", "-o", out, "../../internal/rawsandbox")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building rawsandbox: %v\n%s", err, msg)
	}
	return out
}

func timed(b *testing.B, cmd *exec.Cmd) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// idlePSS starts cmd, waits for its "ready" line, lets it settle, and
// returns the PSS in MiB of cmd's process and every process below it.
func idlePSS(b *testing.B, cmd *exec.Cmd) float64 {
	b.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() }()
	if sc := bufio.NewScanner(pr); !sc.Scan() || sc.Text() != "ready" {
		b.Fatalf("%s did not start", cmd.Path)
	}
	go io.Copy(io.Discard, pr)
	time.Sleep(time.Second)
	var kib int
	for _, pid := range descendants(cmd.Process.Pid) {
		kib += pssKiB(pid)
	}
	return float64(kib) / 1024
}

// descendants returns pid and the processes below it. The sandbox
// detaches into its own session, so the tree is walked by parent PID.
func descendants(pid int) []int {
	parent := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			pp, _ := strconv.Atoi(fields[1])
			parent[pp] = append(parent[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parent[out[i]]...)
	}
	return out
}

func pssKiB(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
