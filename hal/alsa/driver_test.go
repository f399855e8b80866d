package alsa

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// usbCard is a USB speakerphone on card idx: stereo 48 kHz playback, mono
// capture, with USB audio's mixer names. serial "" leaves it without one.
func usbCard(fs *fakeSys, idx int, port, serial string) *fakeCard {
	usbDev := "/sys/devices/pci0000:00/0000:00:14.0/usb1/" + port
	fs.links[fmt.Sprintf("/sys/class/sound/card%d/device", idx)] = usbDev + "/" + port + ":1.0"
	fs.files[usbDev+"/idVendor"] = "0b0e\n"
	fs.files[usbDev+"/idProduct"] = "0422\n"
	if serial != "" {
		fs.files[usbDev+"/serial"] = serial + "\n"
	}
	play := pcm(0, false, "USB Audio", 1)
	play.rate, play.channels = [2]uint32{48000, 48000}, [2]uint32{2, 2}
	rec := pcm(0, true, "USB Audio", 1)
	rec.rate, rec.channels = [2]uint32{16000, 48000}, [2]uint32{1, 1}
	return &fakeCard{id: "S510", name: "Jabra SPEAK 510 USB", driver: "USB-Audio",
		pcms: []*fakePCM{play, rec},
		elems: []*fakeElem{
			volume(1, "PCM Playback Volume", 0, 255, 200),
			toggle(2, "PCM Playback Switch", true),
			{numid: 3, name: "Mic Capture Volume", iface: elemIfaceMixer, typ: elemTypeInteger, access: 3, min: 0, max: 31, values: []int64{31}},
			toggle(4, "Mic Capture Switch", false),
		}}
}

func enumerate(t *testing.T, ctx context.Context, d *Driver) map[string]hal.Device {
	t.Helper()
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	m := make(map[string]hal.Device)
	for _, dev := range devs {
		id := dev.Info().ID
		if _, dup := m[id]; dup {
			t.Errorf("ID %s listed twice", id)
		}
		m[id] = dev
	}
	return m
}

