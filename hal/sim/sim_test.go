package sim

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{CameraWidth: 641}, "CameraWidth"},
		{Config{CameraWidth: -2}, "CameraWidth"},
		{Config{CameraHeight: 8}, "CameraHeight"},
		{Config{CameraFPS: -1}, "CameraFPS"},
		{Config{CameraFPS: 1000}, "CameraFPS"},
		{Config{ToneHz: -5}, "ToneHz"},
		{Config{ToneHz: 30000}, "ToneHz"},
		{Config{ToneHz: math.NaN()}, "ToneHz"},
		{Config{BeepInterval: 10 * time.Millisecond}, "BeepInterval"},
		{Config{SampleRate: 100}, "SampleRate"},
		{Config{Channels: 6}, "Channels"},
		{Config{SpeakerBuffer: -time.Second}, "SpeakerBuffer"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	// Every problem is reported at once, not one per attempt.
	_, err := New(Config{CameraWidth: 3, ToneHz: -1})
	if err == nil || !strings.Contains(err.Error(), "CameraWidth") || !strings.Contains(err.Error(), "ToneHz") {
		t.Errorf("two bad fields: got %v", err)
	}
}

func TestDefaults(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	modes := d.Camera().Modes()
	want := []hal.VideoMode{
		{Width: 1280, Height: 720, FPS: 30, Format: hal.PixelI420},
		{Width: 640, Height: 360, FPS: 30, Format: hal.PixelI420},
		{Width: 1920, Height: 1080, FPS: 30, Format: hal.PixelI420},
	}
	if len(modes) != len(want) {
		t.Fatalf("Modes = %v, want %v", modes, want)
	}
	for i := range want {
		if modes[i] != want[i] {
			t.Errorf("Modes[%d] = %v, want %v", i, modes[i], want[i])
		}
	}
	wantFormats := []hal.AudioFormat{{SampleRate: 48000, Channels: 1}, {SampleRate: 48000, Channels: 2}}
	for _, fs := range [][]hal.AudioFormat{d.Microphone().Formats(), d.Speaker().Formats()} {
		if len(fs) != 2 || fs[0] != wantFormats[0] || fs[1] != wantFormats[1] {
			t.Errorf("Formats = %v, want %v", fs, wantFormats)
		}
	}

	// A configured mode equal to one of the extra ones is not listed twice.
	d, err = New(Config{CameraWidth: 640, CameraHeight: 360, CameraFPS: 15, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Camera().Modes(); len(got) != 2 || got[0].Width != 640 || got[1].Width != 1920 || got[1].FPS != 15 {
		t.Errorf("Modes = %v", got)
	}
	if got := d.Microphone().Formats(); got[0].Channels != 2 {
		t.Errorf("Channels 2: Formats = %v, want stereo first", got)
	}
}

func TestEnumerate(t *testing.T) {
	ctx := testContext(t)
	d, _ := newTestDriver(t, Config{})
	if d.Name() != "sim" {
		t.Errorf("Name = %q", d.Name())
	}
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []hal.Info{
		{ID: "sim:camera0", Kind: hal.KindCamera, Name: "Simulated camera", Driver: "sim", Simulated: true},
		{ID: "sim:mic0", Kind: hal.KindMicrophone, Name: "Simulated microphone", Driver: "sim", Simulated: true},
		{ID: "sim:speaker0", Kind: hal.KindSpeaker, Name: "Simulated speaker", Driver: "sim", Simulated: true},
	}
	if len(devs) != len(want) {
		t.Fatalf("Enumerate returned %d devices, want %d", len(devs), len(want))
	}
	for i, dev := range devs {
		if dev.Info() != want[i] {
			t.Errorf("device %d: Info = %+v, want %+v", i, dev.Info(), want[i])
		}
	}
	if _, ok := devs[0].(hal.Camera); !ok {
		t.Error("camera does not implement hal.Camera")
	}
	if _, ok := devs[1].(hal.Microphone); !ok {
		t.Error("microphone does not implement hal.Microphone")
	}
	if _, ok := devs[2].(hal.Speaker); !ok {
		t.Error("speaker does not implement hal.Speaker")
	}
}

func TestSetPresentAndWatch(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, _ := newTestDriver(t, Config{})

	var calls atomic.Int32
	registered := make(chan struct{}, 1)
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- d.Watch(watchCtx, func() {
			calls.Add(1)
			select {
			case registered <- struct{}{}:
			default:
			}
		})
	}()
	// Watch reports once when it starts, so nothing between the caller's
	// enumeration and the registration is lost.
	<-registered
	if err := d.SetPresent(hal.KindMicrophone, false); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPresent(hal.KindMicrophone, false); err != nil { // no change, no call
		t.Fatal(err)
	}
	devs, _ := d.Enumerate(ctx)
	if len(devs) != 2 || devs[0].Info().ID != CameraID || devs[1].Info().ID != SpeakerID {
		t.Errorf("after unplugging the microphone, Enumerate = %v", devs)
	}
	if err := d.SetPresent(hal.KindMicrophone, true); err != nil {
		t.Fatal(err)
	}
	if devs, _ := d.Enumerate(ctx); len(devs) != 3 {
		t.Errorf("after replugging, Enumerate returned %d devices", len(devs))
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("watcher called %d times, want 3", got)
	}
	if err := d.SetPresent(hal.KindVideoEncoder, false); err == nil {
		t.Error("SetPresent(video-encoder) succeeded; there is no simulated one")
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v after its context ended", err)
	}
	if err := d.SetPresent(hal.KindMicrophone, false); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("watcher called after Watch returned")
	}
}

func TestFakeClock(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	c := NewFakeClock(epoch)
	late := c.NewTimer(2 * time.Second)
	early := c.NewTimer(time.Second)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop should report true once, then false")
	}
	if now := c.NewTimer(0); len(now.C()) != 1 {
		t.Error("a timer for 0 should have fired already")
	}
	if got := c.Timers(); got != 2 {
		t.Errorf("Timers = %d, want 2", got)
	}
	c.Advance(1500 * time.Millisecond)
	select {
	case at := <-early.C():
		if !at.Equal(epoch.Add(1500 * time.Millisecond)) {
			t.Errorf("fired at %v", at)
		}
	default:
		t.Error("the 1s timer did not fire at 1.5s")
	}
	if len(late.C()) != 0 || len(stopped.C()) != 0 {
		t.Error("a timer fired early or after Stop")
	}
	if early.Stop() {
		t.Error("Stop after firing reported true")
	}

	// WaitForTimers lets a test know a goroutine has started waiting.
	go func() {
		tm := c.NewTimer(time.Second)
		<-tm.C()
	}()
	if err := c.WaitForTimers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if c.Timers() != 0 {
		t.Errorf("Timers = %d after advancing past all", c.Timers())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.WaitForTimers(cctx, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForTimers with a cancelled context = %v", err)
	}
}
