// Command api is the local HTTPS "API" of tokrun's demo (make demo). It
// stands in for a real provider: it has its own CA, issues the demo
// credential, and tells each caller whether the request carried it. A
// second server, the collector, stands for an attacker's server and logs
// everything it receives.
//
//	api DIR
//
// It writes into DIR: ca.pem (its CA certificate), credential (the demo
// API key, mode 0600, as if copied from a provider's dashboard) and env
// (API_URL and COLLECTOR_URL), then serves until killed. It listens on
// 127.0.0.1 only.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: api DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	caPEM, leaf, err := certificates()
	if err != nil {
		return err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	credential := "demo-sk-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "credential"), []byte(credential+"\n"), 0o600); err != nil {
		return err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	apiLn, err := tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	if err != nil {
		return err
	}
	colLn, err := tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	if err != nil {
		return err
	}
	logger := log.New(os.Stdout, "", 0)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		status := "missing"
		switch {
		case subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+credential)) == 1:
			status = "real"
		case got != "":
			status = "wrong"
		}
		logger.Printf("  [api] %s %s: the request carried the %s credential", r.Method, r.URL.Path, status)
		w.Header().Set("Content-Type", "application/json")
		if status != "real" {
			w.WriteHeader(http.StatusUnauthorized)
		}
		json.NewEncoder(w).Encode(map[string]any{"credential": status, "message": "hello from the demo API"})
	})
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("  [collector] RECEIVED %s %s", r.Method, r.URL.Path)
		w.Write([]byte("thanks\n"))
	})
	env := fmt.Sprintf("API_URL=https://127.0.0.1:%d\nCOLLECTOR_URL=https://localhost:%d\n", port(apiLn), port(colLn))
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(env), 0o644); err != nil {
		return err
	}
	errs := make(chan error, 2)
	for _, s := range []struct {
		ln net.Listener
		h  http.Handler
	}{{apiLn, api}, {colLn, collector}} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(os.Stderr, "", 0)}
		go func() { errs <- srv.Serve(s.ln) }()
	}
	return <-errs
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// certificates makes the demo CA and a server certificate for localhost
// and 127.0.0.1.
func certificates() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokrun demo API CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
