package pulse

import (
	"context"
	"errors"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/test/pipewiretest"
)

// The tests below run against a real PipeWire with the image's echo
// canceller (test/pipewiretest): a null sink is the room's speaker, its
// monitor the room's microphone.

func startPipeWire(t *testing.T) (*pipewiretest.Server, *Driver) {
	t.Helper()
	srv := pipewiretest.Start(t)
	d, err := New(testContext(t), Options{Server: srv.PulseServer})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv, d
}

// byNode maps enumerated devices by node name.
func byNode(t *testing.T, devs []hal.Device) map[string]hal.Device {
	t.Helper()
	m := map[string]hal.Device{}
	for _, d := range devs {
		n, ok := d.(interface{ NodeName() string })
		if !ok {
			t.Fatalf("%T has no NodeName", d)
		}
		m[n.NodeName()] = d
	}
	return m
}

// TestECNamesMatchRootfs keeps this package's node names and the image's
// configuration in step.
func TestECNamesMatchRootfs(t *testing.T) {
	b, err := os.ReadFile("../../rootfs/pipewire/pipewire.conf.d/50-atrium-echo-cancel.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, name := range []string{ECSinkName, ECSourceName, ECCaptureName, ECPlaybackName} {
		if !strings.Contains(conf, `node.name = "`+name+`"`) {
			t.Errorf("the configuration names no node %q", name)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^\s*`+regexp.QuoteMeta(PropEchoCancel)+`\s*=\s*true\s*$`).FindAllString(conf, -1)); n != 2 {
		t.Errorf("%s = true is set on %d nodes, want the source and the sink", PropEchoCancel, n)
	}
	if ECSinkName != pipewiretest.ECSink || ECSourceName != pipewiretest.ECSource {
		t.Error("test/pipewiretest's names differ from this package's")
	}
}

func TestPipeWireEnumerate(t *testing.T) {
	_, d := startPipeWire(t)
	if d.Name() != NamePipeWire {
		t.Errorf("driver name %q, want %q (server %+v)", d.Name(), NamePipeWire, d.Server())
	}
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	nodes := byNode(t, devs)
	for name, want := range map[string]hal.Info{
		pipewiretest.RoomSink: {ID: "pipewire:sink:node:atrium-test-room", Kind: hal.KindSpeaker, Name: "Test room speaker", Driver: NamePipeWire},
		ECSinkName:            {ID: "pipewire:sink:ec:atrium-ec-sink", Kind: hal.KindSpeaker, Name: "Room speaker (echo-cancelled)", Driver: NamePipeWire, EchoCancelled: true},
		ECSourceName:          {ID: "pipewire:source:ec:atrium-ec-source", Kind: hal.KindMicrophone, Name: "Room microphone (echo-cancelled)", Driver: NamePipeWire, EchoCancelled: true},
	} {
		dev, ok := nodes[name]
		if !ok {
			t.Errorf("%s not enumerated", name)
			continue
		}
		if got := dev.Info(); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	if len(devs) != 3 {
		// The monitors of both sinks are there on the server, and must not
		// be listed as microphones.
		t.Errorf("%d devices, want 3: %v", len(devs), devs)
	}
	spk, mic, ok := EchoCancelledPair(devs)
	if !ok || spk != nodes[ECSinkName] || mic != nodes[ECSourceName] {
		t.Errorf("EchoCancelledPair = %v, %v, %v", spk, mic, ok)
	}
	if m := nodes[pipewiretest.RoomSink].(*Speaker).Monitor(); m == nil || m.NodeName() != pipewiretest.RoomMonitor {
		t.Errorf("room monitor %v", m)
	}
}

// TestPipeWirePlayRecord plays a tone into the room's speaker and records
// it from the room's microphone (the sink's monitor), through the server,
// with the default 20 ms of buffering, and checks it arrives intact.
func TestPipeWirePlayRecord(t *testing.T) {
	_, d := startPipeWire(t)
	ctx := testContext(t)
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spk := byNode(t, devs)[pipewiretest.RoomSink].(*Speaker)
	// The room's sink is mono, so mono goes through unchanged (PipeWire
	// would mix stereo down and up again, at its own gains).
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	capt, err := spk.Monitor().Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Close()
	play, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()

	// One second of 1 kHz at -12 dBFS peak.
	const amp = 0.25 * 32767
	tone := make([]int16, 48000)
	for i := range tone {
		tone[i] = int16(math.Round(amp * math.Sin(2*math.Pi*1000*float64(i)/48000)))
	}
	writeDone := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := 0; i < len(tone); i += 480 {
			if err := play.Write(ctx, tone[i:i+480]); err != nil {
				writeDone <- err
				return
			}
		}
		writeDone <- nil
	}()

	// Record 1.2 s; the tone is in there, somewhere after its start.
	rec := make([]int16, 0, 57600)
	buf := make([]int16, 480)
	var first, last time.Time
	for len(rec) < cap(rec) {
		n, at, err := capt.Read(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = at
		} else if !at.After(last) {
			t.Fatalf("capture times go backwards: %v after %v", at, last)
		}
		last = at
		rec = append(rec, buf[:n]...)
	}
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("1.2 s of audio recorded in %v: not in real time", elapsed)
	}
	if d := first.Sub(start).Abs(); d > 500*time.Millisecond {
		t.Errorf("first capture time %v away from the start", d)
	}

	// The loudest 0.5 s window: the tone at its level, at 1 kHz (zero
	// crossings).
	var bestRMS float64
	var bestAt int
	for i := 0; i+24000 <= len(rec); i += 480 {
		var sum float64
		for _, v := range rec[i : i+24000] {
			sum += float64(v) * float64(v)
		}
		if rms := math.Sqrt(sum / 24000); rms > bestRMS {
			bestRMS, bestAt = rms, i
		}
	}
	if want := amp / math.Sqrt2; math.Abs(20*math.Log10(bestRMS/want)) > 0.5 {
		t.Errorf("recorded RMS %.0f, want %.0f (the tone, unchanged)", bestRMS, want)
	}
	crossings := 0
	for i := bestAt + 1; i < bestAt+24000; i++ {
		if (rec[i-1] < 0) != (rec[i] < 0) {
			crossings++
		}
	}
	if crossings < 990 || crossings > 1010 {
		t.Errorf("%d zero crossings in 0.5 s, want about 1000 (1 kHz)", crossings)
	}
}

// TestPipeWireControls sets volume and mute through the driver and reads
// them back through pactl, an independent client, and the other way round.
func TestPipeWireControls(t *testing.T) {
	srv, d := startPipeWire(t)
	ctx := testContext(t)
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodes := byNode(t, devs)
	value := func(c hal.Controller, id hal.ControlID) int64 {
		for _, x := range c.Controls() {
			if x.ID == id {
				return x.Value
			}
		}
		t.Fatalf("no control %s", id)
		return 0
	}
	for _, c := range []struct {
		name, kind string
	}{
		{pipewiretest.RoomSink, "sink"},
		{ECSourceName, "source"},
	} {
		dev := nodes[c.name].(hal.Controller)
		if err := dev.SetControl(ctx, hal.CtrlVolume, 40); err != nil {
			t.Fatal(err)
		}
		if err := dev.SetControl(ctx, hal.CtrlMute, 1); err != nil {
			t.Fatal(err)
		}
		vol, err := srv.Pactl(ctx, "get-"+c.kind+"-volume", c.name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(vol, "40%") {
			t.Errorf("%s: pactl reads the volume as %q, want 40%%", c.name, vol)
		}
		mute, err := srv.Pactl(ctx, "get-"+c.kind+"-mute", c.name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(mute) != "Mute: yes" {
			t.Errorf("%s: pactl reads mute as %q", c.name, mute)
		}
		if v, m := value(dev, hal.CtrlVolume), value(dev, hal.CtrlMute); v != 40 || m != 1 {
			t.Errorf("%s: Controls reads volume %d mute %d, want 40 1", c.name, v, m)
		}

		if _, err := srv.Pactl(ctx, "set-"+c.kind+"-volume", c.name, "70%"); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Pactl(ctx, "set-"+c.kind+"-mute", c.name, "0"); err != nil {
			t.Fatal(err)
		}
		if v, m := value(dev, hal.CtrlVolume), value(dev, hal.CtrlMute); v != 70 || m != 0 {
			t.Errorf("%s: after pactl, Controls reads volume %d mute %d, want 70 0", c.name, v, m)
		}
	}
}

// TestPipeWireHotplug adds and removes a sink the way a USB speakerphone
// comes and goes (a null sink through the pulse protocol's module-load),
// and checks that Watch reports both, that Enumerate follows, and that a
// stream open on the sink ends as unplugged.
func TestPipeWireHotplug(t *testing.T) {
	srv, d := startPipeWire(t)
	ctx := testContext(t)
	watchCtx, stop := context.WithCancel(ctx)
	changed := make(chan struct{}, 64)
	watchDone := make(chan error, 1)
	go func() { watchDone <- d.Watch(watchCtx, func() { changed <- struct{}{} }) }()
	defer func() {
		stop()
		if err := <-watchDone; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	waitChanged := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("Watch did not report %s", what)
		}
	}
	drain := func() {
		for {
			select {
			case <-changed:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	waitChanged("that it watches")
	drain()

	const id = "pipewire:sink:node:atrium-hotplug"
	has := func() (hal.Device, bool) {
		devs, err := d.Enumerate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dev := range devs {
			if dev.Info().ID == id {
				return dev, true
			}
		}
		return nil, false
	}
	if _, ok := has(); ok {
		t.Fatal("the sink is there before it was added")
	}
	out, err := srv.Pactl(ctx, "load-module", "module-null-sink", "sink_name=atrium-hotplug", "sink_properties=device.description=Hotplug")
	if err != nil {
		t.Fatal(err)
	}
	module := strings.TrimSpace(out)
	waitChanged("the new sink")
	dev, ok := has()
	if !ok {
		t.Fatal("the new sink is not enumerated")
	}
	if dev.Info().Name != "Hotplug" {
		t.Errorf("new sink's name %q", dev.Info().Name)
	}
	play, err := dev.(hal.Speaker).Open(ctx, hal.AudioFormat{SampleRate: 48000, Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]int16, 480)
		for {
			if err := play.Write(ctx, buf); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // playing
	drain()

	if _, err := srv.Pactl(ctx, "unload-module", module); err != nil {
		t.Fatal(err)
	}
	waitChanged("the sink's removal")
	if _, ok := has(); ok {
		t.Error("the removed sink is still enumerated")
	}
	select {
	case err := <-writeErr:
		if !errors.Is(err, hal.ErrUnplugged) {
			t.Errorf("Write after the sink went: %v, want ErrUnplugged", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Write did not fail after the sink went")
	}
}
