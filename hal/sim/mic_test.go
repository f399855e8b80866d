package sim

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

var (
	mono   = hal.AudioFormat{SampleRate: 48000, Channels: 1}
	stereo = hal.AudioFormat{SampleRate: 48000, Channels: 2}
)

func openMic(t *testing.T, ctx context.Context, d *Driver, f hal.AudioFormat) hal.AudioCapture {
	t.Helper()
	c, err := d.Microphone().Open(ctx, f)
	if err != nil {
		t.Fatalf("Open(%v): %v", f, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// record reads d of audio in 10 ms chunks, advancing the clock before each,
// and returns the samples and the capture time of the first.
func record(t *testing.T, ctx context.Context, clock *FakeClock, c hal.AudioCapture, d time.Duration) ([]int16, time.Time) {
	t.Helper()
	f := c.Format()
	chunk := make([]int16, f.SampleRate/100*f.Channels)
	var out []int16
	var first time.Time
	for range d / (10 * time.Millisecond) {
		clock.Advance(10 * time.Millisecond)
		n, at, err := c.Read(ctx, chunk)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(out) == 0 {
			first = at
		} else if want := first.Add(time.Duration(len(out)/f.Channels) * time.Second / time.Duration(f.SampleRate)); at.Sub(want).Abs() > time.Microsecond {
			t.Fatalf("chunk captured at %v, want %v: not contiguous", at.Sub(first), want.Sub(first))
		}
		out = append(out, chunk[:n]...)
	}
	return out, first
}

func channel(samples []int16, channels, c int) []float64 {
	out := make([]float64, 0, len(samples)/channels)
	for i := c; i < len(samples); i += channels {
		out = append(out, float64(samples[i])/32768)
	}
	return out
}

// zeroCrossingHz estimates the frequency of a steady tone from the time
// between its first and last rising zero crossings.
func zeroCrossingHz(x []float64, rate int) float64 {
	first, last, n := -1.0, -1.0, 0
	for i := 1; i < len(x); i++ {
		if x[i-1] < 0 && x[i] >= 0 {
			at := float64(i-1) + x[i-1]/(x[i-1]-x[i]) // interpolated
			if first < 0 {
				first = at
			}
			last = at
			n++
		}
	}
	return float64(n-1) * float64(rate) / (last - first)
}

// goertzel returns the power of x at frequency f.
func goertzel(x []float64, f float64, rate int) float64 {
	coeff := 2 * math.Cos(2*math.Pi*f/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+coeff*s1-s2, s1
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

func TestMicrophoneTone(t *testing.T) {
	ctx := testContext(t)
	for _, hz := range []float64{440, 523.25, 1500} {
		d, clock := newTestDriver(t, Config{ToneHz: hz})
		c := openMic(t, ctx, d, mono)
		samples, first := record(t, ctx, clock, c, time.Second)
		if !first.Equal(epoch) {
			t.Errorf("first sample captured at %v, want the open time", first.Sub(epoch))
		}
		x := channel(samples, 1, 0)
		// Between beeps (which fill the first 50 ms of each second) the
		// tone is alone.
		between := x[48000*100/1000 : 48000*900/1000]
		if got := zeroCrossingHz(between, 48000); math.Abs(got-hz) > 0.05 {
			t.Errorf("ToneHz %g: zero crossings say %.3f Hz", hz, got)
		}
		on := goertzel(between, hz, 48000)
		for _, off := range []float64{hz * 0.9, hz * 1.1, beepHz} {
			if p := goertzel(between, off, 48000); p > on/100 {
				t.Errorf("ToneHz %g: power at %g Hz is %.2g of the tone's", hz, off, p/on)
			}
		}
		peak := 0.0
		for _, v := range between {
			peak = max(peak, math.Abs(v))
		}
		if math.Abs(peak-toneLevel) > 0.001 {
			t.Errorf("ToneHz %g: peak %.4f, want %.2f", hz, peak, toneLevel)
		}
	}
}

func TestMicrophoneBeepsOnClockBoundaries(t *testing.T) {
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{BeepInterval: 500 * time.Millisecond})
	// Open off the beep grid, so the boundaries are not the stream's start.
	clock.Advance(123 * time.Millisecond)
	c := openMic(t, ctx, d, mono)
	samples, first := record(t, ctx, clock, c, 1800*time.Millisecond)
	x := channel(samples, 1, 0)

	var onsets []time.Time
	quiet := 0
	for i, v := range x {
		if math.Abs(v) > 0.4 { // above the tone's 0.25, below the beep's 0.7
			if quiet > 480 {
				onsets = append(onsets, first.Add(time.Duration(i)*time.Second/48000))
			}
			quiet = 0
		} else {
			quiet++
		}
	}
	want := []time.Time{epoch.Add(500 * time.Millisecond), epoch.Add(time.Second), epoch.Add(1500 * time.Millisecond)}
	if len(onsets) != len(want) {
		t.Fatalf("beeps at %v, want %v", onsets, want)
	}
	for i := range want {
		// The beep starts at phase zero: it crosses 0.4 a tenth of a
		// millisecond in.
		if lag := onsets[i].Sub(want[i]); lag < 0 || lag > 200*time.Microsecond {
			t.Errorf("beep %d at %v, want %v", i, onsets[i].Sub(epoch), want[i].Sub(epoch))
		}
	}
	// A beep is 50 ms of 1 kHz.
	start := int(want[0].Sub(first) * 48000 / time.Second)
	beep := x[start : start+48000*50/1000]
	if got := zeroCrossingHz(beep, 48000); math.Abs(got-beepHz) > 0.5 {
		t.Errorf("beep is %.2f Hz", got)
	}
	if after := x[start+48000*52/1000]; math.Abs(after) > toneLevel+0.001 {
		t.Errorf("still beeping 52 ms in: %.3f", after)
	}
}

func TestMicrophoneStereoInterleaving(t *testing.T) {
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	mc := openMic(t, ctx, d, mono)
	sc := openMic(t, ctx, d, stereo)
	if sc.Format() != stereo {
		t.Errorf("Format = %v", sc.Format())
	}
	var m, s []int16
	mbuf, sbuf := make([]int16, 480), make([]int16, 960)
	for range 20 {
		clock.Advance(10 * time.Millisecond)
		n, mAt, err := mc.Read(ctx, mbuf)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, mbuf[:n]...)
		n, sAt, err := sc.Read(ctx, sbuf)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, sbuf[:n]...)
		if !mAt.Equal(sAt) {
			t.Fatalf("chunks captured at %v and %v", mAt, sAt)
		}
	}
	if len(s) != 2*len(m) {
		t.Fatalf("stereo gave %d samples for mono's %d", len(s), len(m))
	}
	// The signal is a function of time: both streams agree, left is the
	// mono signal and right is half of it.
	for i := range m {
		l, r := s[2*i], s[2*i+1]
		if l != m[i] || math.Abs(float64(r)-float64(l)*rightGain) > 1 {
			t.Fatalf("frame %d: mono %d, stereo %d/%d", i, m[i], l, r)
		}
	}
	// A buffer that is not whole frames is filled as far as whole frames go.
	buf := make([]int16, 5)
	clock.Advance(time.Second)
	if n, _, err := sc.Read(ctx, buf); err != nil || n != 4 {
		t.Errorf("Read into 5 samples = %d, %v; want 4", n, err)
	}
	if _, _, err := sc.Read(ctx, buf[:1]); err == nil {
		t.Error("Read into 1 sample of a stereo stream succeeded")
	}
}

func TestMicrophonePacingAndLifecycle(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	if _, err := d.Microphone().Open(ctx, hal.AudioFormat{SampleRate: 44100, Channels: 1}); !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("Open(44.1 kHz) = %v, want ErrUnsupportedMode", err)
	}
	c := openMic(t, ctx, d, mono)
	buf := make([]int16, 480)

	// 10 ms of audio takes 10 ms to capture.
	type result struct {
		n   int
		at  time.Time
		err error
	}
	got := make(chan result, 1)
	read := func(ctx context.Context) {
		go func() {
			n, at, err := c.Read(ctx, buf)
			got <- result{n, at, err}
		}()
	}
	read(ctx)
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("Read returned after 9 ms: %+v", r)
	default:
	}
	clock.Advance(time.Millisecond)
	if r := <-got; r.err != nil || r.n != 480 || !r.at.Equal(epoch) {
		t.Errorf("Read = %d at %v, %v", r.n, r.at.Sub(epoch), r.err)
	}

	// A reader more than the device buffer behind loses the oldest audio.
	clock.Advance(5 * time.Second)
	read(ctx)
	if r := <-got; r.err != nil || !r.at.Equal(clock.Now().Add(-micBuffer)) {
		t.Errorf("after an overrun, Read = %v at %v; want audio from %v ago", r.err, clock.Now().Sub(r.at), micBuffer)
	}

	// Unplug wakes a blocked reader, and Open fails until the replug.
	blocked := func(c hal.AudioCapture) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, _, err := c.Read(ctx, buf)
			done <- err
		}()
		if err := clock.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		return done
	}
	done := blocked(openMic(t, ctx, d, mono))
	if err := d.SetPresent(hal.KindMicrophone, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Read across unplug = %v", err)
	}
	if _, err := d.Microphone().Open(ctx, mono); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open while unplugged = %v", err)
	}
	if err := d.SetPresent(hal.KindMicrophone, true); err != nil {
		t.Fatal(err)
	}

	// Close wakes a blocked reader too.
	c3 := openMic(t, ctx, d, mono)
	done = blocked(c3)
	_ = c3.Close()
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Read across Close = %v", err)
	}
	if _, _, err := c3.Read(ctx, buf); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
}
