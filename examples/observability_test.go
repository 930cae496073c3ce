package examples

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const obsDir = "observability"

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: prometheus)")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = obsDir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPrometheusConfig(t *testing.T) {
	if out, err := runPromtool(t, "check", "config", "prometheus.yml"); err != nil {
		t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
	t.Run("kubernetes", func(t *testing.T) {
		// This build of promtool may not parse it; relabelKubernetesPod
		// below checks what matters without promtool.
		out, err := runPromtool(t, "check", "config", "prometheus-kubernetes.yml")
		if err != nil && strings.Contains(out, "field kubernetes_sd_configs not found") {
			t.Skip("this promtool is built without Kubernetes service discovery (as Debian's is)")
		}
		if err != nil {
			t.Errorf("promtool check config prometheus-kubernetes.yml: %v\n%s", err, out)
		}
	})
}

type scrapeConfig struct {
	ScrapeConfigs []struct {
		JobName             string `yaml:"job_name"`
		KubernetesSDConfigs []struct {
			Role       string `yaml:"role"`
			Namespaces struct {
				Names []string `yaml:"names"`
			} `yaml:"namespaces"`
		} `yaml:"kubernetes_sd_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			Separator    *string  `yaml:"separator"`
			Regex        *string  `yaml:"regex"`
			Replacement  *string  `yaml:"replacement"`
			TargetLabel  string   `yaml:"target_label"`
			Action       string   `yaml:"action"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusKubernetesRelabel applies the relabelling of
// prometheus-kubernetes.yml, as Prometheus would (keep and replace), to
// the labels service discovery gives the tokproxy and agent pods of
// examples/deploy/kubernetes: tokproxy is scraped on its admin port and
// path, agents are not scraped.
func TestPrometheusKubernetesRelabel(t *testing.T) {
	var cfg scrapeConfig
	readYAML(t, filepath.Join(obsDir, "prometheus-kubernetes.yml"), &cfg)
	if len(cfg.ScrapeConfigs) != 1 || !strings.HasPrefix(cfg.ScrapeConfigs[0].JobName, "tokproxy") {
		t.Fatalf("want one scrape job named tokproxy*")
	}
	sc := cfg.ScrapeConfigs[0]
	m := loadManifests(t)
	for _, p := range m.pods(t) {
		if len(sc.KubernetesSDConfigs) != 1 || sc.KubernetesSDConfigs[0].Role != "pod" || !slices.Contains(sc.KubernetesSDConfigs[0].Namespaces.Names, p.obj.Metadata.Namespace) {
			t.Fatalf("the job does not discover pods in namespace %s", p.obj.Metadata.Namespace)
		}
		// What Kubernetes service discovery sets for the pod's first port.
		labels := map[string]string{
			"__address__":                 "10.1.2.3:3128",
			"__metrics_path__":            "/metrics",
			"__meta_kubernetes_namespace": p.obj.Metadata.Namespace,
			"__meta_kubernetes_pod_name":  p.obj.Metadata.Name + "-abc",
		}
		for k, v := range p.labels {
			labels["__meta_kubernetes_pod_label_"+sanitizeLabel(k)] = v
		}
		for k, v := range p.annots {
			labels["__meta_kubernetes_pod_annotation_"+sanitizeLabel(k)] = v
		}
		kept := true
		for _, rc := range sc.RelabelConfigs {
			var vals []string
			for _, l := range rc.SourceLabels {
				vals = append(vals, labels[l])
			}
			sep, re, repl := ";", "(.*)", "$1"
			if rc.Separator != nil {
				sep = *rc.Separator
			}
			if rc.Regex != nil {
				re = *rc.Regex
			}
			if rc.Replacement != nil {
				repl = *rc.Replacement
			}
			rx, err := regexp.Compile("^(?:" + re + ")$")
			if err != nil {
				t.Fatalf("relabel regex %q: %v", re, err)
			}
			v := strings.Join(vals, sep)
			switch rc.Action {
			case "keep":
				kept = kept && rx.MatchString(v)
			case "", "replace":
				if idx := rx.FindStringSubmatchIndex(v); idx != nil {
					labels[rc.TargetLabel] = string(rx.ExpandString(nil, repl, v, idx))
				}
			default:
				t.Fatalf("relabel action %s not simulated by this test", rc.Action)
			}
		}
		if isAgent(p) {
			if kept {
				t.Errorf("agent pod %s would be scraped", p.obj.Metadata.Name)
			}
			continue
		}
		proxy, c := proxyPod(t, m)
		if p.obj != proxy.obj {
			t.Errorf("%s %s would be scraped", p.obj.Kind, p.obj.Metadata.Name)
			continue
		}
		_, adminPort := hostPortOf(t, proxyFlags(t, c)["--admin"][0])
		if !kept || labels["__address__"] != "10.1.2.3:"+strconv.Itoa(adminPort) || labels["__metrics_path__"] != "/metrics" {
			t.Errorf("tokproxy pod: kept %v, scraped at %s%s; want 10.1.2.3:%d/metrics", kept, labels["__address__"], labels["__metrics_path__"], adminPort)
		}
	}
}

// sanitizeLabel is how Prometheus turns a Kubernetes label or annotation
// name into part of a label name.
func sanitizeLabel(s string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(s, "_")
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Record string            `yaml:"record"`
			Expr   string            `yaml:"expr"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules checks the rules with promtool, runs their unit tests,
// and checks that the alerts the README promises exist and are tested.
func TestAlertRules(t *testing.T) {
	if out, err := runPromtool(t, "check", "rules", "alerts.yml"); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := runPromtool(t, "test", "rules", "alerts_test.yml"); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}

	var rules ruleGroups
	readYAML(t, filepath.Join(obsDir, "alerts.yml"), &rules)
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				exprs[r.Alert] = strings.Join(strings.Fields(r.Expr), " ")
				if r.Labels["severity"] == "" {
					t.Errorf("alert %s has no severity", r.Alert)
				}
			}
		}
	}
	want := map[string]string{
		"TokrunTripwireFired":      `increase(tokrun_tripwires_total{job=~"tokproxy.*"}[5m]) > 0`,
		"TokrunPolicyReloadFailed": `increase(tokrun_policy_reloads_total{job=~"tokproxy.*", result="failure"}[10m]) > 0`,
		"TokrunAuditWriteErrors":   `increase(tokrun_audit_write_errors_total{job=~"tokproxy.*"}[5m]) > 0`,
		"TokrunDenyRateSpike":      `decision="deny"`,
	}
	for alert, expr := range want {
		if !strings.Contains(exprs[alert], expr) {
			t.Errorf("alert %s: expr %q, want it to contain %q", alert, exprs[alert], expr)
		}
	}

	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string      `yaml:"alertname"`
				ExpAlerts []yaml.Node `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(obsDir, "alerts_test.yml"), &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for alert := range want {
		if !fires[alert] || !quiet[alert] {
			t.Errorf("alerts_test.yml: alert %s needs a test where it fires and one where it does not", alert)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// definedMetrics returns the metrics proxy/metrics.go defines, by name,
// with their kind (Counter, Gauge, Histogram, Summary).
func definedMetrics(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("../proxy/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]string{}
	for _, m := range regexp.MustCompile(`prometheus\.(Counter|Gauge|Histogram|Summary)Opts\{\s*Name:\s*"(tokrun_[a-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		defined[string(m[2])] = string(m[1])
	}
	// Every Name: in the file must have been understood.
	if n := len(regexp.MustCompile(`Name:\s*"tokrun_`).FindAll(src, -1)); n != len(defined) || n == 0 {
		t.Fatalf("proxy/metrics.go: found %d tokrun_ metric names but parsed %d: update this test", n, len(defined))
	}
	return defined
}

// seriesName maps a name used in a query to the metric that defines it:
// a histogram's _bucket, _sum and _count series belong to the histogram.
func seriesName(name string, defined map[string]string) (string, bool) {
	if _, ok := defined[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		kind := defined[base]
		if kind == "Histogram" || (kind == "Summary" && suffix != "_bucket") {
			return base, true
		}
	}
	return "", false
}

var metricNameRE = regexp.MustCompile(`tokrun_[a-z0-9_]+`)

// TestMetricNamesInSync checks that the dashboard and the alerts use only
// metrics tokproxy defines, and that the dashboard shows all of them.
func TestMetricNamesInSync(t *testing.T) {
	defined := definedMetrics(t)
	shown := map[string]bool{}
	for _, f := range []string{"grafana.json", "alerts.yml", "alerts_test.yml"} {
		data, err := os.ReadFile(filepath.Join(obsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricNameRE.FindAllString(string(data), -1) {
			base, ok := seriesName(name, defined)
			if !ok {
				t.Errorf("%s: %s is not a metric of proxy/metrics.go", f, name)
			} else if f == "grafana.json" {
				shown[base] = true
			}
		}
	}
	for name := range defined {
		if !shown[name] {
			t.Errorf("grafana.json has no panel for %s", name)
		}
	}
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(obsDir, "grafana.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana.json: %v", err)
	}
	return d
}

// TestGrafanaDashboard checks the dashboard's structure and that every
// query is valid PromQL (promtool parses them as recording rules).
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, v := range []string{"datasource", "job", "instance"} {
		if !slices.Contains(vars, v) {
			t.Errorf("no template variable %s", v)
		}
	}
	ids := map[int]bool{}
	type rect struct{ x, y, w, h int }
	var placed []rect
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	replacer := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$job", "tokproxy.*", "$instance", ".*")
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		r := rect{p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H}
		if r.w <= 0 || r.h <= 0 || r.x < 0 || r.x+r.w > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		for _, q := range placed {
			if r.x < q.x+q.w && q.x < r.x+r.w && r.y < q.y+q.h && q.y < r.y+r.h {
				t.Errorf("panel %q overlaps another at %+v", p.Title, p.GridPos)
			}
		}
		placed = append(placed, r)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if refs[q.RefID] || q.RefID == "" {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if !strings.Contains(q.Expr, `job=~"$job"`) || !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query %s ignores the job and instance variables", p.Title, q.Expr)
			}
			expr, _ := json.Marshal(replacer.Replace(q.Expr)) // a JSON string is a YAML string
			rules.WriteString("      - record: dashboard:query\n        expr: " + string(expr) + "\n")
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (Debian: prometheus): queries not parsed")
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries are not valid PromQL: %v\n%s", err, out)
	}
}

// TestMetricsLive scrapes a running tokproxy and checks that every series
// the dashboard and the alerts query is exposed, so that the sync check
// above cannot pass on names tokproxy only defines on paper.
func TestMetricsLive(t *testing.T) {
	dir := t.TempDir()
	if len(dir) > 80 {
		t.Skipf("temporary directory %s too long for a Unix socket path", dir)
	}
	copyFile(t, "policies/openai.yaml", filepath.Join(dir, "openai.yaml"), 0o644)
	copyFile(t, "policies/openai.sealed", filepath.Join(dir, "openai.sealed"), 0o644)
	d := startTokproxy(t, "serve", "--policy", filepath.Join(dir, "openai.yaml"), "--key", testKey,
		"--listen", "unix:"+filepath.Join(dir, "s"), "--state-dir", dir, "--admin", "127.0.0.1:0", "--audit", filepath.Join(dir, "audit.jsonl"))
	resp, err := http.Get("http://" + d.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(tokrun_[a-z0-9_]+)[{ ]`).FindAllStringSubmatch(string(body), -1) {
		exposed[m[1]] = true
	}
	for _, f := range []string{"grafana.json", "alerts.yml"} {
		data, err := os.ReadFile(filepath.Join(obsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricNameRE.FindAllString(string(data), -1) {
			if !exposed[name] {
				t.Errorf("%s: %s is not exposed by tokproxy's /metrics", f, name)
			}
		}
	}
}
