package pulse

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jfreymuth/pulse/proto"
	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/hal"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerAddrs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		name   string
		server string
		env    map[string]string
		want   []string
	}{
		{"default", "", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, []string{"unix:/run/user/1000/pulse/native", "unix:/run/user/999/pulse/native", "unix:/run/pulse/native"}},
		{"same runtime dir", "", map[string]string{"XDG_RUNTIME_DIR": "/run/user/999"}, []string{"unix:/run/user/999/pulse/native", "unix:/run/pulse/native"}},
		{"system service", "", nil, []string{"unix:/run/user/999/pulse/native", "unix:/run/pulse/native"}},
		{"env", "", map[string]string{"PULSE_SERVER": "unix:/tmp/p/native", "XDG_RUNTIME_DIR": "/x"}, []string{"unix:/tmp/p/native"}},
		{"option wins", "/a/native tcp:127.0.0.1:4713", map[string]string{"PULSE_SERVER": "unix:/tmp/p/native"}, []string{"unix:/a/native", "tcp:127.0.0.1:4713"}},
		{"guards and junk", "{abc}unix:/b {x}tcp4:10.0.0.1:4713 tcp6:[::1]:4713 bogus:1 {broken", nil, []string{"unix:/b", "tcp4:10.0.0.1:4713", "tcp6:[::1]:4713"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, a := range serverAddrs(c.server, env(c.env), 999) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestCookie(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := cookiePath("", env(map[string]string{"HOME": "/home/a"})); got != "/home/a/.config/pulse/cookie" {
		t.Errorf("cookiePath from HOME = %q", got)
	}
	if got := cookiePath("", env(map[string]string{"HOME": "/home/a", "PULSE_COOKIE": "/c"})); got != "/c" {
		t.Errorf("cookiePath from PULSE_COOKIE = %q", got)
	}
	if got := cookiePath("/o", env(map[string]string{"PULSE_COOKIE": "/c"})); got != "/o" {
		t.Errorf("cookiePath option = %q", got)
	}
	missing, err := readCookie(filepath.Join(t.TempDir(), "none"))
	if err != nil || len(missing) != cookieSize || slices.ContainsFunc(missing, func(b byte) bool { return b != 0 }) {
		t.Errorf("missing cookie: %d bytes, %v; want %d zero bytes", len(missing), err, cookieSize)
	}
	path := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readCookie(path); err != nil || string(got) != "0123456789" {
		t.Errorf("readCookie = %q, %v", got, err)
	}
}

func TestNewNamesTheServer(t *testing.T) {
	for _, c := range []struct{ pkg, want string }{
		{"PulseAudio (on PipeWire 0.3.65)", NamePipeWire},
		{"pulseaudio", NamePulse},
	} {
		s := room()
		s.pkg = c.pkg
		d := newTestDriver(t, s, Options{})
		if d.Name() != c.want {
			t.Errorf("server %q: driver name %q, want %q", c.pkg, d.Name(), c.want)
		}
		if d.Server().Package != c.pkg || d.Server().Version != "15.0.0" {
			t.Errorf("Server() = %+v", d.Server())
		}
		if n := len(s.open()); n != 0 {
			t.Errorf("New left %d connections open", n)
		}
	}
}

func TestNewWithoutServer(t *testing.T) {
	s := newFakeServer()
	s.dialErr = ErrNoServer
	_, err := New(t.Context(), Options{dial: s.dial})
	if !errors.Is(err, ErrNoServer) {
		t.Errorf("err = %v, want ErrNoServer", err)
	}
	// The real dialler, pointed at nothing.
	_, err = New(t.Context(), Options{Server: "unix:" + filepath.Join(t.TempDir(), "none")})
	if !errors.Is(err, ErrNoServer) {
		t.Errorf("real dial: err = %v, want ErrNoServer", err)
	}
	if _, err := New(t.Context(), Options{Latency: -time.Second, dial: s.dial}); err == nil {
		t.Error("negative latency accepted")
	}
}

// TestEnumerate checks what the room's sinks and sources become: the
// speakers and microphones with their stable IDs, names and echo
// cancellation, without monitors.
func TestEnumerate(t *testing.T) {
	d := newTestDriver(t, room(), Options{})
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, dev := range devs {
		i := dev.Info()
		line := string(i.Kind) + " " + i.ID + " | " + i.Name + " | " + i.Driver
		if i.EchoCancelled {
			line += " | EC"
		}
		got = append(got, line)
	}
	want := []string{
		"speaker pipewire:sink:serial:0b0e:0422:Jabra_SPEAK_510_745C4B/analog-stereo | Jabra SPEAK 510 Analog Stereo | pipewire",
		"speaker pipewire:sink:bus:pci-0000:00:1f.3/hdmi-stereo | Built-in Audio Digital Stereo (HDMI) | pipewire",
		"speaker pipewire:sink:ec:atrium-ec-sink | Room speaker (echo-cancelled) | pipewire | EC",
		"speaker pipewire:sink:node:scratch | Scratch | pipewire",
		"microphone pipewire:source:serial:0b0e:0422:Jabra_SPEAK_510_745C4B/mono-fallback | Jabra SPEAK 510 Mono | pipewire",
		"microphone pipewire:source:ec:atrium-ec-source | Room microphone (echo-cancelled) | pipewire | EC",
	}
	if !slices.Equal(got, want) {
		t.Errorf("devices:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, dev := range devs {
		if _, ok := dev.(hal.Controller); !ok {
			t.Errorf("%s is no hal.Controller", dev.Info().ID)
		}
	}

	spk, mic, ok := EchoCancelledPair(devs)
	if !ok || spk.Info().ID != "pipewire:sink:ec:atrium-ec-sink" || mic.Info().ID != "pipewire:source:ec:atrium-ec-source" {
		t.Errorf("EchoCancelledPair = %v, %v, %v", spk, mic, ok)
	}
	if g := spk.(*Speaker).EchoCancelGroup(); g != "echo-cancel-1234-25" || g != mic.(*Microphone).EchoCancelGroup() {
		t.Errorf("groups %q and %q", g, mic.(*Microphone).EchoCancelGroup())
	}
	if _, _, ok := EchoCancelledPair(devs[:1]); ok {
		t.Error("EchoCancelledPair found a pair among non-cancelled devices")
	}
}

func TestEchoCancelDetection(t *testing.T) {
	for _, c := range []struct {
		name  string
		n     node
		group string
	}{
		{"marker and group", node{props: map[string]string{PropEchoCancel: "true", propLinkGroup: "g1"}, monitorOf: proto.Undefined}, "g1"},
		{"marker alone", node{name: "room-ec-source", props: map[string]string{PropEchoCancel: "true"}, monitorOf: proto.Undefined}, "name:room-ec"},
		{"any PipeWire echo-cancel", node{props: map[string]string{propLinkGroup: "echo-cancel-77-3"}, monitorOf: proto.Undefined}, "echo-cancel-77-3"},
		{"PulseAudio module", node{driver: "module-echo-cancel.c", module: 12, monitorOf: proto.Undefined}, "module:12"},
		{"a loopback is not", node{props: map[string]string{propLinkGroup: "loopback-77-3"}, monitorOf: proto.Undefined}, ""},
		{"a monitor is not", node{props: map[string]string{PropEchoCancel: "true", propLinkGroup: "g1"}, monitorOf: 3}, ""},
	} {
		if got := c.n.echoCancelGroup(); got != c.group {
			t.Errorf("%s: group %q, want %q", c.name, got, c.group)
		}
	}
	n := node{description: "Room speaker", props: map[string]string{PropEchoCancel: "true", propLinkGroup: "g"}, monitorOf: proto.Undefined, sink: true}
	if got := n.displayName(); got != "Room speaker (echo-cancelled)" {
		t.Errorf("displayName = %q", got)
	}
	n.description = "Echo-Cancel Sink"
	if got := n.displayName(); got != "Echo-Cancel Sink" {
		t.Errorf("displayName = %q, want it unchanged", got)
	}
}

func TestMonitor(t *testing.T) {
	d := newTestDriver(t, room(), Options{})
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	ec := devs[2].(*Speaker)
	m := ec.Monitor()
	i := m.Info()
	if i.ID != "pipewire:source:monitor:ec:atrium-ec-sink" || i.Kind != hal.KindMicrophone || i.EchoCancelled || m.NodeName() != ECSinkName+".monitor" {
		t.Errorf("monitor of the EC sink: %+v (node %s)", i, m.NodeName())
	}
	if !strings.HasPrefix(i.Name, "Monitor of ") {
		t.Errorf("monitor name %q", i.Name)
	}
	if (&Speaker{device{d: d, n: node{sink: true}}}).Monitor() != nil {
		t.Error("a sink without a monitor has one")
	}
}

func TestFormats(t *testing.T) {
	d := newTestDriver(t, room(), Options{})
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	jabraMic := devs[4].(*Microphone)
	f := jabraMic.Formats()
	if f[0] != (hal.AudioFormat{SampleRate: 16000, Channels: 1}) {
		t.Errorf("first format %+v, want the node's own 16 kHz mono", f[0])
	}
	if !slices.Contains(f, hal.AudioFormat{SampleRate: 48000, Channels: 2}) || len(f) != 12 {
		t.Errorf("formats %v", f)
	}
	if _, err := jabraMic.Open(t.Context(), hal.AudioFormat{SampleRate: 22050, Channels: 1}); !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("Open of an unlisted format: %v", err)
	}
}

func TestControls(t *testing.T) {
	s := room()
	d := newTestDriver(t, s, Options{})
	ctx := testContext(t)
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdmi := devs[1].(*Speaker)
	ctl := func(c hal.Controller) map[hal.ControlID]int64 {
		m := map[hal.ControlID]int64{}
		for _, x := range c.Controls() {
			m[x.ID] = x.Value
		}
		return m
	}
	if got := ctl(hdmi); got[hal.CtrlVolume] != 50 || got[hal.CtrlMute] != 1 {
		t.Errorf("HDMI controls %v, want volume 50 muted", got)
	}
	if err := hdmi.SetControl(ctx, hal.CtrlVolume, 80); err != nil {
		t.Fatal(err)
	}
	if err := hdmi.SetControl(ctx, hal.CtrlMute, 0); err != nil {
		t.Fatal(err)
	}
	if got := ctl(hdmi); got[hal.CtrlVolume] != 80 || got[hal.CtrlMute] != 0 {
		t.Errorf("after setting: %v, want volume 80 unmuted", got)
	}
	s.mu.Lock()
	vols := s.sink("alsa_output.pci-0000_00_1f.3.hdmi-stereo").ChannelVolumes
	s.mu.Unlock()
	if want := pulseVolume(80); !slices.Equal(vols, []uint32{want, want}) {
		t.Errorf("server volumes %v, want both channels %d", vols, want)
	}

	mic := devs[5].(*Microphone)
	if err := mic.SetControl(ctx, hal.CtrlMute, 1); err != nil {
		t.Fatal(err)
	}
	if err := mic.SetControl(ctx, hal.CtrlVolume, 0); err != nil {
		t.Fatal(err)
	}
	if got := ctl(mic); got[hal.CtrlVolume] != 0 || got[hal.CtrlMute] != 1 {
		t.Errorf("mic controls %v", got)
	}

	for _, c := range []struct {
		id    hal.ControlID
		value int64
		want  error
	}{
		{hal.CtrlVolume, 101, hal.ErrOutOfRange},
		{hal.CtrlVolume, -1, hal.ErrOutOfRange},
		{hal.CtrlMute, 2, hal.ErrOutOfRange},
		{hal.CtrlBrightness, 1, hal.ErrUnknownControl},
	} {
		if err := hdmi.SetControl(ctx, c.id, c.value); !errors.Is(err, c.want) {
			t.Errorf("SetControl(%s, %d) = %v, want %v", c.id, c.value, err, c.want)
		}
	}

	// A sink that went away: setting fails as unplugged, reading shows
	// what enumeration saw.
	s.mu.Lock()
	s.sinks = s.sinks[:1]
	s.mu.Unlock()
	if err := hdmi.SetControl(ctx, hal.CtrlVolume, 10); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("SetControl on a removed sink: %v, want ErrUnplugged", err)
	}
	if got := ctl(hdmi); got[hal.CtrlVolume] != 50 || got[hal.CtrlMute] != 1 {
		t.Errorf("controls of a removed sink: %v, want the enumerated ones", got)
	}
	if n := len(s.open()); n != 0 {
		t.Errorf("%d connections left open", n)
	}
}

func TestVolumeScale(t *testing.T) {
	for _, pct := range []int64{0, 1, 33, 50, 99, 100} {
		if got := volumePercent(pulseVolume(pct)); got != pct {
			t.Errorf("%d%% round-trips to %d%%", pct, got)
		}
	}
	if got := controls(node{volumes: []uint32{2 * uint32(proto.VolumeNorm)}})[0].Value; got != 100 {
		t.Errorf("a boosted volume reads %d, want 100", got)
	}
}

func TestWatch(t *testing.T) {
	s := room()
	d := newTestDriver(t, s, Options{})
	ctx, cancel := context.WithCancel(testContext(t))
	changed := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx, func() { changed <- struct{}{} }) }()

	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-changed:
			if !want {
				t.Errorf("%s: changed was called", what)
			}
		case <-time.After(100 * time.Millisecond):
			if want {
				t.Errorf("%s: changed was not called", what)
			}
		}
	}
	expect("start", true)
	s.waitFor(t, "the subscription", func() bool { return slices.Contains(s.requests, "*proto.Subscribe") })
	s.emit(&proto.SubscribeEvent{Event: proto.EventSink | proto.EventNew, Index: 70})
	expect("new sink", true)
	s.emit(&proto.SubscribeEvent{Event: proto.EventSource | proto.EventRemove, Index: 42})
	expect("source removed", true)
	s.emit(&proto.SubscribeEvent{Event: proto.EventSink | proto.EventChange, Index: 40})
	expect("volume change", false)
	s.emit(&proto.SubscribeEvent{Event: proto.EventSinkSinkInput | proto.EventNew, Index: 3})
	expect("new stream", false)

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
	if n := len(s.open()); n != 0 {
		t.Errorf("Watch left %d connections open", n)
	}

	// The server going away ends Watch with ErrConnectionLost, for the
	// registry to retry.
	go func() { done <- d.Watch(testContext(t), func() {}) }()
	s.waitFor(t, "the second subscription", func() bool {
		n := 0
		for _, r := range s.requests {
			if r == "*proto.Subscribe" {
				n++
			}
		}
		return n == 2
	})
	s.drop()
	if err := <-done; !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Watch after the server left: %v, want ErrConnectionLost", err)
	}
}
