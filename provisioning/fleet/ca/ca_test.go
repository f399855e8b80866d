package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/identity"
)

var serialFacts = identity.Facts{Serial: "AT-1234-5678", MachineID: "0123456789abcdef0123456789abcdef"}

func TestDeviceAcceptedThenRevoked(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, serial, notAfter, err := c.Sign(dev.csr, "dev-42", 0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if got := SerialString(cert); got != serial || len(serial) != 32 {
		t.Errorf("serial = %q, certificate's %q; want the same 32 hex digits", serial, got)
	}
	if !notAfter.Equal(clock.Now().Add(DefaultLifetime)) || !cert.NotAfter.Equal(notAfter) {
		t.Errorf("notAfter = %v (cert %v), want %v", notAfter, cert.NotAfter, clock.Now().Add(DefaultLifetime))
	}

	srvCert, err := c.ServerCert(0)
	if err != nil {
		t.Fatalf("ServerCert: %v", err)
	}
	revs := &revocations{}
	cfg := c.ServerTLS(srvCert, revs.isRevoked)

	if sErr, cErr := handshake(t, cfg, c.Bundle(), dev.tlsCert(der), clock); sErr != nil || cErr != nil {
		t.Fatalf("good device refused: server %v, client %v", sErr, cErr)
	}
	if len(revs.asked) != 1 || revs.asked[0] != serial {
		t.Errorf("revocation asked about %q, want [%s]", revs.asked, serial)
	}

	revs.revoke(serial)
	sErr, cErr := handshake(t, cfg, c.Bundle(), dev.tlsCert(der), clock)
	if !errors.Is(sErr, ErrRevoked) {
		t.Errorf("revoked device: server error %v, want ErrRevoked", sErr)
	}
	if cErr == nil {
		t.Error("revoked device: client saw no error")
	}
}

func TestRevocationLookupFailureRefuses(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, _, _, err := c.Sign(dev.csr, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := c.ServerCert(0, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	lookupErr := errors.New("database is locked")
	revs := &revocations{err: lookupErr}
	sErr, _ := handshake(t, c.ServerTLS(srvCert, revs.isRevoked), c.Bundle(), dev.tlsCert(der), clock)
	if !errors.Is(sErr, lookupErr) {
		t.Errorf("server error %v, want the lookup's error", sErr)
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, _, _, err := c.Sign(dev.csr, "dev-1", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The server certificate outlives the device's, so only the latter
	// expires.
	srvCert, err := c.ServerCert(MaxLifetime)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.ServerTLS(srvCert, (&revocations{}).isRevoked)
	if sErr, cErr := handshake(t, cfg, c.Bundle(), dev.tlsCert(der), clock); sErr != nil || cErr != nil {
		t.Fatalf("fresh certificate refused: server %v, client %v", sErr, cErr)
	}
	clock.Advance(24*time.Hour + time.Second)
	sErr, _ := handshake(t, cfg, c.Bundle(), dev.tlsCert(der), clock)
	var invalid x509.CertificateInvalidError
	if !errors.As(sErr, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired certificate: server error %v, want x509 Expired", sErr)
	}
}

func TestOtherCARefused(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	other := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, _, _, err := other.Sign(dev.csr, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := c.ServerCert(0)
	if err != nil {
		t.Fatal(err)
	}
	revs := &revocations{}
	sErr, _ := handshake(t, c.ServerTLS(srvCert, revs.isRevoked), c.Bundle(), dev.tlsCert(der), clock)
	var unknown x509.UnknownAuthorityError
	if !errors.As(sErr, &unknown) {
		t.Errorf("foreign certificate: server error %v, want UnknownAuthorityError", sErr)
	}
	if len(revs.asked) != 0 {
		t.Errorf("revocation consulted for an unverified certificate: %q", revs.asked)
	}
}

func TestServerCertNotUsableAsClient(t *testing.T) {
	// A server certificate from the same CA must not open device
	// endpoints: it lacks client auth.
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	srvCert, err := c.ServerCert(0)
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := c.ServerCert(0, "intruder.example")
	if err != nil {
		t.Fatal(err)
	}
	sErr, _ := handshake(t, c.ServerTLS(srvCert, (&revocations{}).isRevoked), c.Bundle(), intruder, clock)
	var invalid x509.CertificateInvalidError
	if !errors.As(sErr, &invalid) || invalid.Reason != x509.IncompatibleUsage {
		t.Errorf("server certificate as client: error %v, want IncompatibleUsage", sErr)
	}
}

func TestSignedCertificateContents(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, _, _, err := c.Sign(dev.csr, "dev-7", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if cert.Subject.CommonName != "dev-7" {
		t.Errorf("CN = %q, want the fleet's ID dev-7 (the CSR said %q)", cert.Subject.CommonName, serialFacts.Serial)
	}
	if cert.Subject.SerialNumber != serialFacts.Serial {
		t.Errorf("serialNumber = %q, want %q", cert.Subject.SerialNumber, serialFacts.Serial)
	}
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Errorf("IsCA %v, BasicConstraintsValid %v; want a leaf", cert.IsCA, cert.BasicConstraintsValid)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v", cert.KeyUsage)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v, want client auth only", cert.ExtKeyUsage)
	}
	if !cert.NotBefore.Equal(now.Add(-Backdate)) {
		t.Errorf("NotBefore = %v, want %v", cert.NotBefore, now.Add(-Backdate))
	}
	if !cert.NotAfter.Equal(now.Add(MaxLifetime)) {
		t.Errorf("NotAfter = %v, want capped at %v", cert.NotAfter, now.Add(MaxLifetime))
	}
	if cert.SerialNumber.BitLen() > 128 || cert.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v not a positive 128-bit number", cert.SerialNumber)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(dev.id.Public()) {
		t.Error("certificate key is not the device's")
	}
	if err := cert.CheckSignatureFrom(c.Certificate()); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}

	// A device without a usable serial: CN machine-id:…, no serialNumber.
	dev2 := newDevice(t, identity.Facts{Serial: "To Be Filled By O.E.M.", MachineID: serialFacts.MachineID})
	der2, serial2, _, err := c.Sign(dev2.csr, "dev-8", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert2, _ := x509.ParseCertificate(der2)
	if cert2.Subject.CommonName != "dev-8" || cert2.Subject.SerialNumber != "" {
		t.Errorf("subject = %v, want CN dev-8 and no serialNumber", cert2.Subject)
	}
	if serial2 == SerialString(cert) {
		t.Error("two certificates got the same serial")
	}
}

// csrFor makes a CSR signed by key.
func csrFor(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignRefusesBadRequests(t *testing.T) {
	c := mustOpenCA(t, t.TempDir(), newClock())
	dev := newDevice(t, serialFacts)

	badSig := append([]byte(nil), dev.csr...)
	badSig[len(badSig)-1] ^= 0x01 // the signature is the DER's tail

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		csr      []byte
		id       string
		lifetime time.Duration
		want     error
		wantText string
	}{
		{"bad signature", badSig, "d", 0, ErrBadCSR, "invalid certificate request"},
		{"garbage", []byte("not a certificate request"), "d", 0, ErrBadCSR, "invalid certificate request"},
		{"empty", nil, "d", 0, ErrBadCSR, "invalid certificate request"},
		{"RSA", csrFor(t, rsaKey), "d", 0, ErrKeyType, "key is RSA"},
		{"P-384", csrFor(t, p384), "d", 0, ErrKeyType, "curve P-384"},
		{"Ed25519", csrFor(t, edKey), "d", 0, ErrKeyType, "key is Ed25519"},
		{"oversized", make([]byte, MaxCSRSize+1), "d", 0, ErrCSRTooLarge, "too large"},
		{"empty device ID", dev.csr, "", 0, nil, "device ID"},
		{"long device ID", dev.csr, strings.Repeat("x", 65), 0, nil, "device ID"},
		{"negative lifetime", dev.csr, "d", -time.Hour, nil, "negative lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, serial, _, err := c.Sign(tt.csr, tt.id, tt.lifetime)
			if err == nil {
				t.Fatalf("Sign succeeded (serial %s)", serial)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
			if der != nil {
				t.Error("certificate returned with an error")
			}
		})
	}
	// The untouched request still signs, so the failures above are theirs.
	if _, _, _, err := c.Sign(dev.csr, "d", 0); err != nil {
		t.Errorf("good request: %v", err)
	}
}

func TestReloadedCASignsForOldBundle(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	first := mustOpenCA(t, dir, clock)
	bundle := first.Bundle()

	st, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %04o, want 0600", st.Mode().Perm())
	}

	again := mustOpenCA(t, dir, clock)
	if string(again.Bundle()) != string(bundle) {
		t.Fatal("reloaded CA has another certificate")
	}
	dev := newDevice(t, serialFacts)
	der, _, _, err := again.Sign(dev.csr, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("old bundle does not verify the reloaded CA's certificate: %v", err)
	}
	// And over the wire, the first instance's server accepts it.
	srvCert, err := first.ServerCert(0)
	if err != nil {
		t.Fatal(err)
	}
	if sErr, cErr := handshake(t, first.ServerTLS(srvCert, (&revocations{}).isRevoked), bundle, dev.tlsCert(der), clock); sErr != nil || cErr != nil {
		t.Errorf("handshake: server %v, client %v", sErr, cErr)
	}
}

func TestOpenRefusesLooseOrBrokenFiles(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	mustOpenCA(t, dir, clock)
	keyPath := filepath.Join(dir, KeyFileName)
	certPath := filepath.Join(dir, CertFileName)

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Options{Dir: dir, Now: clock.Now}); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("key mode %04o: Open error %v, want ErrKeyPermissions", mode, err)
		}
	}
	if err := os.Chmod(keyPath, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Now: clock.Now}); err != nil {
		t.Errorf("key mode 0400: %v", err)
	}

	// A certificate that is not the key's.
	other := mustOpenCA(t, t.TempDir(), clock)
	if err := os.WriteFile(certPath, other.Bundle(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Now: clock.Now}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("mismatched certificate: %v, want ErrCorrupt", err)
	}
	// Key without certificate.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Now: clock.Now}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("key without certificate: %v, want ErrCorrupt", err)
	}
	// Certificate without key: not replaced by a new CA.
	if err := os.WriteFile(certPath, other.Bundle(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Now: clock.Now}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("certificate without key: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Error("Open made a new key next to an existing certificate")
	}
}

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := RenewAt(nb, nb.Add(30*24*time.Hour)), nb.Add(20*24*time.Hour); !got.Equal(want) {
		t.Errorf("RenewAt 30 days = %v, want %v", got, want)
	}
	if got, want := RenewAt(nb, nb.Add(90*time.Minute)), nb.Add(60*time.Minute); !got.Equal(want) {
		t.Errorf("RenewAt 90 min = %v, want %v", got, want)
	}
}

