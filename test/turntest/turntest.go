// Package turntest starts a real TURN server (Debian's coturn) for
// integration tests, and puts a room behind a firewall that lets no UDP
// through (see Room), so that a call can only connect over TURN/TCP or
// TURN/TLS.
//
// The server listens and relays on the test namespace's private address
// (netns.Addr) only: a test binary that uses this package calls netns.Main
// from its TestMain. It uses fixed long-term credentials (Username,
// Password, Realm), may relay only to peers in that namespace's subnet, and
// has a TLS listener whose certificate the test generates, signed by a test
// CA written next to it (Server.CAFile).
//
// Start fails the test, rather than skipping it, when turnserver is not
// installed: a missing server must not look like a passing suite.
package turntest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/proc"
)

// The long-term credentials every server accepts.
const (
	Username = "atrium-room"
	Password = "turntest-password"
	Realm    = "turntest.atrium.invalid"
)

// ReadyTimeout bounds the wait for the server's listeners to accept.
const ReadyTimeout = 10 * time.Second

// StopTimeout is how long turnserver may take to exit after SIGTERM before
// it is killed.
const StopTimeout = 5 * time.Second

// BinaryEnv names an environment variable that overrides the turnserver
// binary.
const BinaryEnv = "ATRIUM_TURNSERVER"

// Options adjust the server.
type Options struct {
	// Verbose turns on coturn's verbose log (every allocation, permission
	// and channel), shown when the test fails.
	Verbose bool
}

// Server is a running coturn.
type Server struct {
	// Addr is the one address the server listens and relays on: netns.Addr.
	Addr string
	// UDPURL, TCPURL and TLSURL are the server as ICE server URLs:
	// turn:ADDR:PORT?transport=udp, turn:ADDR:PORT?transport=tcp and
	// turns:ADDR:TLSPORT?transport=tcp.
	UDPURL, TCPURL, TLSURL string
	// Port is the plain TURN port (UDP and TCP), TLSPort the TLS one.
	Port, TLSPort int
	// CAFile is the PEM file of the CA that signed the TLS certificate:
	// clients of TLSURL trust it (for Go programs: SSL_CERT_FILE=CAFile).
	CAFile string
	// Dir holds the configuration, certificate and key.
	Dir string

	proc *proc.Process
}

// Start starts turnserver and waits until its TCP and TLS listeners accept
// connections. It is stopped when the test ends, and its log is added to the
// test log if the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := findBinary(t)
	if !netns.Inside() {
		t.Fatalf("turntest: the test binary must run in its own network namespace: call netns.Main(m) from TestMain (the server listens on %s, an address of that namespace)", netns.Addr)
	}
	dir := t.TempDir()
	s := &Server{
		Addr:    netns.Addr,
		Port:    freePort(t),
		TLSPort: freePort(t),
		CAFile:  filepath.Join(dir, "ca.pem"),
		Dir:     dir,
	}
	hostPort := net.JoinHostPort(s.Addr, fmt.Sprint(s.Port))
	s.UDPURL = "turn:" + hostPort + "?transport=udp"
	s.TCPURL = "turn:" + hostPort + "?transport=tcp"
	s.TLSURL = "turns:" + net.JoinHostPort(s.Addr, fmt.Sprint(s.TLSPort)) + "?transport=tcp"

	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeCertificates(s.CAFile, certFile, keyFile, net.ParseIP(s.Addr)); err != nil {
		t.Fatalf("turntest: %v", err)
	}
	// Relay ports: a random narrow range keeps concurrent test binaries
	// apart (the range janustest uses starts at 20000 and ends below 50000).
	relayMin := 50000 + 100*mrand.IntN(150)
	conf := filepath.Join(dir, "turnserver.conf")
	if err := writeConfig(conf, map[string]any{
		"Addr":     s.Addr,
		"Port":     s.Port,
		"TLSPort":  s.TLSPort,
		"RelayMin": relayMin,
		"RelayMax": relayMin + 99,
		"User":     Username,
		"Password": Password,
		"Realm":    Realm,
		"Cert":     certFile,
		"Key":      keyFile,
		"Dir":      dir,
		"Verbose":  opts.Verbose,
	}); err != nil {
		t.Fatalf("turntest: %v", err)
	}

	cmd := exec.Command(bin, "-c", conf)
	cmd.Dir = dir
	s.proc = proc.Start(t, "turnserver", cmd, StopTimeout)
	if err := s.waitReady(ReadyTimeout); err != nil {
		t.Fatalf("turntest: turnserver did not become ready: %v\n--- turnserver log ---\n%s", err, s.Log())
	}
	return s
}

