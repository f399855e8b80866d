package hal_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test if it leaves goroutines behind. It runs as the
// last cleanup, after the test's contexts are cancelled and its streams
// closed, which a deferred goleak.VerifyNone would run before.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeDevice is a device whose Info a test can change.
type fakeDevice struct {
	mu   sync.Mutex
	info hal.Info
}

func newFakeDevice(id string, kind hal.Kind) *fakeDevice {
	return &fakeDevice{info: hal.Info{ID: id, Kind: kind, Name: id, Driver: "fake"}}
}

func (d *fakeDevice) Info() hal.Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

func (d *fakeDevice) rename(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.info.Name = name
}

// fakeDriver is a real driver whose devices and failures a test sets. It
// implements Watcher: trigger reports a change.
type fakeDriver struct {
	name string

	mu       sync.Mutex
	devs     []hal.Device
	err      error
	watchErr []error // returned by successive Watch calls before blocking
	watches  int
	changed  func()
	watching chan struct{} // closed once Watch blocks
}

func newFakeDriver(name string, devs ...hal.Device) *fakeDriver {
	return &fakeDriver{name: name, devs: devs, watching: make(chan struct{})}
}

func (f *fakeDriver) Name() string { return f.name }

func (f *fakeDriver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.devs), nil
}

func (f *fakeDriver) Watch(ctx context.Context, changed func()) error {
	f.mu.Lock()
	f.watches++
	if len(f.watchErr) > 0 {
		err := f.watchErr[0]
		f.watchErr = f.watchErr[1:]
		f.mu.Unlock()
		return err
	}
	f.changed = changed
	select {
	case <-f.watching:
	default:
		close(f.watching)
	}
	f.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeDriver) set(err error, devs ...hal.Device) {
	f.mu.Lock()
	f.err, f.devs = err, devs
	f.mu.Unlock()
}

// trigger reports a change the way a netlink uevent would.
func (f *fakeDriver) trigger() {
	f.mu.Lock()
	changed := f.changed
	f.mu.Unlock()
	changed()
}

func newSim(t *testing.T) *sim.Driver {
	t.Helper()
	d, err := sim.New(sim.Config{Clock: sim.NewFakeClock(time.Unix(1_700_000_000, 0))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newRegistry(t *testing.T, opts hal.RegistryOptions) *hal.Registry {
	t.Helper()
	r, err := hal.NewRegistry(opts)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

func ids(devs []hal.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.Info().ID)
	}
	return out
}

// startRun runs r until the test ends, then checks Run returned nil.
func startRun(t *testing.T, ctx context.Context, r *hal.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	})
	select {
	case <-r.Ready():
	case <-ctx.Done():
		t.Fatal("registry never became ready")
	}
}

func next(t *testing.T, ctx context.Context, ch <-chan hal.Change) hal.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return c
	case <-ctx.Done():
		t.Fatal("no change arrived")
		return hal.Change{}
	}
}

func expect(t *testing.T, ctx context.Context, ch <-chan hal.Change, want ...string) {
	t.Helper()
	for _, w := range want {
		c := next(t, ctx, ch)
		if got := string(c.Type) + " " + c.Device.Info().ID; got != w {
			t.Fatalf("change %q, want %q", got, w)
		}
	}
}

func TestNewRegistryValidates(t *testing.T) {
	real := newFakeDriver("v4l2")
	for _, tc := range []struct {
		opts hal.RegistryOptions
		want string
	}{
		{hal.RegistryOptions{Mode: "sometimes"}, "Mode"},
		{hal.RegistryOptions{Mode: hal.SimAlways}, "Simulated"},
		{hal.RegistryOptions{Drivers: []hal.Driver{real, nil}}, "Drivers[1]"},
		{hal.RegistryOptions{Drivers: []hal.Driver{real, newFakeDriver("v4l2")}}, "twice"},
		{hal.RegistryOptions{Drivers: []hal.Driver{newFakeDriver("sim")}, Simulated: newSim(t)}, "twice"},
	} {
		if _, err := hal.NewRegistry(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRegistry(%+v) = %v, want an error about %s", tc.opts, err, tc.want)
		}
	}
	for _, opts := range []hal.RegistryOptions{
		{}, // no drivers at all: an empty registry
		{Mode: hal.SimNever, Drivers: []hal.Driver{real}},
		{Simulated: newSim(t)}, // empty Mode means auto
	} {
		if _, err := hal.NewRegistry(opts); err != nil {
			t.Errorf("NewRegistry(%+v) = %v", opts, err)
		}
	}
}

