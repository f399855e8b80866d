//go:build vmguest

package alsa

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Guest tests: they run as root in the QEMU guest described in test/vm,
// with snd-aloop as card 0 (id "Loopback") and snd-dummy as card 1 (id
// "Dummy"), and no udev or sound server.

const (
	loopPlay = "alsa:Loopback-pcm0p"
	loopRec  = "alsa:Loopback-pcm1c"
	dumPlay  = "alsa:Dummy-pcm0p"
	dumRec   = "alsa:Dummy-pcm0c"

	// eventTimeout bounds waits for hotplug and for a stream to notice an
	// unplug, under emulation.
	eventTimeout = 10 * time.Second
)

func guestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func guestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func guestEnumerate(t *testing.T, ctx context.Context, d *Driver) map[string]hal.Device {
	t.Helper()
	devs, err := d.Enumerate(ctx)
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	m := make(map[string]hal.Device)
	for _, dev := range devs {
		m[dev.Info().ID] = dev
	}
	return m
}

func TestGuestEnumerate(t *testing.T) {
	ctx := guestContext(t)
	start := time.Now()
	devs := guestEnumerate(t, ctx, New(Options{Logger: guestLogger(t)}))
	t.Logf("enumerated %d devices in %v", len(devs), time.Since(start).Round(time.Millisecond))

	all := []hal.AudioFormat{
		{SampleRate: 48000, Channels: 1}, {SampleRate: 48000, Channels: 2},
		{SampleRate: 44100, Channels: 1}, {SampleRate: 44100, Channels: 2},
		{SampleRate: 16000, Channels: 1}, {SampleRate: 16000, Channels: 2},
	}
	want := []struct {
		id, name string
		kind     hal.Kind
		controls []hal.ControlID
	}{
		{"alsa:Loopback-pcm0p", "Loopback: Loopback PCM #0", hal.KindSpeaker, nil},
		{"alsa:Loopback-pcm0c", "Loopback: Loopback PCM #0", hal.KindMicrophone, nil},
		{"alsa:Loopback-pcm1p", "Loopback: Loopback PCM #1", hal.KindSpeaker, nil},
		{"alsa:Loopback-pcm1c", "Loopback: Loopback PCM #1", hal.KindMicrophone, nil},
		{"alsa:Dummy-pcm0p", "Dummy: Dummy PCM", hal.KindSpeaker, []hal.ControlID{hal.CtrlVolume}},
		{"alsa:Dummy-pcm0c", "Dummy: Dummy PCM", hal.KindMicrophone, []hal.ControlID{hal.CtrlVolume, hal.CtrlMute}},
	}
	if len(devs) != len(want) {
		t.Errorf("%d devices, want %d", len(devs), len(want))
	}
	for _, w := range want {
		dev, ok := devs[w.id]
		if !ok {
			t.Errorf("%s missing", w.id)
			continue
		}
		if info := dev.Info(); info != (hal.Info{ID: w.id, Kind: w.kind, Name: w.name, Driver: DriverName}) {
			t.Errorf("%s: Info = %+v", w.id, info)
		}
		var formats []hal.AudioFormat
		var ctrls []hal.Control
		switch dev := dev.(type) {
		case *Speaker:
			formats, ctrls = dev.Formats(), dev.Controls()
		case *Microphone:
			formats, ctrls = dev.Formats(), dev.Controls()
		}
		if !slices.Equal(formats, all) {
			t.Errorf("%s: Formats = %v, want %v", w.id, formats, all)
		}
		var ids []hal.ControlID
		for _, c := range ctrls {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, w.controls) {
			t.Errorf("%s: controls %v, want %v (%+v)", w.id, ids, w.controls, ctrls)
		}
		t.Logf("%s %q %v", w.id, w.name, ctrls)
	}
}

// tone returns n samples of a sine at freq Hz and amplitude amp, 48 kHz.
func tone(n int, freq, amp float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/48000)))
	}
	return s
}

// goertzel returns the power of x at freq Hz, 48 kHz.
func goertzel(x []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/48000)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

