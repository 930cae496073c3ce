package examples

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tokrun/tokrun/policy"
)

func TestKubernetesManifestsParse(t *testing.T) {
	m := loadManifests(t)
	for _, o := range m {
		switch o.Kind {
		case "Namespace", "RuntimeClass":
			continue
		}
		if o.Metadata.Namespace != "tokrun" {
			t.Errorf("%s: %s %s in namespace %q, want tokrun", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	// kustomization.yaml lists the manifests that need no CRD.
	var k struct {
		Resources []string `yaml:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != "servicemonitor.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("kustomization.yaml does not list %s", base)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
}

// TestKubernetesAgentPods checks the agent side: gVisor, no API token, no
// way to tokproxy's Secrets, and a proxy and CA configured for every
// client.
func TestKubernetesAgentPods(t *testing.T) {
	m := loadManifests(t)
	svc := m.get(t, "Service", "tokproxy")
	svcSpec := spec[serviceSpec](t, svc)
	envPrefix := strings.ToUpper(strings.ReplaceAll(svc.Metadata.Name, "-", "_")) + "_SERVICE_"
	var agents int
	for _, p := range m.pods(t) {
		if !isAgent(p) {
			continue
		}
		agents++
		where := p.obj.file + ": " + p.obj.Kind + " " + p.obj.Metadata.Name
		if p.spec.RuntimeClassName != "gvisor" {
			t.Errorf("%s: runtimeClassName %q, want gvisor", where, p.spec.RuntimeClassName)
		}
		if a := p.spec.AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("%s: automountServiceAccountToken must be false", where)
		}
		if p.spec.HostNetwork {
			t.Errorf("%s: hostNetwork bypasses the NetworkPolicy", where)
		}
		// Service environment variables exist only in the Service's namespace.
		if p.obj.Metadata.Namespace != svc.Metadata.Namespace {
			t.Errorf("%s: in namespace %s, but HTTPS_PROXY needs the Service variables of %s", where, p.obj.Metadata.Namespace, svc.Metadata.Namespace)
		}
		if e := p.spec.EnableServiceLinks; e != nil && !*e {
			t.Errorf("%s: enableServiceLinks is false, so TOKPROXY_SERVICE_HOST is unset", where)
		}
		for _, v := range p.spec.Volumes {
			if v.Secret != nil && strings.HasPrefix(v.Secret.SecretName, "tokproxy-") {
				t.Errorf("%s: mounts %s's Secret %s", where, proxySecretsNote, v.Secret.SecretName)
			}
		}
		for _, c := range append(p.spec.InitContainers, p.spec.Containers...) {
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") || sc.Privileged {
				t.Errorf("%s: container %s: want allowPrivilegeEscalation false and capabilities drop ALL", where, c.Name)
			}
			// Every proxy variable points at the Service's proxy port.
			var proxyPortName string
			for _, sp := range svcSpec.Ports {
				if sp.Name == "proxy" {
					proxyPortName = "PORT_" + strings.ToUpper(sp.Name)
				}
			}
			if proxyPortName == "" {
				t.Fatalf("Service %s has no port named proxy", svc.Metadata.Name)
			}
			wantProxy := regexp.MustCompile(`^http://[a-z0-9-]+:\$\(PROXY_TOKEN\)@\$\(` + envPrefix + `HOST\):\$\(` + envPrefix + proxyPortName + `\)$`)
			for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY"} {
				if !wantProxy.MatchString(env[k]) {
					t.Errorf("%s: %s=%q, want it to match %s", where, k, env[k], wantProxy)
				}
				if lower := strings.ToLower(k); env[lower] != "$("+k+")" {
					t.Errorf("%s: %s=%q, want $(%s)", where, lower, env[lower], k)
				}
			}
			// Every CA variable names the mounted CA certificate.
			var caMount string
			for _, vm := range c.VolumeMounts {
				for _, v := range p.spec.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == "tokproxy-ca-cert" {
						caMount = vm.MountPath
					}
				}
			}
			if caMount == "" {
				t.Errorf("%s: container %s does not mount the ConfigMap tokproxy-ca-cert", where, c.Name)
			}
			for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT"} {
				if env[k] != path.Join(caMount, "ca.pem") {
					t.Errorf("%s: %s=%q, want %s", where, k, env[k], path.Join(caMount, "ca.pem"))
				}
			}
			if env["NODE_USE_ENV_PROXY"] != "1" {
				t.Errorf("%s: NODE_USE_ENV_PROXY=%q, want 1 (Node's fetch ignores HTTPS_PROXY otherwise)", where, env["NODE_USE_ENV_PROXY"])
			}
		}
	}
	if agents == 0 {
		t.Fatalf("no pod template labelled %s=%s", agentRoleKey, agentRole)
	}
	if rc := m.get(t, "RuntimeClass", "gvisor"); rc.Handler != "runsc" {
		t.Errorf("RuntimeClass gvisor: handler %q, want runsc", rc.Handler)
	}
}

