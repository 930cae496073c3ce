package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tokrun/tokrun/policy"
)

// Reasons the proxy adds to the policy's own.
const (
	ReasonHostMismatch    policy.Reason = "host_mismatch"
	ReasonPrivateAddress  policy.Reason = "private_address"
	ReasonTripwire        policy.Reason = "tripwire"
	ReasonUpstreamError   policy.Reason = "upstream_unreachable"
	ReasonUpstreamTimeout policy.Reason = "upstream_timeout"
	ReasonAuthRequired    policy.Reason = "proxy_auth_required"
	ReasonBadRequest      policy.Reason = "bad_request"
	// ReasonHeadersTooLarge refuses a request whose headers exceed
	// Limits.MaxHeaderBytes.
	ReasonHeadersTooLarge policy.Reason = "headers_too_large"
	// ReasonUpgradeWithSecret refuses a WebSocket upgrade on a rule that
	// injects a secret: frames after the switch cannot be scrubbed.
	ReasonUpgradeWithSecret policy.Reason = "upgrade_with_secret"
	// ReasonUnscannable refuses a response to a request that carried a
	// secret when the response cannot be scanned for it.
	ReasonUnscannable policy.Reason = "response_unscannable"
)

// statusFor maps a reason to the HTTP status of the response. It is the one
// place where reasons meet statuses.
func statusFor(r policy.Reason) int {
	switch r {
	case policy.InvalidHost, policy.InvalidPath, ReasonBadRequest:
		return http.StatusBadRequest
	case ReasonHostMismatch:
		return http.StatusMisdirectedRequest
	case ReasonHeadersTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case ReasonAuthRequired:
		return http.StatusProxyAuthRequired
	case ReasonUpstreamError, ReasonUnscannable:
		return http.StatusBadGateway
	case ReasonUpstreamTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusForbidden
	}
}

// denial builds the response for a refused or failed request: a status
// from statusFor, X-Tokrun-* headers an agent can act on, and a one-line
// body. explanation must hold public facts only.
func denial(req *http.Request, reason policy.Reason, rule, explanation string) *http.Response {
	status := statusFor(reason)
	body := fmt.Sprintf("tokproxy: %s: %s\n", reason, explanation)
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Tokrun-Decision", "deny")
	h.Set("X-Tokrun-Reason", string(reason))
	if rule != "" {
		h.Set("X-Tokrun-Rule", rule)
	}
	if reason == ReasonAuthRequired {
		h.Set("Proxy-Authenticate", `Bearer realm="tokproxy"`)
	}
	return &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
		Close:         reason == ReasonHostMismatch || reason == ReasonAuthRequired || reason == ReasonHeadersTooLarge,
	}
}
