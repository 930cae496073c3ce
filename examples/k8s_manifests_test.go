package examples

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const k8sDir = "deploy/kubernetes"

// The fields of Kubernetes objects these tests look at; yaml.v3 ignores
// the rest.
type (
	k8sObject struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Spec       yaml.Node
		Data       map[string]string `yaml:"data"`
		Handler    string            `yaml:"handler"`
		file       string
	}
	metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	workloadSpec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata metadata `yaml:"metadata"`
			Spec     podSpec  `yaml:"spec"`
		} `yaml:"template"`
	}
	labelSelector struct {
		MatchLabels      map[string]string `yaml:"matchLabels"`
		MatchExpressions []yaml.Node       `yaml:"matchExpressions"`
	}
	podSpec struct {
		RuntimeClassName              string      `yaml:"runtimeClassName"`
		AutomountServiceAccountToken  *bool       `yaml:"automountServiceAccountToken"`
		EnableServiceLinks            *bool       `yaml:"enableServiceLinks"`
		TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
		HostNetwork                   bool        `yaml:"hostNetwork"`
		InitContainers                []container `yaml:"initContainers"`
		Containers                    []container `yaml:"containers"`
		Volumes                       []volume    `yaml:"volumes"`
	}
	container struct {
		Name    string   `yaml:"name"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		EnvFrom []struct {
			SecretRef *struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		VolumeMounts   []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
		SecurityContext *struct {
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			RunAsUser                *int  `yaml:"runAsUser"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			Privileged               bool  `yaml:"privileged"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"` // a number or a port name
		} `yaml:"httpGet"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode string `yaml:"defaultMode"` // as written: 0400 is octal in YAML
			Items       []yaml.Node
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir *struct {
			Medium string `yaml:"medium"`
		} `yaml:"emptyDir"`
	}
	serviceSpec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	networkPolicySpec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Egress      []struct {
			To []struct {
				PodSelector       *labelSelector `yaml:"podSelector"`
				NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
				IPBlock           *yaml.Node     `yaml:"ipBlock"`
			} `yaml:"to"`
			Ports []struct {
				Protocol string `yaml:"protocol"`
				Port     string `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"egress"`
	}
	hpaSpec struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
	}
	serviceMonitorSpec struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
)

// manifests holds every object in deploy/kubernetes.
type manifests []*k8sObject

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var all manifests
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: document %d has no apiVersion, kind or metadata.name", f, i)
			}
			o.file = f
			all = append(all, &o)
		}
	}
	return all
}

func (m manifests) ofKind(kind string) []*k8sObject {
	var out []*k8sObject
	for _, o := range m {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifests) get(t *testing.T, kind, name string) *k8sObject {
	t.Helper()
	for _, o := range m.ofKind(kind) {
		if o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %s in %s", kind, name, k8sDir)
	return nil
}

func spec[T any](t *testing.T, o *k8sObject) T {
	t.Helper()
	var s T
	if err := o.Spec.Decode(&s); err != nil {
		t.Fatalf("%s: %s %s: spec: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
	return s
}

// selects reports whether a label selector selects a set of labels. An
// empty selector selects every pod; matchExpressions are not supported.
func selects(t *testing.T, s labelSelector, labels map[string]string) bool {
	t.Helper()
	if len(s.MatchExpressions) > 0 {
		t.Fatalf("matchExpressions are not supported by this test")
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// pod is a pod template from a workload.
type pod struct {
	obj    *k8sObject
	labels map[string]string
	annots map[string]string
	spec   podSpec
}

func (m manifests) pods(t *testing.T) []pod {
	t.Helper()
	var out []pod
	for _, o := range m {
		switch o.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
			w := spec[workloadSpec](t, o)
			out = append(out, pod{o, w.Template.Metadata.Labels, w.Template.Metadata.Annotations, w.Template.Spec})
		case "Pod":
			out = append(out, pod{o, o.Metadata.Labels, o.Metadata.Annotations, spec[podSpec](t, o)})
		case "CronJob":
			t.Fatalf("%s: CronJob pods are not checked by this test", o.file)
		}
	}
	return out
}

const (
	agentRoleKey, agentRole = "tokrun/role", "agent"
	proxySecretsNote        = "tokproxy's key, CA and token Secrets"
)

func isAgent(p pod) bool { return p.labels[agentRoleKey] == agentRole }

// proxyPod returns the tokproxy pod template and its container.
func proxyPod(t *testing.T, m manifests) (pod, container) {
	t.Helper()
	for _, p := range m.pods(t) {
		for _, c := range p.spec.Containers {
			if len(c.Args) > 0 && c.Args[0] == "serve" {
				return p, c
			}
		}
	}
	t.Fatal("no pod runs tokproxy serve")
	return pod{}, container{}
}

// containerPort resolves a port given by name or number in a container.
func containerPort(c container, port string) (int, bool) {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func hostPortOf(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, n
}

// proxyFlags are tokproxy's flags in the Deployment.
func proxyFlags(t *testing.T, c container) map[string][]string {
	t.Helper()
	f := flagValues(c.Args[1:])
	for _, k := range []string{"--policy", "--key", "--ca-cert", "--ca-key", "--admin", "--token-file", "--drain-timeout"} {
		if len(f[k]) != 1 {
			t.Fatalf("tokproxy args: %s given %d times, want once", k, len(f[k]))
		}
	}
	if len(f["--listen"]) != 1 {
		t.Fatalf("tokproxy args: want one --listen, got %q", f["--listen"])
	}
	return f
}

func proxyListenPort(t *testing.T, f map[string][]string) int {
	t.Helper()
	addr, ok := strings.CutPrefix(f["--listen"][0], "tcp:")
	if !ok {
		t.Fatalf("--listen %s: pods reach tokproxy over TCP", f["--listen"][0])
	}
	_, port := hostPortOf(t, addr)
	return port
}
