package agent

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- fake clock ----

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock by d, firing the timers that come due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *fakeClock) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// fireNext jumps to the earliest pending timer and fires it; false when
// none is pending.
func (c *fakeClock) fireNext() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	d := c.timers[0].at.Sub(c.now)
	if d > 0 {
		c.now = c.timers[0].at
	}
	c.fireLocked()
	return d, true
}

// pendingTimer is the wait of the earliest pending timer.
func (c *fakeClock) pendingTimer() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	min := c.timers[0].at
	for _, t := range c.timers {
		if t.at.Before(min) {
			min = t.at
		}
	}
	return min.Sub(c.now), true
}

// until fires timers (skipping time forward) until cond holds; it fails
// the test after 20 s of real time.
func until(t *testing.T, clk *fakeClock, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if _, ok := clk.fireNext(); !ok {
			time.Sleep(2 * time.Millisecond)
		} else {
			// Let the agent act on the timer before looking again.
			time.Sleep(time.Millisecond)
		}
	}
}

// waitReal waits in real time (no clock movement) for cond.
func waitReal(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ---- fake roomd ----

type fakeDevice struct {
	mu        sync.Mutex
	applied   []fleetapi.Profile
	applyErr  error
	unhealthy error
	// healthHook runs in Healthy (e.g. to simulate a crash).
	healthHook func()
	executed   map[string]int
	execHook   func(cmd fleetapi.Command) (json.RawMessage, error)
	logs       []byte
	logArgs    []int64
	reboots    int
	rebootHook func()
	resets     int
	resetHook  func()
	update     *fleetapi.UpdateStatus
}

func newFakeDevice() *fakeDevice { return &fakeDevice{executed: map[string]int{}} }

func (d *fakeDevice) Report(context.Context) Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Report{
		Update:    d.update,
		Inventory: fleetapi.Inventory{Hostname: "room-1", RoomName: "Room 1", Versions: map[string]string{"image": "1.0"}},
		Health:    fleetapi.Health{Status: fleetapi.HealthOK, UptimeSeconds: 42},
		Meeting:   fleetapi.Meeting{State: "idle"},
	}
}

func (d *fakeDevice) ApplyProfile(_ context.Context, p fleetapi.Profile) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.applyErr != nil {
		return d.applyErr
	}
	d.applied = append(d.applied, p)
	return nil
}

func (d *fakeDevice) Healthy(context.Context) error {
	d.mu.Lock()
	hook, err := d.healthHook, d.unhealthy
	d.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}

func (d *fakeDevice) Execute(_ context.Context, cmd fleetapi.Command) (json.RawMessage, error) {
	d.mu.Lock()
	d.executed[cmd.ID]++
	hook := d.execHook
	d.mu.Unlock()
	if hook != nil {
		return hook(cmd)
	}
	return json.RawMessage(`{"ok":true}`), nil
}

func (d *fakeDevice) CollectLogs(_ context.Context, _ time.Time, maxBytes int64) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logArgs = append(d.logArgs, maxBytes)
	return d.logs, nil
}

func (d *fakeDevice) Reboot(context.Context) error {
	d.mu.Lock()
	d.reboots++
	hook := d.rebootHook
	d.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (d *fakeDevice) FactoryReset(context.Context) error {
	d.mu.Lock()
	d.resets++
	hook := d.resetHook
	d.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (d *fakeDevice) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.executed[id]
}

func (d *fakeDevice) appliedProfiles() []fleetapi.Profile {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]fleetapi.Profile(nil), d.applied...)
}

// ---- the device's identity ----

type testIdentity struct {
	key *ecdsa.PrivateKey
}

func newIdentity(t *testing.T) *testIdentity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testIdentity{key}
}

func (id *testIdentity) CSR() ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "serial-1234"},
	}, id.key)
}

// ---- a running agent ----

type harness struct {
	t      *testing.T
	clk    *fakeClock
	srv    *fakeServer
	dev    *fakeDevice
	idn    *testIdentity
	dir    string
	dialer *cuttableDialer
	agent  *Agent
	cancel context.CancelFunc
	done   chan struct{}
	settle time.Duration // the agents' settle period; 0 is 30 s
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := newFakeClock()
	h := &harness{
		t: t, clk: clk, srv: startFakeServer(t, clk), dev: newFakeDevice(), idn: newIdentity(t),
		dir: filepath.Join(t.TempDir(), "fleet"), dialer: &cuttableDialer{},
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) options() Options {
	return Options{
		StateDir: h.dir, Server: h.srv.url, ServerCA: h.srv.caPEM,
		Signer: h.idn.key, CSR: h.idn.CSR,
		Facts:  fleetapi.Facts{Model: "test", Serial: "1234"},
		Device: h.dev, Power: h.dev, Wiper: h.dev, Version: "0.6.0",
		Clock: h.clk, Rand: mrand.New(mrand.NewPCG(1, 2)), Dial: h.dialer.DialContext,
		SettlePeriod: cmp.Or(h.settle, 30*time.Second), HealthPoll: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{h.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start makes a new agent on the harness's state and runs it.
func (h *harness) start() *Agent {
	h.t.Helper()
	a, err := New(h.options())
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.run(a)
	return a
}

func (h *harness) run(a *Agent) {
	ctx, cancel := context.WithCancel(context.Background())
	h.agent, h.cancel, h.done = a, cancel, make(chan struct{})
	done := h.done
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
}

// stop ends Run (as a SIGTERM would) and waits for it.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		h.t.Fatal("Run did not return")
	}
	h.cancel = nil
}

// crashed waits for a Run goroutine that a hook ended with runtime.Goexit.
func (h *harness) crashed() {
	h.t.Helper()
	until(h.t, h.clk, "the agent to crash", func() bool {
		select {
		case <-h.done:
			return true
		default:
			return false
		}
	})
	h.cancel()
	h.cancel = nil
}

func (h *harness) enroll() {
	h.t.Helper()
	code := h.srv.newCode()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.agent.Enroll(ctx, code, "Room 1"); err != nil {
		h.t.Fatalf("Enroll: %v", err)
	}
}

// checkIns waits until the server saw n check-ins in all.
func (h *harness) checkIns(n int) {
	h.t.Helper()
	until(h.t, h.clk, "check-ins", func() bool { return h.srv.checkInCount() >= n })
}

// ---- the network seam ----

// cuttableDialer dials for real, and cuts every connection when told to:
// reads and writes then fail as on a dead link.
type cuttableDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []*cutConn
}

var errCut = errors.New("network cut by the test")

func (d *cuttableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	cut := d.cut
	d.mu.Unlock()
	if cut {
		return nil, errCut
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: c, d: d}
	d.mu.Lock()
	d.conns = append(d.conns, cc)
	d.mu.Unlock()
	return cc, nil
}

func (d *cuttableDialer) setCut(cut bool) {
	d.mu.Lock()
	d.cut = cut
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	if cut {
		for _, c := range conns {
			_ = c.Conn.Close()
		}
	}
}

type cutConn struct {
	net.Conn
	d *cuttableDialer
}

func (c *cutConn) isCut() bool {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.d.cut
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.isCut() {
		return 0, errCut
	}
	return c.Conn.Read(p)
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.isCut() {
		return 0, errCut
	}
	return c.Conn.Write(p)
}

// testWriter sends the agent's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