// TestKubernetesAgentNetworkPolicy checks that every NetworkPolicy that
// restricts the agents' egress allows exactly one thing: TCP to the
// tokproxy pods' proxy port. NetworkPolicies are additive, so one that
// selected agent pods and allowed more would open a way out.
func TestKubernetesAgentNetworkPolicy(t *testing.T) {
	m := loadManifests(t)
	proxy, c := proxyPod(t, m)
	port := proxyListenPort(t, proxyFlags(t, c))
	var agentLabels []map[string]string
	for _, p := range m.pods(t) {
		if isAgent(p) {
			agentLabels = append(agentLabels, p.labels)
		}
	}
	if len(agentLabels) == 0 {
		t.Fatal("no agent pods")
	}
	var fences int
	for _, o := range m.ofKind("NetworkPolicy") {
		np := spec[networkPolicySpec](t, o)
		selected := false
		for _, l := range agentLabels {
			selected = selected || selects(t, np.PodSelector, l)
		}
		if !selected || !slices.Contains(np.PolicyTypes, "Egress") {
			continue
		}
		where := o.file + ": NetworkPolicy " + o.Metadata.Name
		if !slices.Equal(np.PolicyTypes, []string{"Egress"}) {
			t.Errorf("%s: policyTypes %q, want [Egress]", where, np.PolicyTypes)
		}
		if len(np.Egress) != 1 || len(np.Egress[0].To) != 1 {
			t.Errorf("%s: want exactly one egress rule with one peer, got %d rules", where, len(np.Egress))
			continue
		}
		peer := np.Egress[0].To[0]
		if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil {
			t.Errorf("%s: the egress peer must be a pod selector only (no namespaceSelector, no ipBlock)", where)
			continue
		}
		if len(peer.PodSelector.MatchLabels) == 0 || !selects(t, *peer.PodSelector, proxy.labels) {
			t.Errorf("%s: egress peer %v does not select the tokproxy pods %v", where, peer.PodSelector.MatchLabels, proxy.labels)
		}
		for _, l := range agentLabels {
			if selects(t, *peer.PodSelector, l) {
				t.Errorf("%s: egress peer %v also selects agent pods", where, peer.PodSelector.MatchLabels)
			}
		}
		ports := np.Egress[0].Ports
		if len(ports) != 1 || ports[0].Protocol != "TCP" || ports[0].Port != strconv.Itoa(port) {
			t.Errorf("%s: egress ports %+v, want only TCP %d (tokproxy's --listen)", where, ports, port)
		}
		fences++
	}
	if fences == 0 {
		t.Fatal("no NetworkPolicy restricts the agent pods' egress")
	}
}