func TestEnumerate(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(0, loopbackCard())
	fs.addCard(1, dummyCard())
	fs.addCard(2, usbCard(fs, 2, "1-1", "A00B 2C/3D"))
	fs.addCard(3, usbCard(fs, 3, "1-2", ""))
	d := newTestDriver(t, fs)
	devs := enumerate(t, ctx, d)

	stereo48 := []hal.AudioFormat{{SampleRate: 48000, Channels: 2}}
	mono := []hal.AudioFormat{{SampleRate: 48000, Channels: 1}, {SampleRate: 44100, Channels: 1}, {SampleRate: 16000, Channels: 1}}
	all := []hal.AudioFormat{
		{SampleRate: 48000, Channels: 1}, {SampleRate: 48000, Channels: 2},
		{SampleRate: 44100, Channels: 1}, {SampleRate: 44100, Channels: 2},
		{SampleRate: 16000, Channels: 1}, {SampleRate: 16000, Channels: 2},
	}
	want := []struct {
		id, name string
		kind     hal.Kind
		formats  []hal.AudioFormat
		alsa     string
	}{
		{"alsa:Loopback-pcm0p", "Loopback: Loopback PCM #0", hal.KindSpeaker, all, "hw:CARD=Loopback,DEV=0"},
		{"alsa:Loopback-pcm0c", "Loopback: Loopback PCM #0", hal.KindMicrophone, all, "hw:CARD=Loopback,DEV=0"},
		{"alsa:Loopback-pcm1p", "Loopback: Loopback PCM #1", hal.KindSpeaker, all, "hw:CARD=Loopback,DEV=1"},
		{"alsa:Loopback-pcm1c", "Loopback: Loopback PCM #1", hal.KindMicrophone, all, "hw:CARD=Loopback,DEV=1"},
		{"alsa:Dummy-pcm0p", "Dummy: Dummy PCM", hal.KindSpeaker, all, "hw:CARD=Dummy,DEV=0"},
		{"alsa:Dummy-pcm0c", "Dummy: Dummy PCM", hal.KindMicrophone, all, "hw:CARD=Dummy,DEV=0"},
		{"alsa:usb-0b0e:0422-A00B_2C_3D-pcm0p", "Jabra SPEAK 510 USB: USB Audio", hal.KindSpeaker, stereo48, "hw:CARD=S510,DEV=0"},
		{"alsa:usb-0b0e:0422-A00B_2C_3D-pcm0c", "Jabra SPEAK 510 USB: USB Audio", hal.KindMicrophone, mono, "hw:CARD=S510,DEV=0"},
		// No serial number: the USB port stands in.
		{"alsa:usb-0b0e:0422-1-2-pcm0p", "Jabra SPEAK 510 USB: USB Audio", hal.KindSpeaker, stereo48, "hw:CARD=S510,DEV=0"},
		{"alsa:usb-0b0e:0422-1-2-pcm0c", "Jabra SPEAK 510 USB: USB Audio", hal.KindMicrophone, mono, "hw:CARD=S510,DEV=0"},
	}
	if len(devs) != len(want) {
		t.Errorf("Enumerate listed %d devices, want %d: %v", len(devs), len(want), slices.Sorted(func(yield func(string) bool) {
			for id := range devs {
				if !yield(id) {
					return
				}
			}
		}))
	}
	for _, w := range want {
		dev, ok := devs[w.id]
		if !ok {
			t.Errorf("%s missing", w.id)
			continue
		}
		info := dev.Info()
		if info != (hal.Info{ID: w.id, Kind: w.kind, Name: w.name, Driver: "alsa"}) {
			t.Errorf("%s: Info = %+v", w.id, info)
		}
		var formats []hal.AudioFormat
		var alsaName string
		switch dev := dev.(type) {
		case *Speaker:
			formats, alsaName = dev.Formats(), dev.ALSAName()
			var _ hal.Speaker = dev
			var _ hal.Controller = dev
		case *Microphone:
			formats, alsaName = dev.Formats(), dev.ALSAName()
			var _ hal.Microphone = dev
			var _ hal.Controller = dev
		default:
			t.Errorf("%s is a %T", w.id, dev)
		}
		if !slices.Equal(formats, w.formats) {
			t.Errorf("%s: Formats = %v, want %v", w.id, formats, w.formats)
		}
		if alsaName != w.alsa {
			t.Errorf("%s: ALSAName = %q, want %q", w.id, alsaName, w.alsa)
		}
	}
	if n := devs["alsa:Loopback-pcm1c"].(*Microphone).Subdevices(); n != 8 {
		t.Errorf("Loopback subdevices = %d, want 8", n)
	}
}

func TestEnumerateNoCards(t *testing.T) {
	fs := newFakeSys(t)
	d := newTestDriver(t, fs)
	devs, err := d.Enumerate(testContext(t))
	if err != nil || len(devs) != 0 {
		t.Errorf("Enumerate without cards = %v, %v; want nothing, no error", devs, err)
	}
}

