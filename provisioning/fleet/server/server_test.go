package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServesBothListenersAndStops(t *testing.T) {
	dir := t.TempDir()
	srv, err := Open(context.Background(), Options{DataDir: dir, DeviceListen: "127.0.0.1:0", ConsoleListen: "127.0.0.1:0",
		ServerNames: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	// The console answers on loopback.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + srv.ConsoleAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src") {
		t.Fatalf("console: %d %v", resp.StatusCode, resp.Header)
	}

	// The device API presents a certificate for the names, with the fleet
	// CA in the chain (what a device that pinned it needs), over TLS 1.3.
	roots := x509.NewCertPool()
	roots.AddCert(srv.CA.Certificate())
	conn, err := tls.Dial("tcp", srv.DeviceAddr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cs := conn.ConnectionState()
	conn.Close()
	if cs.Version != tls.VersionTLS13 || len(cs.PeerCertificates) != 2 ||
		sha256.Sum256(cs.PeerCertificates[1].Raw) != sha256.Sum256(srv.CA.Certificate().Raw) {
		t.Fatalf("device API chain: version %x, %d certificates", cs.Version, len(cs.PeerCertificates))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestConsoleOffLoopbackNeedsACertificate(t *testing.T) {
	_, err := Open(context.Background(), Options{DataDir: t.TempDir(), ConsoleListen: "0.0.0.0:8080"})
	if err == nil || !strings.Contains(err.Error(), "needs a certificate and key") {
		t.Fatalf("public console without TLS: %v", err)
	}
	_, err = Open(context.Background(), Options{DataDir: t.TempDir(), ConsoleCert: "/c.pem"})
	if err == nil || !strings.Contains(err.Error(), "both a certificate and a key") {
		t.Fatalf("certificate without key: %v", err)
	}
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Fatal("no data directory accepted")
	}
}

func TestServerCertificateRenewedAtTwoThirds(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv, err := Open(context.Background(), Options{DataDir: t.TempDir(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Store.Close()
	first, err := srv.currentServerCert()
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(ServerCertLifetime / 2)
	if again, _ := srv.currentServerCert(); again != first {
		t.Fatal("renewed before two thirds of its life")
	}
	now = now.Add(ServerCertLifetime / 4)
	renewed, err := srv.currentServerCert()
	if err != nil || renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("not renewed after three quarters of its life: %v", err)
	}
}