// TestKubernetesProxy checks the tokproxy Deployment against its own
// flags, and where its secrets come from.
func TestKubernetesProxy(t *testing.T) {
	m := loadManifests(t)
	p, c := proxyPod(t, m)
	f := proxyFlags(t, c)
	where := p.obj.file + ": " + p.obj.Kind + " " + p.obj.Metadata.Name

	// Every flag is a real one.
	known := serveFlags(t)
	for k := range f {
		if !known[k] {
			t.Errorf("%s: tokproxy serve has no flag %s", where, k)
		}
	}

	// Replicas.
	w := spec[workloadSpec](t, p.obj)
	if w.Replicas == nil || *w.Replicas < 2 {
		t.Errorf("%s: replicas %v, want at least 2", where, w.Replicas)
	}
	if !selects(t, w.Selector, p.labels) {
		t.Errorf("%s: selector does not select its own pods", where)
	}

	// Ports and probes match the flags.
	listenPort := proxyListenPort(t, f)
	adminHost, adminPort := hostPortOf(t, f["--admin"][0])
	if adminHost != "0.0.0.0" && adminHost != "::" {
		t.Errorf("%s: --admin %s: the kubelet and Prometheus reach it on the pod IP", where, f["--admin"][0])
	}
	if got, ok := containerPort(c, "proxy"); !ok || got != listenPort {
		t.Errorf("%s: container port proxy = %d, want %d (--listen)", where, got, listenPort)
	}
	if got, ok := containerPort(c, "admin"); !ok || got != adminPort {
		t.Errorf("%s: container port admin = %d, want %d (--admin)", where, got, adminPort)
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s: no %s httpGet", where, pr.name)
			continue
		}
		if got, ok := containerPort(c, pr.p.HTTPGet.Port); !ok || got != adminPort || pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: %s GET %s on port %s, want %s on the admin port %d", where, pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, adminPort)
		}
	}
	drain, err1 := strconv.Atoi(strings.TrimSuffix(f["--drain-timeout"][0], "s"))
	if g := p.spec.TerminationGracePeriodSeconds; err1 != nil || g == nil || *g <= drain {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed --drain-timeout %s", where, f["--drain-timeout"][0])
	}
	if c.Resources.Requests["cpu"] == "" {
		t.Errorf("%s: no cpu request, which the HPA's utilization target needs", where)
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: tokproxy must run as non-root, read-only, with no capabilities and no privilege escalation", where)
	}
	if a := p.spec.AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("%s: automountServiceAccountToken must be false", where)
	}

	// The Service reaches those ports.
	svc := m.get(t, "Service", "tokproxy")
	ss := spec[serviceSpec](t, svc)
	if !selects(t, labelSelector{MatchLabels: ss.Selector}, p.labels) || len(ss.Selector) == 0 {
		t.Errorf("Service tokproxy: selector %v does not select %v", ss.Selector, p.labels)
	}
	for _, sp := range ss.Ports {
		want := map[string]int{"proxy": listenPort, "admin": adminPort}[sp.Name]
		if got, ok := containerPort(c, sp.TargetPort); !ok || got != want {
			t.Errorf("Service tokproxy: port %s targets %s (%d), want %d", sp.Name, sp.TargetPort, got, want)
		}
	}

	// The private key and the CA key come from Secrets with mode 0400 or
	// 0600, and never through the environment.
	for _, flag := range []string{"--key", "--ca-key"} {
		checkSecretFile(t, p, c, f[flag][0])
	}
	for _, q := range m.pods(t) {
		for _, cc := range append(q.spec.InitContainers, q.spec.Containers...) {
			for _, e := range cc.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && strings.HasPrefix(e.ValueFrom.SecretKeyRef.Name, "tokproxy-") {
					t.Errorf("%s: env %s comes from the Secret %s", q.obj.file, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			for _, e := range cc.EnvFrom {
				if e.SecretRef != nil && strings.HasPrefix(e.SecretRef.Name, "tokproxy-") {
					t.Errorf("%s: envFrom the Secret %s", q.obj.file, e.SecretRef.Name)
				}
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*"))
	for _, file := range files {
		data, _ := os.ReadFile(file)
		for _, s := range []string{"TOKRUN-SECRET-KEY", "PRIVATE KEY-----"} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a private key (%s)", file, s)
			}
		}
	}
	for _, s := range m.ofKind("Secret") {
		t.Errorf("%s: Secret %s is checked in; create Secrets by hand", s.file, s.Metadata.Name)
	}
}

// checkSecretFile checks that file, as tokproxy sees it in container c,
// comes from a Secret volume with mode 0400 or 0600: directly, or through
// an in-memory emptyDir that an init container fills from that Secret.
func checkSecretFile(t *testing.T, p pod, c container, file string) {
	t.Helper()
	vol, ok := volumeFor(p, c, file)
	if !ok {
		t.Errorf("%s is on no volume of container %s", file, c.Name)
		return
	}
	if vol.Secret != nil {
		checkSecretMode(t, vol)
		return
	}
	if vol.EmptyDir == nil || vol.EmptyDir.Medium != "Memory" {
		t.Errorf("%s: volume %s is neither a Secret nor an in-memory emptyDir", file, vol.Name)
		return
	}
	// The init container that writes the emptyDir copies from a Secret
	// volume; the file's base name must appear in its script.
	var filled bool
	for _, ic := range p.spec.InitContainers {
		writes, fromSecret := false, false
		for _, vm := range ic.VolumeMounts {
			if vm.Name == vol.Name && !vm.ReadOnly {
				writes = true
			}
			for _, v := range p.spec.Volumes {
				if v.Name == vm.Name && v.Secret != nil && strings.HasPrefix(v.Secret.SecretName, "tokproxy-") {
					checkSecretMode(t, v)
					fromSecret = true
				}
			}
		}
		script := strings.Join(append(ic.Command, ic.Args...), " ")
		if writes && fromSecret && strings.Contains(script, filepath.Base(file)) {
			filled = true
			if !strings.Contains(script, "chmod 0400") && !strings.Contains(script, "chmod 0600") {
				t.Errorf("init container %s: copies without chmod 0400 or 0600", ic.Name)
			}
			if sc := ic.SecurityContext; sc == nil || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 1 ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("init container %s: want capabilities drop ALL (add at most CHOWN) and no privilege escalation", ic.Name)
			}
		}
	}
	if !filled {
		t.Errorf("%s: no init container copies it from a tokproxy Secret", file)
	}
}

func checkSecretMode(t *testing.T, v volume) {
	t.Helper()
	mode, err := strconv.ParseInt(v.Secret.DefaultMode, 0, 32) // "0400" is octal, as in YAML 1.1
	if err != nil || (mode != 0o400 && mode != 0o600) {
		t.Errorf("Secret volume %s (%s): defaultMode %q, want 0400 or 0600", v.Name, v.Secret.SecretName, v.Secret.DefaultMode)
	}
	if len(v.Secret.Items) > 0 {
		t.Errorf("Secret volume %s: items may override the mode; the test does not check them", v.Name)
	}
}

// volumeFor returns the volume holding file in container c.
func volumeFor(p pod, c container, file string) (volume, bool) {
	best := ""
	var name string
	for _, vm := range c.VolumeMounts {
		dir := strings.TrimSuffix(vm.MountPath, "/") + "/"
		if strings.HasPrefix(file, dir) && len(dir) > len(best) {
			best, name = dir, vm.Name
		}
	}
	for _, v := range p.spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return volume{}, false
}

// TestKubernetesPolicyConfigMap loads the policy the Deployment mounts, as
// tokproxy would, and checks that the agents' placeholders are the
// policy's.
func TestKubernetesPolicyConfigMap(t *testing.T) {
	m := loadManifests(t)
	p, c := proxyPod(t, m)
	file := proxyFlags(t, c)["--policy"][0]
	vol, ok := volumeFor(p, c, file)
	if !ok || vol.ConfigMap == nil {
		t.Fatalf("--policy %s is not on a ConfigMap volume", file)
	}
	cm := m.get(t, "ConfigMap", vol.ConfigMap.Name)
	if _, ok := cm.Data[path.Base(file)]; !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Metadata.Name, path.Base(file))
	}
	dir := t.TempDir()
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := policy.Load(filepath.Join(dir, path.Base(file)), policy.Options{Keys: loadTestKey(t)})
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", cm.Metadata.Name, err)
	}
	byEnv := map[string]*policy.Secret{}
	for _, s := range pol.Secrets() {
		if s.Env != "" {
			byEnv[s.Env] = s
		}
	}
	for _, ap := range m.pods(t) {
		if !isAgent(ap) {
			continue
		}
		for _, ac := range ap.spec.Containers {
			for _, e := range ac.Env {
				s, ok := byEnv[e.Name]
				if !ok {
					continue
				}
				if e.ValueFrom != nil || !slices.Contains(s.Placeholders, e.Value) {
					t.Errorf("%s: agent env %s=%q is not one of the placeholders %q of secret %s", ap.obj.file, e.Name, e.Value, s.Placeholders, s.Name)
				}
			}
		}
	}
}