// TestHotplugKeepsHandles unplugs a card and plugs it back at another
// index: the handle from before is the one listed again, refuses to open
// while the card is away, and opens the card at its new index afterwards.
func TestHotplugKeepsHandles(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(0, loopbackCard())
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	before := enumerate(t, ctx, d)
	spk := before["alsa:Dummy-pcm0p"].(*Speaker)
	f := hal.AudioFormat{SampleRate: 48000, Channels: 2}

	fs.unplug(1)
	after := enumerate(t, ctx, d)
	if _, ok := after["alsa:Dummy-pcm0p"]; ok || len(after) != 4 {
		t.Errorf("after unplug: %d devices, Dummy still listed: %v", len(after), ok)
	}
	if _, err := spk.Open(ctx, f); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open of an unplugged device = %v, want ErrUnplugged", err)
	}

	// Another card takes the freed index before the driver rescans: the
	// stale location must not open the wrong card.
	fs.addCard(1, usbCard(fs, 1, "1-1", "X"))
	fs.unplug(1)
	fs.addCard(2, dummyCard())
	back := enumerate(t, ctx, d)
	if back["alsa:Dummy-pcm0p"].(*Speaker).device != spk.device {
		t.Error("the replugged device has a new handle")
	}
	if got := spk.ALSAName(); got != "hw:CARD=Dummy,DEV=0" {
		t.Errorf("ALSAName = %q", got)
	}
	p, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatalf("Open after replug: %v", err)
	}
	if fs.lastStream(2, 0, false) == nil {
		t.Error("the stream did not open card 2, where the device now is")
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenChecksCardIdentity(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	spk := enumerate(t, ctx, d)["alsa:Dummy-pcm0p"].(*Speaker)
	// Replaced behind the driver's back, with no rescan in between.
	fs.unplug(1)
	fs.addCard(1, usbCard(fs, 1, "1-1", "X"))
	_, err := spk.Open(ctx, hal.AudioFormat{SampleRate: 48000, Channels: 2})
	if !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open on a card now someone else's = %v, want ErrUnplugged", err)
	}
}

func TestEnumerateBusyKeepsFormats(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	spk := enumerate(t, ctx, d)["alsa:Dummy-pcm0p"].(*Speaker)
	want := spk.Formats()
	p, err := spk.Open(ctx, hal.AudioFormat{SampleRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The only subdevice is busy now: the probe fails, the formats stay.
	again := enumerate(t, ctx, d)["alsa:Dummy-pcm0p"].(*Speaker)
	if got := again.Formats(); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("Formats while busy = %v, want %v", got, want)
	}
	if _, err := again.Open(ctx, hal.AudioFormat{SampleRate: 48000, Channels: 2}); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("second Open = %v, want ErrBusy", err)
	}
}

