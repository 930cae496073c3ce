// Package proxy is tokproxy's egress proxy: it decides every request by a
// policy, injects sealed secrets into the requests that both the policy
// and the secret's own binding allow, and keeps the secrets from going
// anywhere else.
//
// Use it by creating a Server with New, giving it the policy in force (a
// func, so reloads take effect at once), a CA for intercepted tunnels and
// optionally an audit log and metrics, then serving listeners:
//
//	srv, err := proxy.New(proxy.Config{Policy: store.Policy, CA: ca, Audit: audit, Metrics: m})
//	go srv.Serve(unixListener, proxy.ServeOptions{})
//	go srv.Serve(tcpListener, proxy.ServeOptions{RequireAuth: true})
//	...
//	srv.Shutdown(ctx) // drains in-flight requests
//
// CONNECT is decided before any tunnel exists (403 with X-Tokrun-Reason
// for a refused host), then intercepted with a leaf certificate for the
// CONNECT host. Inside the tunnel every request is decided on its own; its
// Host, any absolute-form authority and the TLS SNI must name the CONNECT
// target (421 otherwise). Decide, inject and dial use one canonical host
// and the normalised path. Hop-by-hop and Proxy-* headers, and every header
// named in Connection, are stripped before injection; injection replaces
// the header's value and touches nothing else.
//
// The dialer (GuardedDialer) resolves names itself and refuses
// non-public addresses at connect time unless the matched rule allows
// private destinations; rules with and without that allowance never share
// pooled connections. Requests go upstream over HTTP/1.1 with the
// package's own client, which writes the request and reads the response
// on the goroutine serving the client (net/http's Transport hands each
// request to goroutines of its own), over connections pooled per host:
// a connection is reused only after its response was read whole and
// neither side asked to close it, and is checked for a close by the
// upstream before reuse.
//
// Responses to requests that carried a secret are fetched unencoded and
// scrubbed (internal/scrub): the secret, raw or encoded, is replaced by
// its placeholder. A body with a Content-Length of at most 32 KiB is read
// whole, scrubbed in one pass and sent with its new length (one cut short
// by the upstream is answered as an upstream failure); any other body is
// scrubbed as it streams, and sent chunked.
//
// A secret's placeholders headed to a host outside its sealed binding
// trip the tripwire: the request is refused before anything is sent (or
// cut off, for a placeholder deep in a large body), counted, audited and
// reported to Config.OnTripwire.
//
// Every decision writes one audit Record and updates Metrics; neither ever
// holds a secret value, a raw host or a path in a metric label. Nothing
// in the package writes to the standard library logger; tokproxy still
// silences it (log.SetOutput(io.Discard)), since a dependency that logs
// could quote what an upstream sent.
package proxy