func TestKubernetesScaleAndScrape(t *testing.T) {
	m := loadManifests(t)
	p, c := proxyPod(t, m)
	f := proxyFlags(t, c)
	_, adminPort := hostPortOf(t, f["--admin"][0])

	var hpas int
	for _, o := range m.ofKind("HorizontalPodAutoscaler") {
		h := spec[hpaSpec](t, o)
		if h.ScaleTargetRef.Kind == p.obj.Kind && h.ScaleTargetRef.Name == p.obj.Metadata.Name {
			hpas++
			if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
				t.Errorf("HPA %s: replicas %v..%d, want a minimum of at least 2", o.Metadata.Name, h.MinReplicas, h.MaxReplicas)
			}
		}
	}
	if hpas != 1 {
		t.Errorf("%d HPAs scale %s, want 1", hpas, p.obj.Metadata.Name)
	}
	if m.get(t, "PodDisruptionBudget", "tokproxy") == nil {
		t.Error("no PodDisruptionBudget")
	}

	want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(adminPort), "prometheus.io/path": "/metrics"}
	for k, v := range want {
		if p.annots[k] != v {
			t.Errorf("tokproxy pod annotation %s=%q, want %q", k, p.annots[k], v)
		}
	}
	svc := spec[serviceSpec](t, m.get(t, "Service", "tokproxy"))
	for _, o := range m.ofKind("ServiceMonitor") {
		sm := spec[serviceMonitorSpec](t, o)
		if !selects(t, sm.Selector, m.get(t, "Service", "tokproxy").Metadata.Labels) {
			t.Errorf("ServiceMonitor %s does not select the Service tokproxy", o.Metadata.Name)
		}
		for _, ep := range sm.Endpoints {
			var target string
			for _, sp := range svc.Ports {
				if sp.Name == ep.Port {
					target = sp.TargetPort
				}
			}
			if got, ok := containerPort(c, target); !ok || got != adminPort || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s: scrapes port %s path %s, want the admin port %d /metrics", o.Metadata.Name, ep.Port, ep.Path, adminPort)
			}
		}
	}
}