func TestControls(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(0, loopbackCard())
	fs.addCard(1, dummyCard())
	fs.addCard(2, usbCard(fs, 2, "1-1", "S"))
	d := newTestDriver(t, fs)
	devs := enumerate(t, ctx, d)
	ctrl := func(id string) hal.Controller { return devs[id].(hal.Controller) }
	get := func(c hal.Controller, id hal.ControlID) (hal.Control, bool) {
		for _, x := range c.Controls() {
			if x.ID == id {
				return x, true
			}
		}
		return hal.Control{}, false
	}

	// snd-aloop has mixer elements, but none for volume.
	if c := ctrl("alsa:Loopback-pcm0p").Controls(); len(c) != 0 {
		t.Errorf("Loopback controls = %+v, want none", c)
	}
	if err := ctrl("alsa:Loopback-pcm0p").SetControl(ctx, hal.CtrlVolume, 50); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("volume on Loopback = %v, want ErrUnknownControl", err)
	}

	// snd-dummy: "Master Volume" -50..100 at 100, no playback switch.
	spk := ctrl("alsa:Dummy-pcm0p")
	if got := spk.Controls(); len(got) != 1 || got[0] != (hal.Control{ID: hal.CtrlVolume, Name: "Master Volume", Type: hal.ControlInt, Min: 0, Max: 100, Step: 1, Default: 100, Value: 100}) {
		t.Errorf("Dummy speaker controls = %+v", got)
	}
	if err := spk.SetControl(ctx, hal.CtrlVolume, 37); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(spk, hal.CtrlVolume); v.Value != 37 {
		t.Errorf("volume after set 37 = %d", v.Value)
	}
	fs.with(func() {
		// 37% of 150 steps above -50.
		if raw := fs.cards[1].elems[0].values; !slices.Equal(raw, []int64{6, 6}) {
			t.Errorf("raw Master Volume = %v, want [6 6]", raw)
		}
	})
	for _, v := range []int64{-1, 101} {
		if err := spk.SetControl(ctx, hal.CtrlVolume, v); !errors.Is(err, hal.ErrOutOfRange) {
			t.Errorf("volume %d = %v, want ErrOutOfRange", v, err)
		}
	}
	if err := spk.SetControl(ctx, hal.CtrlMute, 1); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("mute on Dummy speaker = %v, want ErrUnknownControl", err)
	}
	if err := spk.SetControl(ctx, hal.CtrlBrightness, 1); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("brightness = %v, want ErrUnknownControl", err)
	}

	// snd-dummy's microphone: "Mic Volume" and "Mic Capture Switch".
	mic := ctrl("alsa:Dummy-pcm0c")
	if v, ok := get(mic, hal.CtrlVolume); !ok || v.Name != "Mic Volume" || v.Value != 50 {
		t.Errorf("Dummy mic volume = %+v (raw 25 of -50..100 is 50%%)", v)
	}
	if m, ok := get(mic, hal.CtrlMute); !ok || m.Value != 0 || m.Type != hal.ControlBool {
		t.Errorf("Dummy mic mute = %+v, want unmuted", m)
	}
	if err := mic.SetControl(ctx, hal.CtrlMute, 1); err != nil {
		t.Fatal(err)
	}
	if m, _ := get(mic, hal.CtrlMute); m.Value != 1 {
		t.Error("mute did not read back")
	}
	fs.with(func() {
		if raw := fs.cards[1].elems[3].values; !slices.Equal(raw, []int64{0, 0}) {
			t.Errorf("raw Mic Capture Switch = %v, want off on both channels", raw)
		}
	})
	if err := mic.SetControl(ctx, hal.CtrlMute, 2); !errors.Is(err, hal.ErrOutOfRange) {
		t.Errorf("mute 2 = %v, want ErrOutOfRange", err)
	}

	// USB: playback volume 0..255 at 200, switch on; capture 0..31 mono
	// with its switch off.
	usbSpk := ctrl("alsa:usb-0b0e:0422-S-pcm0p")
	if v, _ := get(usbSpk, hal.CtrlVolume); v.Value != 78 || v.Name != "PCM Playback Volume" {
		t.Errorf("USB speaker volume = %+v, want 78%%", v)
	}
	if m, _ := get(usbSpk, hal.CtrlMute); m.Value != 0 {
		t.Errorf("USB speaker mute = %+v", m)
	}
	usbMic := ctrl("alsa:usb-0b0e:0422-S-pcm0c")
	if m, _ := get(usbMic, hal.CtrlMute); m.Value != 1 {
		t.Errorf("USB mic mute = %+v, want muted (switch off)", m)
	}
	// A 31-step range rounds: 50% is raw 16, which reads back as 52%.
	if err := usbMic.SetControl(ctx, hal.CtrlVolume, 50); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(usbMic, hal.CtrlVolume); v.Value != 52 {
		t.Errorf("USB mic volume after 50 = %d, want 52", v.Value)
	}

	// Unplugged: no controls, and setting says why.
	fs.unplug(1)
	if c := spk.Controls(); c != nil {
		t.Errorf("controls of an unplugged card = %+v", c)
	}
	if err := spk.SetControl(ctx, hal.CtrlVolume, 10); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("SetControl on an unplugged card = %v, want ErrUnplugged", err)
	}
}

