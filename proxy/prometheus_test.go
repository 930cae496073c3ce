package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokrun/tokrun/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A real Prometheus (Debian package prometheus, installed by .ci/run)
// scrapes the proxy's metrics and can query decisions by rule.
func TestRealPrometheusScrape(t *testing.T) {
	bin := lookPath(t, "prometheus")
	h := newHarness(t, basicPolicy, nil)
	c := h.client()
	for i := 0; i < 3; i++ {
		status, _, _ := h.do(c, newRequest(t, "GET", "https://api.example.com/v1/x", nil))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msrv := &http.Server{Handler: promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{})}
	go msrv.Serve(mln)
	defer msrv.Close()

	webAddr := freeAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tokproxy\n    static_configs:\n      - targets: [%q]\n", mln.Addr().String())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+webAddr)
	cmd.Env = cleanEnv()
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()

	query := "http://" + webAddr + "/api/v1/query?query=" + "tokrun_decisions_total%7Brule%3D%22api%22%2Cdecision%3D%22allow%22%7D"
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := promQuery(query)
		if err == nil && got >= 4 { // 1 CONNECT and 3 requests
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never reported the decisions (last %v, %v); its log:\n%s", got, err, logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promQuery runs an instant query and returns the first sample's value.
func promQuery(u string) (float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) == 0 {
		return 0, fmt.Errorf("no result yet: %s", strings.TrimSpace(string(body)))
	}
	var v float64
	_, err = fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &v)
	return v, err
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for programs that cannot be given a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
