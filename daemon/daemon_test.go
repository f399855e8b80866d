package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/client"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/hal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Notifier that keeps what it was told.
type recorder struct {
	mu    sync.Mutex
	msgs  []string
	ready chan struct{}
}

func newRecorder() *recorder { return &recorder{ready: make(chan struct{})} }

func (r *recorder) Notify(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Contains(state, "READY=1") && !slices.ContainsFunc(r.msgs, func(m string) bool { return strings.Contains(m, "READY=1") }) {
		close(r.ready)
	}
	r.msgs = append(r.msgs, state)
	return nil
}

func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
	}
	return n
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir, err := os.MkdirTemp("", "roomd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	cfg.API.Socket = filepath.Join(dir, "roomd.sock")
	cfg.API.SocketGroup = ""
	cfg.API.Listen = []string{"127.0.0.1:0"}
	cfg.HAL.Simulate = "always"
	cfg.HAL.Simulated.CameraWidth, cfg.HAL.Simulated.CameraHeight = 320, 180
	return cfg
}

type running struct {
	sys    *System
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg *config.Config, watchdog time.Duration) *running {
	t.Helper()
	return startWith(t, cfg, Deps{
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		WatchdogInterval: watchdog,
		Version:          "test",
	})
}

// startWith runs a System built with deps (its Notifier is the test's)
// and waits for READY=1.
func startWith(t *testing.T, cfg *config.Config, deps Deps) *running {
	t.Helper()
	rec := newRecorder()
	deps.Notifier = rec
	sys, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sys: sys, rec: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sys.Run(ctx) }()
	select {
	case <-rec.ready:
	case err := <-r.done:
		t.Fatalf("Run ended before READY: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no READY=1 within 5s")
	}
	return r
}

// stop cancels the root context and checks Run returns in time; the
// goroutine check in TestMain then proves nothing was left running.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg, 0)
	c := client.NewUnix(cfg.API.Socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != apiv1.DaemonReady || len(st.Devices) != 7 || st.BootID == "" || st.Version != "test" {
		t.Errorf("status %+v", st)
	}
	if r.rec.count("STATUS=") < 2 {
		t.Errorf("STATUS= not sent on start and ready: %q", r.rec.msgs)
	}

	// An open event stream must not hold up shutdown.
	streamCtx, streamCancel := context.WithCancel(context.Background())
	defer streamCancel()
	streamDone := make(chan error, 1)
	go func() { streamDone <- c.Events(streamCtx, func(apiv1.Event) error { return nil }) }()
	time.Sleep(100 * time.Millisecond)

	r.stop(t)
	if err := <-streamDone; !errors.Is(err, io.EOF) {
		t.Errorf("event stream after shutdown: %v, want EOF", err)
	}
	if r.rec.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 not sent once: %q", r.rec.msgs)
	}
	if _, err := os.Stat(cfg.API.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestListenersAllOrNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t)
	cfg.API.Listen = []string{taken.Addr().String()}
	sys, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Notifier: newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	err = sys.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Run with a taken port: %v", err)
	}
	// The socket opened before the failure must be closed again.
	if _, err := net.Dial("unix", cfg.API.Socket); err == nil {
		t.Error("unix socket still accepting after a failed start")
	}
}

func TestWatchdogPings(t *testing.T) {
	r := start(t, testConfig(t), 20*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for r.rec.count("WATCHDOG=1") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.rec.count("WATCHDOG=1"); n < 3 {
		t.Errorf("%d watchdog pings", n)
	}
	r.stop(t)
}

func TestDeviceChangesReachEvents(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events := r.sys.Events.Subscribe(ctx)
	if err := r.sys.Sim.SetPresent(hal.KindCamera, false); err != nil {
		t.Fatal(err)
	}
	if err := waitEvent(ctx, events, apiv1.EventDeviceRemoved); err != nil {
		t.Fatal(err)
	}
	if n := len(r.sys.Status().Devices); n != 6 {
		t.Errorf("%d devices after unplug, want 6 (2 simulated, 4 codecs)", n)
	}
	if err := r.sys.Sim.SetPresent(hal.KindCamera, true); err != nil {
		t.Fatal(err)
	}
	if err := waitEvent(ctx, events, apiv1.EventDeviceAdded); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
}

func waitEvent(ctx context.Context, events <-chan apiv1.Event, typ apiv1.EventType) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("stream closed before %s", typ)
			}
			if ev.Type == typ {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no %s event", typ)
		}
	}
}

func TestTokenFileRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	for _, c := range []struct {
		content string
		mode    os.FileMode
		want    string
	}{
		{"a-long-enough-token-value", 0o644, "chmod 600"},
		{"short", 0o600, "at least 16"},
		{"a-long-enough-token-value\n", 0o600, ""},
	} {
		if err := os.WriteFile(path, []byte(c.content), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		tok, err := readToken(path)
		switch {
		case c.want == "" && (err != nil || tok != "a-long-enough-token-value"):
			t.Errorf("good token: %q %v", tok, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("mode %o %q: %v, want %q", c.mode, c.content, err, c.want)
		}
	}
}

// The API socket already has the group of the process that made it:
// giveToGroup then calls no chown, which roomd.service's system call
// filter would refuse; another group is still given with chown.
func TestGiveToGroupSkipsChownForOwnGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roomd.sock")
	if err := os.WriteFile(path, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	own := int(fi.Sys().(*syscall.Stat_t).Gid)
	var calls []int
	chown := func(_ string, uid, gid int) error {
		calls = append(calls, gid)
		return syscall.EPERM // as under SystemCallFilter=~@privileged
	}
	if err := giveToGroup(path, own, chown); err != nil || len(calls) != 0 {
		t.Errorf("own group %d: err %v, chown calls %v; want none", own, err, calls)
	}
	if err := giveToGroup(path, own+1, chown); !errors.Is(err, syscall.EPERM) || len(calls) != 1 || calls[0] != own+1 {
		t.Errorf("other group %d: err %v, chown calls %v; want one, failing", own+1, err, calls)
	}
	if err := giveToGroup(filepath.Join(t.TempDir(), "none"), own, chown); err == nil {
		t.Error("a missing socket gave no error")
	}
}
