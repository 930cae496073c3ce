// Package examples holds no code: it tests the files under examples/
// (policies, deployment manifests, monitoring rules and dashboards) against
// the real policy loader, the real tokproxy CLI and, when installed, the
// real systemd-analyze and promtool, so that the examples cannot drift from
// the code they describe.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// testKeySource is the public test key; its private half is in the
// repository. git does not keep its 0600 mode, so TestMain copies it to
// testKey with that mode: the CLI warns about wider modes.
const testKeySource = "../testdata/sealing/key.txt"

// testKey is the private copy of testKeySource made by TestMain.
var testKey string

// tokproxyBin is the tokproxy binary built from this tree by TestMain.
var tokproxyBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "examples-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	key, err := os.ReadFile(testKeySource)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testKey = filepath.Join(dir, "key.txt")
	if err := os.WriteFile(testKey, key, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tokproxyBin = filepath.Join(dir, "tokproxy")
	cmd := exec.Command("go", "build", "-o", tokproxyBin, "../cmd/tokproxy")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building tokproxy: %v\n", err)
		return 1
	}
	return m.Run()
}

// tokproxy runs the built tokproxy with args and returns its stdout and
// stderr.
func tokproxy(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(tokproxyBin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// daemon is a running tokproxy serve.
type daemon struct {
	cmd    *exec.Cmd
	admin  string     // the admin listener's address
	done   chan error // Wait's result, once
	waited bool

	mu  sync.Mutex
	buf bytes.Buffer // stderr
}

// startTokproxy starts tokproxy with args, which must include an --admin
// address (port 0 is fine), and waits until /readyz answers 200. The
// process is killed at the end of the test if still running.
func startTokproxy(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(tokproxyBin, args...), done: make(chan error, 1)}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !d.waited {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	adminAddr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg="admin serving" listen=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.buf.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case adminAddr <- m[1]:
				default:
				}
			}
		}
		d.done <- d.cmd.Wait()
	}()
	select {
	case d.admin = <-adminAddr:
	case err := <-d.done:
		d.waited = true
		t.Fatalf("tokproxy exited: %v\n%s", err, d.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("tokproxy did not start its admin listener\n%s", d.logs())
	}
	waitFor(t, "http://"+d.admin+"/readyz", "")
	return d
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
}

func (d *daemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for tokproxy to exit and returns its error.
func (d *daemon) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.done:
		d.waited = true
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("tokproxy did not exit\n%s", d.logs())
		return nil
	}
}

// waitFor polls url until it answers 200 with a body containing want.
func waitFor(t *testing.T, url, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(want)) {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: no 200 with %q: %s", url, want, last)
}
