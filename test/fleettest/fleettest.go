// Package fleettest starts the real fleetd binary for tests: on SQLite in a
// private data directory or on a PostgreSQL database (test/pgtest), with
// fixed loopback ports so that a restart comes back where devices look for
// it, and a console account to log in with.
package fleettest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/proc"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// Console account every Start creates.
const (
	AdminUser     = "it-admin"
	AdminPassword = "correct horse battery"
)

// Options adjust fleetd.
type Options struct {
	// Binary is a built fleetd; empty builds one.
	Binary string
	// PostgresDSN selects PostgreSQL; empty uses SQLite in the data
	// directory.
	PostgresDSN string
	// CheckIn is the interval fleetd asks of devices (default 2 s: tests
	// should not wait a minute for each round).
	CheckIn time.Duration
	// Serve are extra flags for `fleetd serve` (for example -updates DIR).
	Serve []string
}

// Fleetd is a fleet server the test controls.
type Fleetd struct {
	Binary     string
	Data       string
	DSN        string
	DeviceURL  string // https://localhost:PORT
	ConsoleURL string // http://127.0.0.1:PORT
	checkIn    time.Duration
	serve      []string
	devicePort int
	conPort    int
	p          *proc.Process
	t          testing.TB
}

// Start builds (unless given) and starts fleetd, creates the console
// account AdminUser, and waits until both listeners answer.
func Start(t testing.TB, opts Options) *Fleetd {
	t.Helper()
	if opts.Binary == "" {
		opts.Binary = roomdtest.Build(t, "./cmd/fleetd")
	}
	if opts.CheckIn == 0 {
		opts.CheckIn = 2 * time.Second
	}
	f := &Fleetd{Binary: opts.Binary, Data: t.TempDir(), DSN: opts.PostgresDSN, checkIn: opts.CheckIn, serve: opts.Serve, t: t,
		devicePort: roomdtest.FreePort(t), conPort: roomdtest.FreePort(t)}
	f.DeviceURL = fmt.Sprintf("https://localhost:%d", f.devicePort)
	f.ConsoleURL = fmt.Sprintf("http://127.0.0.1:%d", f.conPort)
	f.run("useradd", strings.NewReader(AdminPassword+"\n"), "-username", AdminUser, "-role", "admin")
	f.Restart()
	return f
}

func (f *Fleetd) args(cmd string, extra ...string) []string {
	args := []string{cmd, "-data", f.Data}
	if f.DSN != "" {
		args = append(args, "-postgres", f.DSN)
	}
	return append(args, extra...)
}

// run runs a fleetd command to completion.
func (f *Fleetd) run(cmd string, stdin *strings.Reader, extra ...string) string {
	f.t.Helper()
	c := exec.Command(f.Binary, f.args(cmd, extra...)...)
	if stdin != nil {
		c.Stdin = stdin
	}
	out, err := c.CombinedOutput()
	if err != nil {
		f.t.Fatalf("fleetd %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// AddUser creates another console account.
func (f *Fleetd) AddUser(name, role, password string) {
	f.t.Helper()
	f.run("useradd", strings.NewReader(password+"\n"), "-username", name, "-role", role)
}

// CAFingerprint is what a room pins in [fleet] ca_sha256.
func (f *Fleetd) CAFingerprint() string {
	f.t.Helper()
	return strings.TrimSpace(f.run("ca-fingerprint", nil))
}

// CAFile is the fleet CA certificate's path (the PEM a room may trust in
// [fleet] ca_file).
func (f *Fleetd) CAFile() string { return filepath.Join(f.Data, "ca", "ca.crt") }

// Stop stops fleetd with SIGTERM (a clean restart follows with Restart).
func (f *Fleetd) Stop() {
	f.t.Helper()
	if f.p == nil {
		return
	}
	if err := f.p.Stop(10 * time.Second); err != nil {
		f.t.Fatal(err)
	}
	f.p = nil
}

// Kill stops fleetd with SIGKILL, as a crash or power cut would.
func (f *Fleetd) Kill() {
	f.t.Helper()
	if f.p == nil {
		return
	}
	f.p.Kill()
	f.p = nil
}

// Restart starts fleetd (again) on the same data and ports and waits for
// it.
func (f *Fleetd) Restart() {
	f.t.Helper()
	if f.p != nil {
		f.Stop()
	}
	flags := append([]string{
		"-device-listen", fmt.Sprintf("127.0.0.1:%d", f.devicePort),
		"-console-listen", fmt.Sprintf("127.0.0.1:%d", f.conPort),
		"-server-name", "localhost,127.0.0.1", "-checkin", f.checkIn.String(), "-log-level", "debug"}, f.serve...)
	cmd := exec.Command(f.Binary, f.args("serve", flags...)...)
	f.p = proc.Start(f.t, "fleetd", cmd, 10*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := f.p.Exited(); err != nil {
			f.t.Fatalf("%v\n--- fleetd log ---\n%s", err, f.p.Log())
		}
		if f.answers() {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("fleetd did not answer within 20 s\n--- fleetd log ---\n%s", f.p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *Fleetd) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.ConsoleURL+"/", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", //nolint:gosec // only asks whether TLS is up
		net.JoinHostPort("127.0.0.1", fmt.Sprint(f.devicePort)))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Log is fleetd's output so far (of the current run).
func (f *Fleetd) Log() string {
	if f.p == nil {
		return ""
	}
	return f.p.Log()
}
