package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokrun/tokrun/policy"
)

// Metrics are the proxy's Prometheus metrics, all prefixed tokrun_. No
// label ever holds a raw host, path or client-supplied value: labels are
// rule and secret names from the policy and fixed reason strings, so a
// hostile client cannot grow the number of series.
type Metrics struct {
	Decisions        *prometheus.CounterVec
	Injections       *prometheus.CounterVec
	Tripwires        *prometheus.CounterVec
	Scrubs           *prometheus.CounterVec
	UpstreamDuration *prometheus.HistogramVec
	ActiveConns      prometheus.Gauge
	ActiveTunnels    prometheus.Gauge
	LeafCerts        *prometheus.CounterVec
	PolicyReloads    *prometheus.CounterVec
	PolicyInfo       *prometheus.GaugeVec
	AuditErrors      prometheus.Counter

	// rules holds, for the policy loaded last, each rule's series on the
	// path of an allowed request, looked up once instead of by labels on
	// every request.
	rules atomic.Pointer[map[string]*ruleSeries]
}

// ruleSeries are one allow rule's series.
type ruleSeries struct {
	allowed    prometheus.Counter
	duration   prometheus.Observer
	injections map[string]prometheus.Counter // by secret
}

// rule returns the series of the allow rule named, or nil if the rule is
// not in the policy loaded last.
func (m *Metrics) rule(name string) *ruleSeries {
	if rs := m.rules.Load(); rs != nil {
		return (*rs)[name]
	}
	return nil
}

// allowed counts a request the rule allowed.
func (m *Metrics) allowed(rule string) {
	if rs := m.rule(rule); rs != nil {
		rs.allowed.Inc()
		return
	}
	m.Decisions.WithLabelValues("allow", rule, string(policy.Allowed)).Inc()
}

// upstreamDuration observes how long the upstream took to answer.
func (m *Metrics) upstreamDuration(rule string, d time.Duration) {
	if rs := m.rule(rule); rs != nil {
		rs.duration.Observe(d.Seconds())
		return
	}
	m.UpstreamDuration.WithLabelValues(rule).Observe(d.Seconds())
}

// injected counts a secret injected by the rule.
func (m *Metrics) injected(rule, secret string) {
	if rs := m.rule(rule); rs != nil {
		if c := rs.injections[secret]; c != nil {
			c.Inc()
			return
		}
	}
	m.Injections.WithLabelValues(secret, rule).Inc()
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_decisions_total", Help: "Egress decisions, by decision, rule and reason.",
		}, []string{"decision", "rule", "reason"}),
		Injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_injections_total", Help: "Secrets injected into requests, by secret and rule.",
		}, []string{"secret", "rule"}),
		Tripwires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_tripwires_total", Help: "Requests refused because a secret's placeholder was headed to a host outside its binding, by secret.",
		}, []string{"secret"}),
		Scrubs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_scrubs_total", Help: "Occurrences of a secret replaced in upstream responses, by secret.",
		}, []string{"secret"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokrun_upstream_request_duration_seconds", Help: "Time from sending a request upstream to receiving its response headers, by rule.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"rule"}),
		ActiveConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokrun_active_connections", Help: "Client connections open to the proxy and not yet a tunnel (tunnels are tokrun_active_tunnels).",
		}),
		ActiveTunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokrun_active_tunnels", Help: "Intercepted CONNECT tunnels open.",
		}),
		LeafCerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_leaf_cert_cache_total", Help: "Leaf certificate lookups, by result (hit or miss).",
		}, []string{"result"}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokrun_policy_reloads_total", Help: "Policy reloads, by result (success or failure).",
		}, []string{"result"}),
		PolicyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tokrun_policy_info", Help: "The policy in force: 1 for its SHA-256 hash.",
		}, []string{"hash"}),
		AuditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokrun_audit_write_errors_total", Help: "Audit records that could not be written.",
		}),
	}
	reg.MustRegister(m.Decisions, m.Injections, m.Tripwires, m.Scrubs, m.UpstreamDuration,
		m.ActiveConns, m.ActiveTunnels, m.LeafCerts, m.PolicyReloads, m.PolicyInfo, m.AuditErrors)
	for _, r := range []string{"success", "failure"} {
		m.PolicyReloads.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "miss"} {
		m.LeafCerts.WithLabelValues(r)
	}
	return m
}

// PolicyLoaded creates the series for a newly loaded policy's rules and
// secrets, so that dashboards see zeros rather than gaps, and records
// the policy's hash.
func (m *Metrics) PolicyLoaded(p *policy.Policy) {
	m.PolicyInfo.Reset()
	m.PolicyInfo.WithLabelValues(p.Hash()).Set(1)
	m.Decisions.WithLabelValues("deny", "", string(policy.HostNotAllowed))
	rules := map[string]*ruleSeries{}
	for _, r := range p.Rules() {
		rs := &ruleSeries{
			allowed:    m.Decisions.WithLabelValues("allow", r.Name, string(policy.Allowed)),
			duration:   m.UpstreamDuration.WithLabelValues(r.Name),
			injections: map[string]prometheus.Counter{},
		}
		for _, s := range r.Inject {
			rs.injections[s] = m.Injections.WithLabelValues(s, r.Name)
		}
		rules[r.Name] = rs
	}
	m.rules.Store(&rules)
	for _, r := range p.DenyRules() {
		m.Decisions.WithLabelValues("deny", r.Name, string(policy.DeniedByRule))
	}
	for _, s := range p.Secrets() {
		m.Tripwires.WithLabelValues(s.Name)
		m.Scrubs.WithLabelValues(s.Name)
	}
}