func TestRegistrySimulationModes(t *testing.T) {
	ctx := testContext(t)
	cam := newFakeDevice("v4l2:usb-1.2", hal.KindCamera)
	for _, tc := range []struct {
		mode hal.SimulationMode
		real []hal.Device
		want []string
	}{
		// The software codec driver is listed in every mode.
		{hal.SimAuto, []hal.Device{cam}, []string{"v4l2:usb-1.2", "sim:mic0", "sim:speaker0", "sw:enc"}},
		{hal.SimAuto, nil, []string{"sim:camera0", "sim:mic0", "sim:speaker0", "sw:enc"}},
		{hal.SimAlways, []hal.Device{cam}, []string{"sim:camera0", "sim:mic0", "sim:speaker0", "sw:enc"}},
		{hal.SimNever, []hal.Device{cam}, []string{"v4l2:usb-1.2", "sw:enc"}},
		{hal.SimNever, nil, []string{"sw:enc"}},
	} {
		real := newFakeDriver("v4l2", tc.real...)
		codecs := newFakeDriver("software", newFakeDevice("sw:enc", hal.KindVideoEncoder))
		r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{real}, Always: []hal.Driver{codecs}, Simulated: newSim(t), Mode: tc.mode})
		select {
		case <-r.Ready():
			t.Fatal("Ready before any enumeration")
		default:
		}
		if err := r.Rescan(ctx); err != nil {
			t.Fatal(err)
		}
		<-r.Ready()
		if got := ids(r.Devices()); !slices.Equal(got, tc.want) {
			t.Errorf("%s with real %v: devices %v, want %v", tc.mode, ids(tc.real), got, tc.want)
		}
		for _, d := range r.Devices() {
			if got, ok := r.Lookup(d.Info().ID); !ok || got != d {
				t.Errorf("Lookup(%s) = %v, %v", d.Info().ID, got, ok)
			}
		}
	}
}

func TestRegistryLookupAndDuplicates(t *testing.T) {
	ctx := testContext(t)
	first := newFakeDevice("usb:1", hal.KindMicrophone)
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{
		newFakeDriver("alsa", first),
		newFakeDriver("pipewire", newFakeDevice("usb:1", hal.KindMicrophone), newFakeDevice("", hal.KindSpeaker), nil),
	}})
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Lookup("usb:1"); !ok || got != first {
		t.Errorf("Lookup(usb:1) = %v; the first driver should win", got)
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
	if got := len(r.Devices()); got != 1 {
		t.Errorf("%d devices; nil devices and empty IDs should be ignored", got)
	}
}

func TestRegistryHotplugWithSim(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	simDriver := newSim(t)
	r := newRegistry(t, hal.RegistryOptions{Simulated: simDriver, Mode: hal.SimAlways})
	startRun(t, ctx, r)
	if got := ids(r.Devices()); len(got) != 3 {
		t.Fatalf("after Ready: %v", got)
	}
	sub := r.Subscribe(ctx)

	if err := simDriver.SetPresent(hal.KindCamera, false); err != nil {
		t.Fatal(err)
	}
	expect(t, ctx, sub, "removed sim:camera0")
	if _, ok := r.Lookup(sim.CameraID); ok {
		t.Error("unplugged camera still listed")
	}
	if err := simDriver.SetPresent(hal.KindCamera, true); err != nil {
		t.Fatal(err)
	}
	expect(t, ctx, sub, "added sim:camera0")
	if got := ids(r.Devices()); !slices.Equal(got, []string{"sim:camera0", "sim:mic0", "sim:speaker0"}) {
		t.Errorf("after replug: %v", got)
	}
}

// TestRegistryRealDeviceReplacesSimulated: in auto mode, plugging in a real
// camera retires the simulated one, and unplugging it brings it back.
func TestRegistryRealDeviceReplacesSimulated(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	real := newFakeDriver("v4l2")
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{real}, Simulated: newSim(t)})
	startRun(t, ctx, r)
	<-real.watching
	sub := r.Subscribe(ctx)

	cam := newFakeDevice("v4l2:usb-1.2", hal.KindCamera)
	real.set(nil, cam)
	real.trigger()
	expect(t, ctx, sub, "removed sim:camera0", "added v4l2:usb-1.2")

	real.set(nil)
	real.trigger()
	expect(t, ctx, sub, "removed v4l2:usb-1.2", "added sim:camera0")
}

func TestRegistryFlakyDriverKeepsDevices(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	a, b := newFakeDevice("alsa:0", hal.KindMicrophone), newFakeDevice("alsa:1", hal.KindSpeaker)
	flaky := newFakeDriver("alsa", a, b)
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{flaky}})
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	sub := r.Subscribe(ctx)

	boom := errors.New("ioctl: EIO")
	flaky.set(boom)
	if err := r.Rescan(ctx); !errors.Is(err, boom) || !strings.Contains(err.Error(), "alsa") {
		t.Errorf("Rescan = %v, want the driver's error naming it", err)
	}
	if got := ids(r.Devices()); !slices.Equal(got, []string{"alsa:0", "alsa:1"}) {
		t.Errorf("after a failed enumeration: %v, want the previous devices", got)
	}
	flaky.set(nil, a)
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing was published for the failure: the first change is the
	// real removal.
	expect(t, ctx, sub, "removed alsa:1")
}

