package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// File names inside the CA directory.
const (
	// KeyFileName holds the CA key (PKCS#8 PEM, 0600).
	KeyFileName = "ca.key"
	// CertFileName holds the self-signed CA certificate (PEM).
	CertFileName = "ca.crt"
)

const (
	// DefaultLifetime is a device certificate's lifetime when Sign is given
	// none: short enough that a lost device without revocation ages out,
	// long enough that a device offline for a couple of weeks can renew.
	DefaultLifetime = 30 * 24 * time.Hour
	// MaxLifetime caps what Sign issues.
	MaxLifetime = 90 * 24 * time.Hour
	// Backdate is subtracted from NotBefore so that a device whose clock is
	// a few minutes behind fleetd's still accepts its new certificate.
	Backdate = 5 * time.Minute
	// MaxCSRSize bounds the request Sign parses.
	MaxCSRSize = 4096
	// caLifetime is the CA certificate's: devices pin it in their bundle,
	// so it outlives many device certificates.
	caLifetime = 10 * 365 * 24 * time.Hour
	// maxCNLen is X.520's upper bound for a common name.
	maxCNLen = 64
)

// Options configure Open.
type Options struct {
	// Dir holds the CA key and certificate; created (0700) if missing.
	// Required.
	Dir string
	// Now is the clock for issuing and for verifying peers. Default
	// time.Now.
	Now func() time.Time
	// Logger receives the CA's creation and each issued certificate.
	// Default: discard.
	Logger *slog.Logger
	// Name is the CA certificate's common name when it is created.
	// Default "Atrium fleet CA".
	Name string
}

// CA issues device and server certificates. Safe for concurrent use: it
// holds no mutable state after Open.
type CA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pool *x509.CertPool
	now  func() time.Time
	log  *slog.Logger
}

// Open loads the CA from opts.Dir, creating its key and certificate on
// first start. It fails with ErrKeyPermissions for a key file that group
// or others can access, and ErrCorrupt for unusable files.
func Open(opts Options) (*CA, error) {
	if opts.Dir == "" {
		return nil, errors.New("ca: open: Options.Dir is empty")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Name == "" {
		opts.Name = "Atrium fleet CA"
	}
	c := &CA{now: opts.Now, log: opts.Logger}
	keyPath := filepath.Join(opts.Dir, KeyFileName)
	certPath := filepath.Join(opts.Dir, CertFileName)

	key, err := readKey(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(certPath); err == nil {
			// A certificate without its key: creating a new key would
			// silently replace the CA every device trusts.
			return nil, fmt.Errorf("ca: open %s: certificate without key: %w", opts.Dir, ErrCorrupt)
		}
		if err := c.create(keyPath, certPath, opts.Name); err != nil {
			return nil, fmt.Errorf("ca: create in %s: %w", opts.Dir, err)
		}
		c.log.Info("created fleet CA", "dir", opts.Dir, "subject", c.cert.Subject.String())
	case err != nil:
		return nil, fmt.Errorf("ca: open: %w", err)
	default:
		c.key = key
		cert, err := readCert(certPath)
		if err != nil {
			return nil, fmt.Errorf("ca: open: %w", err)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || !pub.Equal(&key.PublicKey) {
			return nil, fmt.Errorf("ca: open %s: certificate does not match key: %w", certPath, ErrCorrupt)
		}
		c.cert = cert
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(c.cert)
	return c, nil
}

// create makes a new key and self-signed certificate. The key is written
// first: a crash between the two writes leaves a key alone, which the next
// Open treats as unusable rather than making a second CA.
func (c *CA) create(keyPath, certPath, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("self-sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse own certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	c.key, c.cert = key, cert
	return nil
}

// readKey reads the CA key, checking the permissions of the file it
// opened (not of a path that may have been swapped since).
func readKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: mode %04o: %w", path, perm, ErrKeyPermissions)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read key %s: no PRIVATE KEY PEM block: %w", path, ErrCorrupt)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w: %w", path, ErrCorrupt, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("read key %s: not an ECDSA P-256 key: %w", path, ErrCorrupt)
	}
	return ek, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read certificate: key without certificate: %w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read certificate %s: no CERTIFICATE PEM block: %w", path, ErrCorrupt)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w: %w", path, ErrCorrupt, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("read certificate %s: not a CA certificate: %w", path, ErrCorrupt)
	}
	return cert, nil
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a new pool holding the CA certificate, for verifying
// device certificates.
func (c *CA) Pool() *x509.CertPool { return c.pool.Clone() }

// Bundle returns the CA certificate as PEM, what devices install to
// verify fleetd's server certificate.
func (c *CA) Bundle() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// newSerial returns a random, positive 128-bit serial: unpredictable
// serials are what the CA/Browser rules ask for, and 128 bits make a
// collision in a fleet's lifetime negligible.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("random serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SerialString is the form of a certificate serial the fleet stores and
// revokes by: 32 lowercase hex digits for the serials this CA issues.
func SerialString(cert *x509.Certificate) string {
	return fmt.Sprintf("%032x", cert.SerialNumber)
}

// RenewAt is when a device should renew a certificate valid from notBefore
// to notAfter: after two thirds of its lifetime, leaving a third for
// retries while the device is offline.
func RenewAt(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(notAfter.Sub(notBefore) * 2 / 3)
}
