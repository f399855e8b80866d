// Package roomdtest starts the real roomd binary for integration tests: it
// builds it, writes a configuration into a private directory, listens as
// systemd would on NOTIFY_SOCKET, and stops the daemon with SIGTERM at the
// end of the test.
package roomdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/atriumroom/atrium/daemon/client"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// ReadyTimeout bounds the wait for READY=1.
const ReadyTimeout = 15 * time.Second

// StopTimeout is how long roomd may take to exit after SIGTERM.
const StopTimeout = 5 * time.Second

// Options adjust the daemon.
type Options struct {
	// Config edits the test configuration before it is written.
	Config func(*config.Config)
	// RawConfig, when set, is written as the configuration file verbatim
	// (for tests of bad configuration); Config is then ignored.
	RawConfig string
	// Env adds environment variables.
	Env []string
}

// Daemon is a running roomd.
type Daemon struct {
	URL        string // http://127.0.0.1:PORT, the UI and API origin
	Socket     string // the unix socket
	Dir        string // private directory: config, state, socket, log
	ConfigPath string
	Room       string
	Client     *client.Client // over the unix socket

	cmd     *exec.Cmd
	logBuf  *syncbuf.Buffer
	notify  *notifyListener
	waitErr chan error
	stopped bool
}

// RepoRoot returns the module's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the atrium module")
	}
	return filepath.Dir(gomod)
}

// Build compiles the package at pkg (relative to the repository root, e.g.
// "./cmd/roomd") into a temporary directory and returns the binary's path.
// Go's build cache makes repeated builds cheap.
func Build(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// Config returns the configuration Start writes before opts.Config edits it:
// simulated devices, a socket and a free loopback port inside dir.
func Config(t testing.TB, dir string) *config.Config {
	cfg := config.Default()
	cfg.Room.Name = "Atrium Test Room"
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	cfg.API.Socket = filepath.Join(dir, "roomd.sock")
	cfg.API.SocketGroup = ""
	cfg.API.Listen = []string{fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	cfg.Log.Format = "text"
	cfg.Log.Level = "debug"
	cfg.HAL.Simulate = "always"
	cfg.HAL.Simulated.CameraWidth, cfg.HAL.Simulated.CameraHeight, cfg.HAL.Simulated.CameraFPS = 640, 360, 15
	return cfg
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ShortTempDir returns a fresh directory with a short path: unix socket
// paths must stay under 108 bytes, which t.TempDir's long names can break.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "roomd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Start builds and starts roomd and waits for READY=1. The daemon is stopped
// with SIGTERM when the test ends; a daemon that does not exit within
// StopTimeout fails the test.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	d := Launch(t, Build(t, "./cmd/roomd"), opts)
	if err := d.WaitReady(ReadyTimeout); err != nil {
		t.Fatalf("roomd did not become ready: %v\n--- roomd log ---\n%s", err, d.Log())
	}
	return d
}

// Launch starts the roomd binary without waiting for it to be ready.
func Launch(t testing.TB, binary string, opts Options) *Daemon {
	t.Helper()
	dir := ShortTempDir(t)
	d := &Daemon{Dir: dir, ConfigPath: filepath.Join(dir, "roomd.toml"), logBuf: &syncbuf.Buffer{}, waitErr: make(chan error, 1)}
	raw := []byte(opts.RawConfig)
	if opts.RawConfig == "" {
		cfg := Config(t, dir)
		if opts.Config != nil {
			opts.Config(cfg)
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
			t.Fatal(err)
		}
		raw = b.Bytes()
		d.Room, d.Socket = cfg.Room.Name, cfg.API.Socket
		if len(cfg.API.Listen) > 0 {
			d.URL = "http://" + cfg.API.Listen[0]
		}
	}
	if err := os.WriteFile(d.ConfigPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	d.notify, err = listenNotify(filepath.Join(dir, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.notify.close)

	d.cmd = exec.Command(binary, "-config", d.ConfigPath)
	d.cmd.Env = append(filteredEnv(), "NOTIFY_SOCKET="+d.notify.path)
	d.cmd.Env = append(d.cmd.Env, opts.Env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logBuf, d.logBuf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start roomd: %v", err)
	}
	go func() { d.waitErr <- d.cmd.Wait() }()
	if d.Socket != "" {
		d.Client = client.NewUnix(d.Socket)
	}
	t.Cleanup(func() {
		if d.stopped {
			return
		}
		if _, err := d.Stop(); err != nil {
			t.Errorf("stop roomd: %v\n--- roomd log ---\n%s", err, d.Log())
		}
	})
	return d
}

// filteredEnv keeps the test's environment minus what would make roomd talk
// to the real service manager or journal.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// WaitReady waits for READY=1, or for the process to exit.
func (d *Daemon) WaitReady(timeout time.Duration) error {
	select {
	case <-d.notify.ready:
		return nil
	case err := <-d.waitErr:
		d.waitErr <- err
		return fmt.Errorf("roomd exited before READY=1: %v", err)
	case <-time.After(timeout):
		return fmt.Errorf("no READY=1 within %s", timeout)
	}
}

// Exited waits up to timeout for the process to exit by itself and returns
// its exit code.
func (d *Daemon) Exited(timeout time.Duration) (int, error) {
	select {
	case err := <-d.waitErr:
		d.waitErr <- err
		d.stopped = true
		return d.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("roomd still running after %s", timeout)
	}
}

// Stop sends SIGTERM and waits for a clean exit; it returns how long that took.
func (d *Daemon) Stop() (time.Duration, error) {
	d.stopped = true
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("signal: %w", err)
	}
	select {
	case err := <-d.waitErr:
		d.waitErr <- err
		if d.Client != nil {
			d.Client.Close()
		}
		if err != nil {
			return time.Since(start), fmt.Errorf("roomd exited with %v", err)
		}
		return time.Since(start), nil
	case <-time.After(StopTimeout):
		_ = d.cmd.Process.Kill()
		return time.Since(start), fmt.Errorf("roomd did not exit within %s of SIGTERM", StopTimeout)
	}
}

// Kill stops roomd with SIGKILL, as a crash would.
func (d *Daemon) Kill() {
	d.stopped = true
	_ = d.cmd.Process.Kill()
	<-d.waitErr
	d.waitErr <- nil
}

// PID returns roomd's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Log returns what roomd wrote to stdout and stderr so far.
func (d *Daemon) Log() string { return d.logBuf.String() }

// Notifications returns every sd_notify message received so far.
func (d *Daemon) Notifications() []string { return d.notify.messages() }

// Context returns a context that ends with the test or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// notifyListener plays systemd's side of sd_notify.
type notifyListener struct {
	path  string
	conn  *net.UnixConn
	ready chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	msgs []string
}

func listenNotify(path string) (*notifyListener, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen on notify socket: %w", err)
	}
	n := &notifyListener{path: path, conn: conn, ready: make(chan struct{}), done: make(chan struct{})}
	go n.loop()
	return n, nil
}

func (n *notifyListener) loop() {
	defer close(n.done)
	buf := make([]byte, 4096)
	readySeen := false
	for {
		k, err := n.conn.Read(buf)
		if err != nil {
			return
		}
		msg := string(buf[:k])
		n.mu.Lock()
		n.msgs = append(n.msgs, msg)
		n.mu.Unlock()
		if !readySeen && strings.Contains("\n"+msg+"\n", "\nREADY=1\n") {
			readySeen = true
			close(n.ready)
		}
	}
}

func (n *notifyListener) messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

func (n *notifyListener) close() {
	_ = n.conn.Close()
	<-n.done
}