func TestServerCertNames(t *testing.T) {
	c := mustOpenCA(t, t.TempDir(), newClock())
	sc, err := c.ServerCert(0, "fleet.example", "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	leaf := sc.Leaf
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "fleet.example" || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.5" {
		t.Errorf("SANs = %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Errorf("ExtKeyUsage %v IsCA %v, want server auth leaf", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if err := leaf.VerifyHostname("fleet.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err == nil {
		t.Error("certificate for fleet.example also valid for localhost")
	}
	if _, err := c.ServerCert(0, ""); err == nil {
		t.Error("empty name accepted")
	}
	var _ tls.Certificate = sc
}

func TestRevokedCannotResumeSession(t *testing.T) {
	clock := newClock()
	c := mustOpenCA(t, t.TempDir(), clock)
	dev := newDevice(t, serialFacts)
	der, serial, _, err := c.Sign(dev.csr, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := c.ServerCert(0)
	if err != nil {
		t.Fatal(err)
	}
	revs := &revocations{}
	cfg := c.ServerTLS(srvCert, revs.isRevoked)
	cache := tls.NewLRUClientSessionCache(4)
	if sErr, cErr, _ := handshakeResume(t, cfg, c.Bundle(), dev.tlsCert(der), clock, cache); sErr != nil || cErr != nil {
		t.Fatalf("first handshake: server %v, client %v", sErr, cErr)
	}
	// The resumption itself must work, or the test below proves nothing.
	if sErr, cErr, resumed := handshakeResume(t, cfg, c.Bundle(), dev.tlsCert(der), clock, cache); sErr != nil || cErr != nil || !resumed {
		t.Fatalf("second handshake: server %v, client %v, resumed %v; want a resumed session", sErr, cErr, resumed)
	}
	revs.revoke(serial)
	sErr, _, _ := handshakeResume(t, cfg, c.Bundle(), dev.tlsCert(der), clock, cache)
	if !errors.Is(sErr, ErrRevoked) {
		t.Errorf("resumption after revocation: server error %v, want ErrRevoked", sErr)
	}
}