// The README's token command leaves a token that fits in the agents'
// HTTPS_PROXY URL (no line end) and that the proxy's token file accepts;
// when tokproxy fails, it fails and leaves no token file, in a shell
// without pipefail or errexit too.
func TestKubernetesTokenCommand(t *testing.T) {
	readme, err := os.ReadFile("deploy/kubernetes/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(readme)) {
		if strings.Contains(l, "tokproxy token agent ") && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("the README has no 'tokproxy token agent' command")
	}
	env := append(os.Environ(), "PATH="+filepath.Dir(tokproxyBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	failing := t.TempDir()
	if err := os.Mkdir(filepath.Join(failing, "tokens.txt"), 0o700); err != nil { // cannot be appended to
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env = failing, env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("%s: succeeded although tokproxy failed:\n%s", line, out)
	}
	if _, err := os.Stat(filepath.Join(failing, "agent.token")); err == nil {
		t.Errorf("%s: left agent.token although tokproxy failed", line)
	}
	dir := t.TempDir()
	cmd = exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	token, err := os.ReadFile(filepath.Join(dir, "agent.token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := url.Parse("http://agent:" + string(token) + "@tokproxy.tokrun.svc:3128"); err != nil || !strings.HasPrefix(string(token), "tokproxy_") {
		t.Fatalf("the token %q does not fit in HTTPS_PROXY: %v", token, err)
	}
	tokens, err := os.ReadFile(filepath.Join(dir, "tokens.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(token)
	if want := "agent " + hex.EncodeToString(sum[:]) + "\n"; string(tokens) != want {
		t.Fatalf("tokens.txt is %q, want %q", tokens, want)
	}
}
