package sdnotify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/test/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait in these tests.
const timeout = 5 * time.Second

// fakeNotifier records states and signals each one on pings.
type fakeNotifier struct {
	err   error
	pings chan string

	mu     sync.Mutex
	states []string
}

func newFakeNotifier() *fakeNotifier { return &fakeNotifier{pings: make(chan string, 1000)} }

func (f *fakeNotifier) Notify(state string) error {
	f.mu.Lock()
	f.states = append(f.states, state)
	f.mu.Unlock()
	select {
	case f.pings <- state:
	default: // nobody is waiting for this many; never block the watchdog
	}
	return f.err
}

func (f *fakeNotifier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.states)
}

func newLogger() (*slog.Logger, *syncbuf.Buffer) {
	var b syncbuf.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// startWatchdog runs Watchdog in a goroutine; stop cancels it and waits.
func startWatchdog(t *testing.T, n Notifier, interval time.Duration, healthy func() bool, logger *slog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watchdog(ctx, n, interval, healthy, logger)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(timeout):
				t.Fatal("Watchdog did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitPing(t *testing.T, f *fakeNotifier) string {
	t.Helper()
	select {
	case s := <-f.pings:
		return s
	case <-time.After(timeout):
		t.Fatal("timed out waiting for a watchdog ping")
		return ""
	}
}

func TestWatchdogPingsUntilCancelled(t *testing.T) {
	f := newFakeNotifier()
	logger, _ := newLogger()
	stop := startWatchdog(t, f, 2*time.Millisecond, nil, logger)
	for range 3 {
		if s := waitPing(t, f); s != "WATCHDOG=1" {
			t.Errorf("ping = %q, want WATCHDOG=1", s)
		}
	}
	stop()
	n := f.count()
	time.Sleep(20 * time.Millisecond)
	if f.count() != n {
		t.Errorf("pings continued after the context ended: %d, then %d", n, f.count())
	}
}

func TestWatchdogSkipsWhileUnhealthy(t *testing.T) {
	f := newFakeNotifier()
	logger, logs := newLogger()
	var healthy atomic.Bool
	asked := make(chan struct{}, 1000)
	check := func() bool {
		asked <- struct{}{}
		return healthy.Load()
	}
	startWatchdog(t, f, 2*time.Millisecond, check, logger)

	// Several ticks pass while unhealthy: healthy is asked, nothing is sent.
	for range 5 {
		select {
		case <-asked:
		case <-time.After(timeout):
			t.Fatal("healthy was not asked")
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("sent %d pings while unhealthy, want 0", n)
	}
	if !strings.Contains(logs.String(), "not healthy") {
		t.Errorf("no warning logged for a skipped ping; log: %q", logs.String())
	}

	// Pings resume once healthy again.
	healthy.Store(true)
	if s := waitPing(t, f); s != "WATCHDOG=1" {
		t.Errorf("ping = %q, want WATCHDOG=1", s)
	}
}

func TestWatchdogKeepsGoingAfterNotifyError(t *testing.T) {
	f := newFakeNotifier()
	f.err = errors.New("socket gone")
	logger, logs := newLogger()
	startWatchdog(t, f, 2*time.Millisecond, func() bool { return true }, logger)
	waitPing(t, f)
	waitPing(t, f)
	deadline := time.Now().Add(timeout)
	for !strings.Contains(logs.String(), "socket gone") {
		if time.Now().After(deadline) {
			t.Fatalf("notify error not logged; log: %q", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchdogDisabled(t *testing.T) {
	for _, interval := range []time.Duration{0, -time.Second} {
		f := newFakeNotifier()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A nil logger and a live ctx: Watchdog must return at once.
			Watchdog(ctx, f, interval, nil, nil)
		}()
		select {
		case <-done:
		case <-time.After(timeout):
			t.Fatalf("Watchdog with interval %v did not return", interval)
		}
		cancel()
		if f.count() != 0 {
			t.Errorf("interval %v: sent %d pings", interval, f.count())
		}
	}
}

// listenNotify listens on a unixgram socket in a short temporary directory
// (sun_path is limited to 108 bytes) and points NOTIFY_SOCKET at it.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notify datagram: %v", err)
	}
	return string(buf[:n])
}

func TestSystemdNotify(t *testing.T) {
	conn := listenNotify(t)
	for _, state := range []string{"READY=1", "STATUS=Serving on /run/atrium/roomd.sock", "WATCHDOG=1", "STOPPING=1\nSTATUS=bye"} {
		if err := (Systemd{}).Notify(state); err != nil {
			t.Fatalf("Notify(%q): %v", state, err)
		}
		if got := readDatagram(t, conn); got != state {
			t.Errorf("datagram = %q, want %q", got, state)
		}
	}
	// The variable is left for later calls (and for the watchdog).
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Error("Notify unset NOTIFY_SOCKET")
	}
}

func TestSystemdNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := (Systemd{}).Notify("READY=1"); err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v, want a silent no-op", err)
	}
}

func TestSystemdNotifyBadSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "n")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "missing"))
	err = (Systemd{}).Notify("READY=1")
	if err == nil || !strings.Contains(err.Error(), "READY=1") {
		t.Errorf("Notify to a missing socket = %v, want an error naming the state", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		usec    string
		pid     string // "-" leaves it unset
		want    time.Duration
		wantErr bool
	}{
		{"half of WATCHDOG_USEC", "2000000", "-", time.Second, false},
		{"for this pid", "2000000", pid, time.Second, false},
		{"short", "500000", pid, 250 * time.Millisecond, false},
		{"for another pid", "2000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"off", "", "-", 0, false},
		{"not a number", "soon", "-", 0, true},
		{"zero", "0", "-", 0, true},
		{"bad pid", "2000000", "me", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", "")
			if tt.pid == "-" {
				os.Unsetenv("WATCHDOG_PID")
			} else {
				t.Setenv("WATCHDOG_PID", tt.pid)
			}
			got, err := WatchdogInterval()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			// The variables stay for a child or a later call.
			if os.Getenv("WATCHDOG_USEC") != tt.usec {
				t.Error("WatchdogInterval changed WATCHDOG_USEC")
			}
		})
	}
}