// loopChunk is the size of every read and write in the loopback tests:
// 10 ms at 48 kHz mono.
const loopChunk = 480

// openLoop opens playback substream sub of snd-aloop's device 0 and capture
// substream sub of device 1, which the kernel wires together, with
// playPeriods and capPeriods periods of 10 ms in their buffers.
func openLoop(t *testing.T, ctx context.Context, playPeriods, capPeriods, sub int) (*Playback, *Capture) {
	t.Helper()
	spk, ok1 := guestEnumerate(t, ctx, New(Options{Logger: guestLogger(t), Periods: playPeriods}))[loopPlay].(*Speaker)
	mic, ok2 := guestEnumerate(t, ctx, New(Options{Logger: guestLogger(t), Periods: capPeriods}))[loopRec].(*Microphone)
	if !ok1 || !ok2 {
		t.Fatal("snd-aloop devices missing")
	}
	f := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	c, err := mic.OpenSubdevice(ctx, f, sub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p, err := spk.OpenSubdevice(ctx, f, sub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if c.Subdevice() != sub || p.Subdevice() != sub {
		t.Fatalf("subdevices %d (capture) and %d (playback), want %d", c.Subdevice(), p.Subdevice(), sub)
	}
	_, pb := p.Buffer()
	_, cb := c.Buffer()
	t.Logf("buffers: playback %d frames, capture %d frames", pb, cb)
	return p, c
}

// recording is what a capture goroutine read, with each read's timestamp.
type recording struct {
	samples []int16
	at      []time.Time
	err     error
}

// timeOf is when sample i was captured, by the timestamp of its read.
func (r recording) timeOf(i int) time.Time {
	j := i / loopChunk
	return r.at[j].Add(time.Duration(i-j*loopChunk) * time.Second / 48000)
}

// record reads n samples in loopChunk reads, in the background.
func record(ctx context.Context, c *Capture, n int) <-chan recording {
	done := make(chan recording, 1)
	go func() {
		var r recording
		buf := make([]int16, loopChunk)
		for len(r.samples) < n {
			got, at, err := c.Read(ctx, buf)
			if err != nil {
				r.err = err
				break
			}
			r.samples = append(r.samples, buf[:got]...)
			r.at = append(r.at, at)
		}
		done <- r
	}()
	return done
}

// writeChunks writes s in loopChunk writes.
func writeChunks(t *testing.T, ctx context.Context, p *Playback, s []int16) {
	t.Helper()
	for len(s) > 0 {
		n := min(loopChunk, len(s))
		if err := p.Write(ctx, s[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		s = s[n:]
	}
}

// TestGuestLoopback plays a 1 kHz tone into snd-aloop's playback substream
// 2 of device 0 and records it from capture substream 2 of device 1: the
// samples must come back unchanged, at 1 kHz and the level played, and the
// capture timestamps must agree with the playback queue.
//
// Both sides get 320 ms buffers: under emulation on a busy host a goroutine
// can be descheduled for longer than the default 40 ms (even 160 ms, seen
// once on the capture side), and an xrun would
// break the sample-exact comparison (xrun recovery has unit tests;
// TestGuestLoopbackLatency uses the default playback buffer).
func TestGuestLoopback(t *testing.T) {
	ctx := guestContext(t)
	p, c := openLoop(t, ctx, 32, 32, 2)
	done := record(ctx, c, 96000) // 2 s: 1 s written, up to 320 ms queued

	// 200 ms of silence, 500 ms of tone, 300 ms of silence.
	const amp = 10000
	sig := tone(24000, 1000, amp)
	writeChunks(t, ctx, p, make([]int16, 9600))
	queued, err := p.Delay()
	if err != nil {
		t.Fatalf("Delay: %v", err)
	}
	toneWritten := time.Now()
	writeChunks(t, ctx, p, sig)
	writeChunks(t, ctx, p, make([]int16, 14400))

	r := <-done
	if r.err != nil {
		t.Fatalf("Read: %v", r.err)
	}
	if p.Xruns() != 0 || c.Xruns() != 0 {
		t.Errorf("xruns: playback %d, capture %d", p.Xruns(), c.Xruns())
	}

	// Find the tone: snd-aloop copies samples, so they come back exactly.
	onset := slices.IndexFunc(r.samples, func(s int16) bool { return s > 1000 || s < -1000 })
	if onset < 1 {
		t.Fatalf("no tone captured (onset %d)", onset)
	}
	start := onset - 1 // the tone's first sample is 0, its second 1305
	if start+len(sig) > len(r.samples) {
		t.Fatalf("capture ends %d samples into the tone", len(r.samples)-start)
	}
	got := r.samples[start : start+len(sig)]
	for i := range got {
		if got[i] != sig[i] {
			t.Errorf("captured tone differs from the played one at sample %d of %d: %d, want %d", i, len(sig), got[i], sig[i])
			break
		}
	}
	for i, s := range r.samples[:start] {
		if s != 0 {
			t.Errorf("sample %d before the tone is %d, want silence", i, s)
			break
		}
	}

	// Frequency, by rising zero crossings over 0.5 s and by Goertzel.
	rising := 0
	for i := 1; i < len(got); i++ {
		if got[i-1] < 0 && got[i] >= 0 {
			rising++
		}
	}
	if freq := float64(rising) / 0.5; math.Abs(freq-1000) > 4 {
		t.Errorf("frequency %v Hz by zero crossings, want 1000", freq)
	}
	if on, off := goertzel(got, 1000), goertzel(got, 1500); on < 1e6*off {
		t.Errorf("Goertzel power at 1 kHz %g, at 1.5 kHz %g: not a clean 1 kHz tone", on, off)
	}
	var sum float64
	for _, s := range got {
		sum += float64(s) * float64(s)
	}
	if rms, want := math.Sqrt(sum/float64(len(got))), amp/math.Sqrt2; math.Abs(rms-want) > want/100 {
		t.Errorf("level %.0f RMS, want %.0f", rms, want)
	}

	// The loop adds nothing to the playback queue, so the tone's capture
	// timestamp, less the moment its Write began, is the queue's length
	// then, to within the pointers' granularity (a period, a jiffy) and the
	// emulated machine's scheduling, which under a loaded host was seen to
	// add 20 ms. The mistakes this catches (the whole buffer taken for the
	// queue, a pointer wrap missed) are off by far more.
	latency := r.timeOf(start).Sub(toneWritten)
	t.Logf("Write to capture timestamp: %v; playback queue at that Write: %v",
		latency.Round(100*time.Microsecond), queued.Round(100*time.Microsecond))
	if diff := latency - queued; diff < -40*time.Millisecond || diff > 40*time.Millisecond {
		t.Errorf("capture timestamp is %v off the playback queue", diff)
	}
}

// TestGuestLoopbackLatency measures the latency of the loop with the
// default playback buffer: five 10 ms tone bursts, 200 ms apart, each timed
// from its Write to its capture timestamp. Underruns under emulation are
// logged, not failed: they restart the stream with a shorter queue, and
// the point here is the latency the default configuration gives.
func TestGuestLoopbackLatency(t *testing.T) {
	ctx := guestContext(t)
	p, c := openLoop(t, ctx, 0, 32, 3)
	done := record(ctx, c, 72000)

	burst := tone(loopChunk, 1000, 10000)
	silence := make([]int16, loopChunk)
	var written []time.Time
	var queues []time.Duration
	for i := range 100 { // 1 s in 10 ms chunks; bursts at 100, 300, ... 900 ms
		chunk := silence
		if i%20 == 10 {
			chunk = burst
			q, err := p.Delay()
			if err != nil {
				t.Fatalf("Delay: %v", err)
			}
			queues = append(queues, q)
			written = append(written, time.Now())
		}
		if err := p.Write(ctx, chunk); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Read: %v", r.err)
	}
	t.Logf("xruns: playback %d, capture %d", p.Xruns(), c.Xruns())

	// A burst starts after 100 ms of quiet: the bursts are 190 ms apart,
	// and the gap an underrun leaves inside one is shorter.
	var onsets []int
	quiet := 4800
	for i, s := range r.samples {
		if s > 1000 || s < -1000 {
			if quiet >= 4800 {
				onsets = append(onsets, i-1)
			}
			quiet = 0
			continue
		}
		quiet++
	}
	if len(onsets) != len(written) {
		t.Fatalf("found %d bursts in the capture, played %d", len(onsets), len(written))
	}
	var lat []time.Duration
	for i, at := range onsets {
		l := r.timeOf(at).Sub(written[i])
		lat = append(lat, l)
		t.Logf("burst %d: latency %v (playback queue %v)", i, l.Round(100*time.Microsecond), queues[i].Round(100*time.Microsecond))
	}
	slices.Sort(lat)
	median := lat[len(lat)/2]
	t.Logf("loopback latency, median of %d: %v", len(lat), median.Round(100*time.Microsecond))
	if median < 0 || median > 80*time.Millisecond {
		t.Errorf("median latency %v, want 0 to 80 ms (a 40 ms buffer)", median)
	}
}

// TestGuestMixer sets snd-dummy's "Master Volume" through the speaker and
// "Mic Volume" and "Mic Capture Switch" through the microphone, and reads
// them back.
func TestGuestMixer(t *testing.T) {
	ctx := guestContext(t)
	devs := guestEnumerate(t, ctx, New(Options{Logger: guestLogger(t)}))
	spk, ok1 := devs[dumPlay].(*Speaker)
	mic, ok2 := devs[dumRec].(*Microphone)
	if !ok1 || !ok2 {
		t.Fatalf("snd-dummy devices missing")
	}
	value := func(c hal.Controller, id hal.ControlID) int64 {
		t.Helper()
		for _, x := range c.Controls() {
			if x.ID == id {
				return x.Value
			}
		}
		t.Fatalf("no %s control", id)
		return 0
	}
	restore := func(c hal.Controller, id hal.ControlID) {
		v := value(c, id)
		t.Cleanup(func() {
			if err := c.SetControl(context.Background(), id, v); err != nil {
				t.Errorf("restoring %s: %v", id, err)
			}
		})
	}
	restore(spk, hal.CtrlVolume)
	restore(mic, hal.CtrlVolume)
	restore(mic, hal.CtrlMute)

	for _, v := range []int64{37, 0, 100, 64} {
		if err := spk.SetControl(ctx, hal.CtrlVolume, v); err != nil {
			t.Fatal(err)
		}
		if got := value(spk, hal.CtrlVolume); got != v {
			t.Errorf("speaker volume set to %d reads %d", v, got)
		}
	}
	if err := spk.SetControl(ctx, hal.CtrlVolume, 101); !errors.Is(err, hal.ErrOutOfRange) {
		t.Errorf("volume 101 = %v, want ErrOutOfRange", err)
	}
	if err := mic.SetControl(ctx, hal.CtrlVolume, 12); err != nil {
		t.Fatal(err)
	}
	if got := value(mic, hal.CtrlVolume); got != 12 {
		t.Errorf("mic volume set to 12 reads %d", got)
	}
	for _, m := range []int64{1, 0, 1} {
		if err := mic.SetControl(ctx, hal.CtrlMute, m); err != nil {
			t.Fatal(err)
		}
		if got := value(mic, hal.CtrlMute); got != m {
			t.Errorf("mic mute set to %d reads %d", m, got)
		}
	}
	// The speaker's setting did not move the microphone's, and back.
	if got := value(spk, hal.CtrlVolume); got != 64 {
		t.Errorf("speaker volume %d after mic changes, want 64", got)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// TestGuestHotplug takes snd-dummy away under an open stream and brings it
// back: the stream fails with ErrUnplugged, Watch reports both changes,
// Enumerate drops the devices and lists them again with the same IDs and
// handles, which open again.
func TestGuestHotplug(t *testing.T) {
	ctx := guestContext(t)
	const (
		unbind   = "/sys/bus/platform/drivers/snd_dummy/unbind"
		platform = "snd_dummy.0"
	)
	t.Cleanup(func() {
		if _, err := os.Stat("/dev/snd/controlC1"); err != nil {
			_ = exec.Command("rmmod", "snd_dummy").Run()
			if out, err := exec.Command("modprobe", "snd-dummy").CombinedOutput(); err != nil {
				t.Errorf("restoring snd-dummy: %v: %s", err, out)
			}
		}
	})
	d := New(Options{Logger: guestLogger(t), Debounce: 100 * time.Millisecond})
	wctx, cancel := context.WithCancel(ctx)
	changed := make(chan struct{}, 64)
	watchDone := make(chan error, 1)
	go func() { watchDone <- d.Watch(wctx, func() { changed <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("Watch = %v", err)
		}
	}()
	waitChanged := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case err := <-watchDone:
			t.Fatalf("%s: Watch ended: %v", what, err)
		case <-time.After(eventTimeout):
			t.Fatalf("%s: Watch did not report a change", what)
		}
	}
	settle := func() {
		time.Sleep(500 * time.Millisecond)
		for len(changed) > 0 {
			<-changed
		}
	}
	waitChanged("start")

	devs := guestEnumerate(t, ctx, d)
	spk := devs[dumPlay].(*Speaker)
	f := hal.AudioFormat{SampleRate: 48000, Channels: 2}
	p, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]int16, 960)
		for {
			if err := p.Write(ctx, buf); err != nil {
				writeErr <- err
				return
			}
		}
	}()

	// Unbinding the card disconnects it at once but returns only when the
	// last open file is closed, as a USB unplug would leave it.
	unbound := make(chan error, 1)
	start := time.Now()
	go func() { unbound <- os.WriteFile(unbind, []byte(platform), 0) }()
	select {
	case err := <-writeErr:
		if !errors.Is(err, hal.ErrUnplugged) {
			t.Errorf("Write on an unplugged card = %v, want ErrUnplugged", err)
		}
		t.Logf("stream saw the unplug after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(eventTimeout):
		t.Fatal("Write did not fail after the card was unbound")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after unplug = %v", err)
	}
	select {
	case err := <-unbound:
		if err != nil {
			t.Fatalf("unbind: %v", err)
		}
	case <-time.After(eventTimeout):
		t.Fatal("unbind did not finish after the stream was closed")
	}
	waitChanged("unbind")
	settle()
	gone := guestEnumerate(t, ctx, d)
	if _, ok := gone[dumPlay]; ok {
		t.Error("Enumerate still lists snd-dummy after unbind")
	}
	if _, ok := gone[loopPlay]; !ok {
		t.Error("Enumerate lost snd-aloop")
	}
	if _, err := spk.Open(ctx, f); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open of the removed device = %v, want ErrUnplugged", err)
	}

	// Reload the module: the card comes back as card 1 with the same IDs.
	// (rmmod, not "modprobe -r", which also tries to remove snd-pcm and
	// the rest that snd-aloop still uses, and fails.)
	run(t, "rmmod", "snd_dummy")
	settle()
	start = time.Now()
	run(t, "modprobe", "snd-dummy")
	waitChanged("modprobe snd-dummy")
	t.Logf("Watch reported the new card %v after modprobe started", time.Since(start).Round(time.Millisecond))
	back := guestEnumerate(t, ctx, d)
	for _, id := range []string{dumPlay, dumRec} {
		if _, ok := back[id]; !ok {
			t.Errorf("%s not back after modprobe", id)
		}
	}
	again, ok := back[dumPlay].(*Speaker)
	if !ok || again.device != spk.device {
		t.Error("the device came back with a new handle")
	}
	p2, err := spk.Open(ctx, f)
	if err != nil {
		t.Fatalf("Open after replug: %v", err)
	}
	defer p2.Close()
	if err := p2.Write(ctx, make([]int16, 9600)); err != nil {
		t.Errorf("Write after replug: %v", err)
	}
}
