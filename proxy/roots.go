package proxy

import (
	"crypto/x509"
	"fmt"

	"github.com/tokrun/tokrun/internal/regfile"
)

// LoadRoots returns the system's trusted roots plus the PEM certificates
// in file: the pool to verify upstream servers with when a local API has a
// CA of its own.
func LoadRoots(file string) (*x509.CertPool, error) {
	pem, err := regfile.ReadFile(file, 4<<20)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