// Log returns what turnserver wrote so far.
func (s *Server) Log() string { return s.proc.Log() }

// waitReady waits until the TCP listener accepts and the TLS listener
// completes a handshake with a client that trusts CAFile.
func (s *Server) waitReady(timeout time.Duration) error {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := s.proc.Exited(); err != nil {
			return fmt.Errorf("at start: %w", err)
		}
		if last = s.probe(roots); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s: %v", timeout, last)
}

func (s *Server) probe(roots *x509.CertPool) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort(s.Addr, fmt.Sprint(s.Port)))
	if err != nil {
		return err
	}
	_ = c.Close()
	tc, err := tls.DialWithDialer(&d, "tcp", net.JoinHostPort(s.Addr, fmt.Sprint(s.TLSPort)), &tls.Config{RootCAs: roots, ServerName: s.Addr})
	if err != nil {
		return err
	}
	return tc.Close()
}

// confTemplate is coturn's configuration. Everything coturn would write
// (log, pid file, user database) goes into the test's directory.
var confTemplate = template.Must(template.New("turnserver.conf").Option("missingkey=error").Parse(`# Written by turntest for one test.
listening-ip={{.Addr}}
relay-ip={{.Addr}}
listening-port={{.Port}}
tls-listening-port={{.TLSPort}}
min-port={{.RelayMin}}
max-port={{.RelayMax}}
lt-cred-mech
user={{.User}}:{{.Password}}
realm={{.Realm}}
fingerprint
cert={{.Cert}}
pkey={{.Key}}
no-dtls
no-tlsv1
no-tlsv1_1
no-rfc5780
no-cli
no-multicast-peers
# Relay only to the test namespace's subnet (coturn would relay to any
# address but loopback by default); deny everything else outright.
allowed-peer-ip=10.231.0.0-10.231.0.255
denied-peer-ip=0.0.0.0-255.255.255.255
log-file=stdout
simple-log
pidfile={{.Dir}}/turnserver.pid
userdb={{.Dir}}/turndb
{{if .Verbose}}verbose
{{end}}`))

func writeConfig(path string, vars map[string]any) error {
	var b bytes.Buffer
	if err := confTemplate.Execute(&b, vars); err != nil {
		return fmt.Errorf("fill in turnserver.conf: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write turnserver.conf: %w", err)
	}
	return nil
}

// writeCertificates makes a test CA (ECDSA P-256) and a server certificate
// it signs for ip, valid for a day, and writes the CA certificate, the
// server certificate and the server key as PEM.
func writeCertificates(caFile, certFile, keyFile string, ip net.IP) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Atrium turntest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ip.String()},
		IPAddresses:  []net.IP{ip},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode server key: %w", err)
	}
	files := []struct {
		path, typ string
		der       []byte
	}{
		{caFile, "CERTIFICATE", caDER},
		{certFile, "CERTIFICATE", leafDER},
		{keyFile, "PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Base(f.path), err)
		}
	}
	return nil
}

func findBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("turntest: the turnserver binary %s (from %s) is missing: %v", bin, BinaryEnv, err)
		}
		return bin
	}
	if bin, err := exec.LookPath("turnserver"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/turnserver"); err == nil {
		return "/usr/bin/turnserver"
	}
	t.Fatalf("turntest: the turnserver binary is missing: install Debian's coturn package (apt-get install coturn) or set %s", BinaryEnv)
	return ""
}

// freePort returns a port free for both TCP and UDP on netns.Addr a moment
// ago: coturn listens on both with the same number.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(netns.Addr, "0"))
		if err != nil {
			t.Fatalf("turntest: find a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(netns.Addr, fmt.Sprint(port)))
		_ = ln.Close()
		if err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal("turntest: no port free for both TCP and UDP")
	return 0
}
