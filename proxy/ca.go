package proxy

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Certificate lifetimes. Leaves are short-lived and cached; the CA lives
// long enough to be installed once in a sandbox trust bundle.
const (
	caLifetime   = 5 * 365 * 24 * time.Hour
	leafLifetime = 7 * 24 * time.Hour
	leafRenew    = 24 * time.Hour // regenerate a cached leaf this long before expiry
	// DefaultLeafCacheSize bounds the number of cached leaf certificates.
	DefaultLeafCacheSize = 1024
)

// CA issues the leaf certificates the proxy presents inside intercepted
// TLS tunnels. Keys are ECDSA P-256. Leaves are cached in a bounded LRU
// and generated once per host even under concurrency.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	now     func() time.Time

	mu       sync.Mutex
	size     int
	lru      *list.List               // of *leafEntry, most recent first
	entries  map[string]*list.Element // host -> element
	inflight map[string]*leafCall
	// OnLeaf, if not nil, is called with true on a cache hit and false on
	// a miss (a new certificate). It must be set before first use.
	OnLeaf func(hit bool)
}

type leafEntry struct {
	host string
	cert *tls.Certificate
}

type leafCall struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewCA generates a new CA certificate and key.
func NewCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tokrun proxy CA " + serial.Text(16)[:8], Organization: []string{"tokrun"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return newCA(der, key)
}

func newCA(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate is not a CA (basic constraints)")
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("CA certificate does not match its key")
	}
	return &CA{
		cert:     cert,
		key:      key,
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		now:      time.Now,
		size:     DefaultLeafCacheSize,
		lru:      list.New(),
		entries:  map[string]*list.Element{},
		inflight: map[string]*leafCall{},
	}, nil
}

// CA file names inside a state directory.
const (
	caCertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"
)

// LoadOrCreateCA loads the CA from dir (ca.pem, ca-key.pem), creating
// both on first use. The key file is created with O_EXCL and mode 0600; a
// key file accessible by group or others is refused.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Anyone who can write the directory can put their own CA in it, for
	// the next start to load and clients to trust.
	if st, err := os.Stat(dir); err != nil {
		return nil, err
	} else if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("state directory %s is writable by group or others (mode %04o), so they could replace the CA; run: chmod go-w %s", dir, st.Mode().Perm(), dir)
	}
	if _, err := os.Stat(keyPath); err == nil {
		return LoadCA(certPath, keyPath)
	}
	ca, err := NewCA(time.Now())
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	if err := writeExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeExclusive(certPath, ca.certPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return nil, err
	}
	return ca, nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// LoadCA loads a CA certificate and its ECDSA key from PEM files.
func LoadCA(certPath, keyPath string) (*CA, error) {
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("CA key %s is accessible by group or others (mode %04o); run: chmod 600 %s", keyPath, st.Mode().Perm(), keyPath)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certPath)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%s: no PEM private key", keyPath)
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
		key, _ = k.(*ecdsa.PrivateKey)
	} else if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
		key = k
	}
	if key == nil {
		return nil, fmt.Errorf("%s: not an ECDSA private key", keyPath)
	}
	ca, err := newCA(cb.Bytes, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	return ca, nil
}

// CertPEM returns the CA certificate in PEM form, for trust bundles.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// Certificate returns the parsed CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// SetCacheSize bounds the leaf cache (default DefaultLeafCacheSize).
func (c *CA) SetCacheSize(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size = max(n, 1)
	c.evictLocked()
}

// Leaf returns a certificate for host (a canonical host name or IP
// literal), from the cache or newly generated. Concurrent calls for one
// host generate it once.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	c.mu.Lock()
	if el, ok := c.entries[host]; ok {
		e := el.Value.(*leafEntry)
		if c.now().Add(leafRenew).Before(e.cert.Leaf.NotAfter) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			c.report(true)
			return e.cert, nil
		}
		c.lru.Remove(el)
		delete(c.entries, host)
	}
	if call, ok := c.inflight[host]; ok {
		c.mu.Unlock()
		<-call.done
		c.report(true)
		return call.cert, call.err
	}
	call := &leafCall{done: make(chan struct{})}
	c.inflight[host] = call
	c.mu.Unlock()

	call.cert, call.err = c.issue(host)
	c.report(false)

	c.mu.Lock()
	delete(c.inflight, host)
	if call.err == nil {
		c.entries[host] = c.lru.PushFront(&leafEntry{host: host, cert: call.cert})
		c.evictLocked()
	}
	c.mu.Unlock()
	close(call.done)
	return call.cert, call.err
}

func (c *CA) report(hit bool) {
	if c.OnLeaf != nil {
		c.OnLeaf(hit)
	}
}

func (c *CA) evictLocked() {
	for c.lru.Len() > c.size {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.entries, el.Value.(*leafEntry).host)
	}
}

func (c *CA) issue(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
