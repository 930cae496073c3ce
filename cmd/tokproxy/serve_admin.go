package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// health is the state /healthz and /readyz report.
type health struct {
	ready    atomic.Bool // listeners up and a policy loaded
	draining atomic.Bool // stopping: no longer ready
}

// newAdminServer returns the admin HTTP server: /metrics from reg,
// /healthz and /readyz from h. It serves nothing else and holds no
// secrets, so it needs no authentication.
func newAdminServer(reg *prometheus.Registry, h *health) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case h.draining.Load():
			plain(w, http.StatusServiceUnavailable, "draining")
		case !h.ready.Load():
			plain(w, http.StatusServiceUnavailable, "starting")
		default:
			plain(w, http.StatusOK, "ready")
		}
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}