func TestPlayback(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	spk := enumerate(t, ctx, d)["alsa:Dummy-pcm0p"].(*Speaker)

	if _, err := spk.Open(ctx, hal.AudioFormat{SampleRate: 22050, Channels: 2}); !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("Open at 22050 Hz = %v, want ErrUnsupportedMode", err)
	}
	f := hal.AudioFormat{SampleRate: 48000, Channels: 2}
	ap, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	p := ap.(*Playback)
	if p.Format() != f {
		t.Errorf("Format = %v", p.Format())
	}
	if period, buffer := p.Buffer(); period != 480 || buffer != 1920 {
		t.Errorf("period %d, buffer %d; want 480 (10 ms) and 1920 (4 periods)", period, buffer)
	}
	st := fs.lastStream(1, 0, false)
	fs.with(func() {
		if st.sw.AvailMin != 480 || st.sw.StartThreshold != 960 || st.sw.StopThreshold != 1920 {
			t.Errorf("sw params: avail_min %d, start %d, stop %d", st.sw.AvailMin, st.sw.StartThreshold, st.sw.StopThreshold)
		}
		if st.state != statePrepared {
			t.Errorf("state after open = %d, want prepared", st.state)
		}
	})

	// A second of ramp: more than the buffer, so Write waits in poll.
	samples := make([]int16, 2*48000)
	for i := range samples {
		samples[i] = int16(i)
	}
	if err := p.Write(ctx, samples); err != nil {
		t.Fatal(err)
	}
	fs.with(func() {
		if !slices.Equal(fs.cards[1].pcms[0].played, samples) {
			t.Error("the device did not get the samples in order")
		}
		if st.state != stateRunning {
			t.Errorf("state = %d, want running", st.state)
		}
	})
	if dl, err := p.Delay(); err != nil || dl <= 0 || dl > 40*time.Millisecond {
		t.Errorf("Delay = %v, %v; want within the 40 ms buffer", dl, err)
	}

	// An underrun: counted, the stream prepared again, nothing lost.
	fs.with(func() { st.injectXrun = true })
	if err := p.Write(ctx, samples[:960]); err != nil {
		t.Fatal(err)
	}
	if p.Xruns() != 1 {
		t.Errorf("Xruns = %d, want 1", p.Xruns())
	}
	fs.with(func() {
		if st.prepares != 2 {
			t.Errorf("%d prepares, want 2 (open, xrun)", st.prepares)
		}
		if got := fs.cards[1].pcms[0].played; len(got) != len(samples)+960 {
			t.Errorf("%d samples played, want %d", len(got), len(samples)+960)
		}
	})

	if err := p.Write(ctx, samples[:3]); err == nil {
		t.Error("Write of half a frame succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := p.Write(ctx, samples[:2]); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if _, err := p.Delay(); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Delay after Close = %v, want ErrClosed", err)
	}
}

func TestCapture(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	mic := enumerate(t, ctx, d)["alsa:Dummy-pcm0c"].(*Microphone)
	f := hal.AudioFormat{SampleRate: 16000, Channels: 1}
	ac, err := mic.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	c := ac.(*Capture)
	defer c.Close()
	st := fs.lastStream(1, 0, true)
	fs.with(func() {
		if st.period != 160 || st.buffer != 640 || st.sw.StartThreshold != 1 {
			t.Errorf("period %d, buffer %d, start %d; want 160, 640, 1", st.period, st.buffer, st.sw.StartThreshold)
		}
	})

	buf := make([]int16, 400) // 2.5 periods
	n, at, err := c.Read(ctx, buf)
	if err != nil || n != 400 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	for i, s := range buf {
		if s != int16(i) {
			t.Fatalf("sample %d = %d: not contiguous", i, s)
		}
	}
	// Read got 160, 160 and 80 frames, a period apart, leaving 80 waiting.
	// The first chunk was dated when its 160 frames were read with none
	// waiting, so it started 10 ms before the fake's now.
	if want := epoch.Add(-10 * time.Millisecond); !at.Equal(want) {
		t.Errorf("capturedAt = %v, want %v", at, want)
	}

	// The next read starts with the 80 frames left waiting.
	n, at, err = c.Read(ctx, buf[:80])
	if err != nil || n != 80 || buf[0] != 400 {
		t.Fatalf("second Read = %d, %v, first sample %d", n, err, buf[0])
	}
	if want := epoch.Add(-5 * time.Millisecond); !at.Equal(want) {
		t.Errorf("capturedAt = %v, want %v (80 frames old)", at, want)
	}

	// An overrun mid-read: the 100 frames read before it are dropped,
	// and the buffer is filled from the restart on.
	fs.with(func() {
		st.queued, st.next = 100, 1000
		st.xrunAt = st.transfers + 2
	})
	buf = make([]int16, 300)
	n, _, err = c.Read(ctx, buf)
	if err != nil || n != 300 {
		t.Fatalf("Read across an overrun = %d, %v", n, err)
	}
	if c.Xruns() != 1 {
		t.Errorf("Xruns = %d, want 1", c.Xruns())
	}
	if buf[0] != 1100 || buf[299] != 1399 {
		t.Errorf("samples %d..%d, want 1100..1399 (those after the overrun)", buf[0], buf[299])
	}
}

