package runner

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// NO_PROXY is never set: every request, to loopback too, goes through
// the proxy, and plumbing keeps --env from setting it.

// plumbing are the variables tokrun sets to route the sandbox through the
// proxy and make it trust the proxy's CA; --env cannot change them.
var plumbing = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
	"GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE", "NODE_USE_ENV_PROXY",
}

// IsPlumbing reports whether the sandbox's variable name is set by tokrun
// itself to keep the proxy the only way out.
func IsPlumbing(name string) bool { return slices.Contains(plumbing, name) }

// Environment returns the sandbox's environment, built from scratch: PATH,
// HOME, LANG and TERM (LANG and TERM copied from the host when set), the
// proxy and trust variables, then extra (KEY=VALUE, later entries win).
// Nothing else of the host's environment passes through.
func Environment(bundle string, extra []string) ([]string, error) {
	vars := map[string]string{
		"PATH": defaultPath,
		"HOME": "/root",
		"LANG": "C.UTF-8",
		"TERM": "xterm",
	}
	for _, k := range []string{"LANG", "TERM"} {
		if v := os.Getenv(k); v != "" {
			vars[k] = v
		}
	}
	proxyURL := "http://" + ProxyAddr
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		vars[k] = proxyURL
	}
	for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE"} {
		vars[k] = bundle
	}
	vars["NODE_USE_ENV_PROXY"] = "1"
	for _, kv := range extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment entry %q is not KEY=VALUE", k)
		}
		if IsPlumbing(k) {
			return nil, fmt.Errorf("%s is set by tokrun to keep the proxy the only way out; it cannot be changed", k)
		}
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}
