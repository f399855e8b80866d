package osconfig

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// busConfig is a minimal system-like bus: one unix socket, EXTERNAL
// authentication only (as on the system bus), and a policy that lets the
// test's fakes own the services' names and everyone call them, which the
// real system bus leaves to each service's own policy file.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startBus starts a private dbus-daemon for the test and returns its
// address. It fails the test, never skips it, when dbus-daemon is missing.
func startBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon is needed (Debian package dbus): %v", err)
	}
	// Not t.TempDir: its path holds the test's name and a unix socket's
	// path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "osconfig")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, filepath.Join(dir, "bus")), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog", "--print-address=1")
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The daemon prints its address once it listens; EOF means it died.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		msg, _ := os.ReadFile(stderr.Name())
		t.Fatalf("dbus-daemon gave no address: %v; stderr: %s", err, msg)
	}
	return strings.TrimSpace(line)
}

// openOS opens an OS on the bus at addr, closed when the test ends.
func openOS(t *testing.T, addr string) *OS {
	t.Helper()
	o, err := Open(testContext(t), WithAddress(addr))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// connect opens a connection for a fake service, closed when the test ends.
func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// setup starts a bus with every fake service on it and an OS connected to
// it. checkLeaks goes first so that its cleanup runs last.
func setup(t *testing.T) (*OS, *fakeOS) {
	t.Helper()
	checkLeaks(t)
	addr := startBus(t)
	f := newFakeOS(t, connect(t, addr))
	return openOS(t, addr), f
}