func TestStreamUnplugged(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(1, dummyCard())
	d := newTestDriver(t, fs)
	devs := enumerate(t, ctx, d)
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	p, err := devs["alsa:Dummy-pcm0p"].(*Speaker).Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	c, err := devs["alsa:Dummy-pcm0c"].(*Microphone).Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	fs.unplug(1)
	if err := p.Write(ctx, make([]int16, 480)); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Write after unplug = %v, want ErrUnplugged", err)
	}
	if _, _, err := c.Read(ctx, make([]int16, 480)); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Read after unplug = %v, want ErrUnplugged", err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// TestCloseUnblocksRead closes a stream whose device delivers nothing while
// a Read waits, and cancels another's context.
func TestCloseUnblocksRead(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(0, loopbackCard())
	d := newTestDriver(t, fs)
	mic := enumerate(t, ctx, d)["alsa:Loopback-pcm1c"].(*Microphone)
	fs.with(func() { fs.stall = true })
	f := hal.AudioFormat{SampleRate: 48000, Channels: 2}

	c, err := mic.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx, make([]int16, 960))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it reach poll
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Read during Close = %v, want ErrClosed", err)
	}
	if el := time.Since(start); el > 5*pollInterval { // one poll, with slack for a loaded machine
		t.Errorf("Close took %v", el)
	}

	c, err = mic.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, _, err := c.Read(rctx, make([]int16, 960)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read with an expiring context = %v", err)
	}
}

func TestOpenSubdevice(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	fs.addCard(0, loopbackCard())
	d := newTestDriver(t, fs)
	devs := enumerate(t, ctx, d)
	spk := devs["alsa:Loopback-pcm0p"].(*Speaker)
	mic := devs["alsa:Loopback-pcm1c"].(*Microphone)
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}

	p, err := spk.OpenSubdevice(ctx, f, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := mic.OpenSubdevice(ctx, f, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p.Subdevice() != 3 || c.Subdevice() != 3 {
		t.Errorf("subdevices %d and %d, want 3 and 3", p.Subdevice(), c.Subdevice())
	}
	if _, err := spk.OpenSubdevice(ctx, f, 3); !errors.Is(err, hal.ErrBusy) {
		t.Errorf("second open of subdevice 3 = %v, want ErrBusy", err)
	}
	// Open takes the first free one.
	any, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	if got := any.(*Playback).Subdevice(); got != 0 {
		t.Errorf("Open got subdevice %d, want 0", got)
	}
}

// TestPeriodNegotiation opens devices whose limits exclude the 10 ms and
// four-period targets: the driver settles on the nearest allowed.
func TestPeriodNegotiation(t *testing.T) {
	ctx := testContext(t)
	fs := newFakeSys(t)
	c := dummyCard()
	c.pcms[0].periodSize = [2]uint32{1024, 4096}
	c.pcms[0].periods = [2]uint32{2, 3}
	fs.addCard(1, c)
	d := newTestDriver(t, fs)
	spk := enumerate(t, ctx, d)["alsa:Dummy-pcm0p"].(*Speaker)
	p, err := spk.OpenSubdevice(ctx, hal.AudioFormat{SampleRate: 48000, Channels: 2}, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if period, buffer := p.Buffer(); period != 1024 || buffer != 3072 {
		t.Errorf("period %d, buffer %d; want 1024 and 3 periods", period, buffer)
	}
}

func TestWatchUsesHotplug(t *testing.T) {
	d := New(Options{})
	if !strings.Contains(fmt.Sprintf("%T", d.watcher), "hotplug.Monitor") {
		t.Errorf("watcher is a %T", d.watcher)
	}
}
