package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"time"
)

// Sign issues a device's client certificate for the request csrDER.
//
// The request must be ECDSA P-256 and correctly self-signed. The
// certificate's common name is deviceID, the fleet's name for the device:
// what the request claims is not trusted. The request's subject
// serialNumber (the hardware serial) is kept. lifetime 0 means
// DefaultLifetime; longer than MaxLifetime is capped. NotBefore is backdated
// by Backdate for devices whose clocks lag.
//
// serial is SerialString of the new certificate, what the store records.
func (c *CA) Sign(csrDER []byte, deviceID string, lifetime time.Duration) (certDER []byte, serial string, notAfter time.Time, err error) {
	if len(csrDER) > MaxCSRSize {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: %d bytes > %d: %w", deviceID, len(csrDER), MaxCSRSize, ErrCSRTooLarge)
	}
	if deviceID == "" || len(deviceID) > maxCNLen {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign: device ID %q must be 1 to %d bytes", deviceID, maxCNLen)
	}
	if lifetime < 0 {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: negative lifetime %v", deviceID, lifetime)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: %w: %w", deviceID, ErrBadCSR, err)
	}
	// Check the key before the signature so that an RSA request gets the
	// error that says why, not a generic one.
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: key is %v: %w", deviceID, csr.PublicKeyAlgorithm, ErrKeyType)
	}
	if pub.Curve != elliptic.P256() {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: curve %s: %w", deviceID, pub.Curve.Params().Name, ErrKeyType)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: %w: %w", deviceID, ErrBadCSR, err)
	}
	switch {
	case lifetime == 0:
		lifetime = DefaultLifetime
	case lifetime > MaxLifetime:
		lifetime = MaxLifetime
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: deviceID, SerialNumber: csr.Subject.SerialNumber},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, cert, err := c.issue(tmpl, pub, lifetime)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("ca: sign for %q: %w", deviceID, err)
	}
	serial = SerialString(cert)
	c.log.Info("issued device certificate", "device", deviceID, "serial", serial, "not_after", cert.NotAfter)
	return der, serial, cert.NotAfter, nil
}

// issue fills in the parts every leaf shares and signs it.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, lifetime time.Duration) ([]byte, *x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := c.now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-Backdate)
	tmpl.NotAfter = now.Add(lifetime)
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		// A leaf outliving its CA would fail verification early anyway;
		// say so now rather than at the device's next handshake.
		return nil, nil, fmt.Errorf("certificate would outlive the CA (until %v)", c.cert.NotAfter)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return der, cert, nil
}

// ServerCert issues a server certificate for fleetd itself with a fresh
// in-memory P-256 key, valid for names (DNS names or IP addresses; default
// localhost, 127.0.0.1 and ::1) for lifetime (0: DefaultLifetime, capped at
// MaxLifetime). For tests and small deployments; larger ones bring their
// own server certificate.
func (c *CA) ServerCert(lifetime time.Duration, names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1", "::1"}
	}
	switch {
	case lifetime < 0:
		return tls.Certificate{}, fmt.Errorf("ca: server certificate: negative lifetime %v", lifetime)
	case lifetime == 0:
		lifetime = DefaultLifetime
	case lifetime > MaxLifetime:
		lifetime = MaxLifetime
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		} else {
			return tls.Certificate{}, errors.New("ca: server certificate: empty name")
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: server certificate: generate key: %w", err)
	}
	der, cert, err := c.issue(tmpl, &key.PublicKey, lifetime)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: server certificate: %w", err)
	}
	c.log.Info("issued server certificate", "names", names, "serial", SerialString(cert), "not_after", cert.NotAfter)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}
