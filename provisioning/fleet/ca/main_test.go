package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/provisioning/identity"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is the clock the code under test is given.
type fakeClock = testclock.Clock

func newClock() *fakeClock {
	return testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// revocations is the fleet's revocation list as the test sets it.
type revocations struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	asked   []string
}

func (r *revocations) isRevoked(_ context.Context, serial string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, serial)
	return r.revoked[serial], r.err
}

func (r *revocations) revoke(serial string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]bool{}
	}
	r.revoked[serial] = true
}

func mustOpenCA(t *testing.T, dir string, clock *fakeClock) *CA {
	t.Helper()
	c, err := Open(Options{Dir: dir, Now: clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

// device is a device's identity (a file key, as on a device without TPM)
// and its enrollment request.
type device struct {
	id  *identity.Identity
	csr []byte
}

func newDevice(t *testing.T, facts identity.Facts) device {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	id, err := identity.Open(ctx, identity.Options{StateDir: t.TempDir(), Backend: identity.BackendFile})
	if err != nil {
		t.Fatalf("identity.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := id.Close(); err != nil {
			t.Errorf("identity Close: %v", err)
		}
	})
	csr, err := id.CSR(facts)
	if err != nil {
		t.Fatalf("CSR: %v", err)
	}
	return device{id: id, csr: csr}
}

// tlsCert pairs an issued certificate with the device's key.
func (d device) tlsCert(der []byte) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: d.id}
}

// handshake runs one mTLS connection over loopback: the server with
// serverCfg, the client presenting clientCert and trusting bundle at the
// clock's time. It returns the server's handshake error and the client's
// error from handshake or first read (in TLS 1.3 the client learns of its
// rejection only then).
func handshake(t *testing.T, serverCfg *tls.Config, bundle []byte, clientCert tls.Certificate, clock *fakeClock) (serverErr, clientErr error) {
	t.Helper()
	serverErr, clientErr, _ = handshakeResume(t, serverCfg, bundle, clientCert, clock, nil)
	return serverErr, clientErr
}

// handshakeResume is handshake with a client session cache (nil: none); it
// also reports whether the connection resumed a session.
func handshakeResume(t *testing.T, serverCfg *tls.Config, bundle []byte, clientCert tls.Certificate, clock *fakeClock, cache tls.ClientSessionCache) (serverErr, clientErr error, resumed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		srv := tls.Server(conn, serverCfg)
		if err := srv.HandshakeContext(ctx); err != nil {
			done <- err
			return
		}
		_, err = srv.Write([]byte("ok"))
		done <- err
	}()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle holds no certificate")
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(raw, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         "localhost",
		RootCAs:            roots,
		Certificates:       []tls.Certificate{clientCert},
		Time:               clock.Now,
		ClientSessionCache: cache,
	})
	clientErr = client.HandshakeContext(ctx)
	if clientErr == nil {
		resumed = client.ConnectionState().DidResume
		buf := make([]byte, 2)
		_, clientErr = io.ReadFull(client, buf)
		if clientErr == nil && string(buf) != "ok" {
			clientErr = errors.New("server sent " + string(buf))
		}
	}
	client.Close()
	return <-done, clientErr, resumed
}