func TestRegistryChanged(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	cam := newFakeDevice("v4l2:0", hal.KindCamera)
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{newFakeDriver("v4l2", cam)}})
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	sub := r.Subscribe(ctx)

	cam.rename("Conference camera")
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, ctx, sub, "changed v4l2:0")
	if err := r.Rescan(ctx); err != nil { // nothing new
		t.Fatal(err)
	}
	r.NotifyChanged("v4l2:0") // a control was set
	r.NotifyChanged("v4l2:9") // unknown: ignored
	expect(t, ctx, sub, "changed v4l2:0")

	// A control change that also renames is not reported twice.
	cam.rename("Renamed")
	r.NotifyChanged("v4l2:0")
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, ctx, sub, "changed v4l2:0")
	select {
	case c := <-sub:
		t.Errorf("unexpected %s %s", c.Type, c.Device.Info().ID)
	default:
	}
}

// TestRegistrySlowSubscriber: a subscriber that does not read cannot block
// the registry, and once it reads it still ends up with the right devices,
// through consistent (coalesced) changes.
func TestRegistrySlowSubscriber(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	var devs []hal.Device
	for i := range 40 {
		devs = append(devs, newFakeDevice(fmt.Sprintf("mic:%02d", i), hal.KindMicrophone))
	}
	drv := newFakeDriver("alsa")
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{drv}})
	sub := r.Subscribe(ctx)
	published := 0
	for round := range 10 {
		var present []hal.Device
		for i, d := range devs {
			if (i+round)%3 != 0 {
				present = append(present, d)
			}
		}
		if round == 9 {
			present = devs[:25]
		}
		drv.set(nil, present...)
		if err := r.Rescan(ctx); err != nil { // would hang if publishing blocked
			t.Fatal(err)
		}
		published++
	}
	fast := r.Subscribe(ctx) // subscribed late: sees only what follows
	drv.set(nil, devs[:24]...)
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, ctx, fast, "removed mic:24")

	seen := make(map[string]bool)
	received := 0
	want := ids(r.Devices())
	for {
		var have []string
		for id := range seen {
			have = append(have, id)
		}
		slices.Sort(have)
		if slices.Equal(have, want) {
			break
		}
		c := next(t, ctx, sub)
		received++
		id := c.Device.Info().ID
		switch c.Type {
		case hal.ChangeAdded:
			if seen[id] {
				t.Fatalf("added %s twice", id)
			}
			seen[id] = true
		case hal.ChangeRemoved:
			if !seen[id] {
				t.Fatalf("removed %s, never added", id)
			}
			delete(seen, id)
		case hal.ChangeChanged:
			if !seen[id] {
				t.Fatalf("changed %s, never added", id)
			}
		}
	}
	if received >= 10*40 {
		t.Errorf("received %d changes: nothing was coalesced", received)
	}
	select {
	case c := <-sub:
		t.Errorf("extra change %s %s", c.Type, c.Device.Info().ID)
	case <-time.After(10 * time.Millisecond):
	}
}

func TestRegistrySubscriptionEnds(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	r := newRegistry(t, hal.RegistryOptions{Simulated: newSim(t)})
	subCtx, cancel := context.WithCancel(ctx)
	sub := r.Subscribe(subCtx)
	if err := r.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	for range sub { // drains what was queued, then ends
	}
	if err := r.Rescan(ctx); err != nil { // no subscriber left to feed
		t.Fatal(err)
	}
}

func TestRegistryRunLifecycle(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	// A watcher that fails twice is restarted, and each failure rescans in
	// case events were lost.
	drv := newFakeDriver("v4l2", newFakeDevice("v4l2:0", hal.KindCamera))
	drv.watchErr = []error{errors.New("netlink: ENOBUFS"), nil}
	r := newRegistry(t, hal.RegistryOptions{Drivers: []hal.Driver{drv}, Mode: hal.SimNever})
	r.SetWatchRetry(time.Millisecond)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	<-r.Ready()
	if err := r.Run(runCtx); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
	select {
	case <-drv.watching:
	case <-ctx.Done():
		t.Fatal("Watch was not restarted")
	}
	drv.mu.Lock()
	watches := drv.watches
	drv.mu.Unlock()
	if watches != 3 {
		t.Errorf("Watch called %d times, want 3", watches)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	// Run can be started again once it returned.
	startRun(t, ctx, r)
	if got := ids(r.Devices()); !slices.Equal(got, []string{"v4l2:0"}) {
		t.Errorf("devices %v", got)
	}
}
