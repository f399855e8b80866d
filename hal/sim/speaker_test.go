package sim

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func openSpeaker(t *testing.T, ctx context.Context, d *Driver, f hal.AudioFormat) hal.AudioPlayback {
	t.Helper()
	p, err := d.Speaker().Open(ctx, f)
	if err != nil {
		t.Fatalf("Open(%v): %v", f, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestSpeakerHearsMicrophone loops the microphone into the speaker in 10 ms
// chunks, the way a meeting's audio path would, and checks that the
// speaker's measurements find the tone and the beeps, 10 ms late.
func TestSpeakerHearsMicrophone(t *testing.T) {
	ctx := testContext(t)
	for _, f := range []hal.AudioFormat{mono, stereo} {
		d, clock := newTestDriver(t, Config{})
		mic := openMic(t, ctx, d, f)
		spk := openSpeaker(t, ctx, d, f)
		if spk.Format() != f {
			t.Errorf("Format = %v", spk.Format())
		}
		buf := make([]int16, 480*f.Channels)
		for range 300 { // 3 s
			clock.Advance(10 * time.Millisecond)
			n, _, err := mic.Read(ctx, buf)
			if err != nil {
				t.Fatal(err)
			}
			if err := spk.Write(ctx, buf[:n]); err != nil {
				t.Fatal(err)
			}
		}
		st := d.Speaker().Stats()
		// The last chunk was written just now and has not played yet.
		if want := int64(299 * 480); st.Samples != want || st.Played != 2990*time.Millisecond {
			t.Errorf("%d ch: played %d samples (%v), want %d", f.Channels, st.Samples, st.Played, want)
		}
		if st.Underruns != 0 || st.Gaps != 0 {
			t.Errorf("%d ch: %d underruns (%v) in a steady stream", f.Channels, st.Underruns, st.Gaps)
		}
		if math.Abs(st.DominantHz-440) > 1 {
			t.Errorf("%d ch: dominant frequency %.2f Hz, want 440", f.Channels, st.DominantHz)
		}
		// Stereo is downmixed: (1 + rightGain) / 2 of the mono level.
		gain := 1.0
		if f.Channels == 2 {
			gain = (1 + rightGain) / 2
		}
		wantRMS := gain * math.Sqrt(0.95*toneLevel*toneLevel/2+0.05*beepLevel*beepLevel/2)
		if math.Abs(st.RMS-wantRMS) > 0.01 || math.Abs(st.Peak-gain*beepLevel) > 0.01 {
			t.Errorf("%d ch: RMS %.3f peak %.3f, want about %.3f and %.3f", f.Channels, st.RMS, st.Peak, wantRMS, gain*beepLevel)
		}
		// The sound starts at 10 ms (an onset from silence), then the beeps
		// at 1 s and 2 s arrive 10 ms late: one chunk of capture.
		want := []time.Time{epoch.Add(10 * time.Millisecond), epoch.Add(1010 * time.Millisecond), epoch.Add(2010 * time.Millisecond)}
		if len(st.Onsets) != len(want) {
			t.Fatalf("%d ch: onsets at %v, want %v", f.Channels, st.Onsets, want)
		}
		for i := range want {
			if off := st.Onsets[i].Sub(want[i]); off < 0 || off > 500*time.Microsecond {
				t.Errorf("%d ch: onset %d at %v, want %v", f.Channels, i, st.Onsets[i].Sub(epoch), want[i].Sub(epoch))
			}
		}

		// After the stream closes the room is quiet again.
		_ = spk.Close()
		clock.Advance(2 * time.Second)
		if st := d.Speaker().Stats(); st.RMS != 0 || st.DominantHz != 0 || st.Samples != 299*480 {
			t.Errorf("%d ch: after Close: RMS %.3f, %.1f Hz, %d samples", f.Channels, st.RMS, st.DominantHz, st.Samples)
		}
		d.Speaker().ResetStats()
		if st := d.Speaker().Stats(); st.Samples != 0 || len(st.Onsets) != 0 {
			t.Errorf("after ResetStats: %+v", st)
		}
	}
}

func TestSpeakerUnderruns(t *testing.T) {
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	spk := openSpeaker(t, ctx, d, mono)
	chunk := make([]int16, 480)
	write := func() {
		if err := spk.Write(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	write()
	clock.Advance(10 * time.Millisecond) // played exactly: no gap
	write()
	clock.Advance(30 * time.Millisecond) // 20 ms of nothing
	write()
	clock.Advance(15 * time.Millisecond) // 5 ms of nothing...
	clock.Advance(time.Hour)             // ...and a stream that stops is no underrun
	st := d.Speaker().Stats()
	if st.Underruns != 1 || st.Gaps != 20*time.Millisecond || st.Samples != 3*480 {
		t.Errorf("underruns %d, gaps %v, samples %d; want 1, 20ms, 1440", st.Underruns, st.Gaps, st.Samples)
	}
	if err := spk.Write(ctx, make([]int16, 3)); err != nil {
		t.Errorf("odd-length mono write: %v", err)
	}
	st2 := openSpeakerErr(ctx, d, mono)
	if !errors.Is(st2, hal.ErrBusy) {
		t.Errorf("second Open = %v, want ErrBusy", st2)
	}
}

func openSpeakerErr(ctx context.Context, d *Driver, f hal.AudioFormat) error {
	p, err := d.Speaker().Open(ctx, f)
	if err == nil {
		_ = p.Close()
	}
	return err
}

func TestSpeakerWriteBlocksWhileFull(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{SpeakerBuffer: 100 * time.Millisecond})
	spk := openSpeaker(t, ctx, d, stereo)
	if err := spk.Write(ctx, make([]int16, 3)); err == nil {
		t.Error("a write of 3 samples to a stereo stream succeeded")
	}

	// 300 ms into a 100 ms buffer: Write returns once 200 ms have played.
	done := make(chan error, 1)
	go func() { done <- spk.Write(ctx, make([]int16, 2*48000*300/1000)) }()
	for elapsed := time.Duration(0); ; elapsed += 25 * time.Millisecond {
		if err := clock.WaitForTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("Write returned %v after %v", err, elapsed)
		default:
		}
		if elapsed == 175*time.Millisecond {
			clock.Advance(25 * time.Millisecond)
			break
		}
		clock.Advance(25 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := d.Speaker().Stats(); st.Played != 200*time.Millisecond {
		t.Errorf("played %v when Write returned, want 200ms", st.Played)
	}

	// Close and unplug wake a blocked writer.
	go func() { done <- spk.Write(ctx, make([]int16, 2*48000)) }()
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_ = spk.Close()
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Write across Close = %v", err)
	}
	if err := spk.Write(ctx, make([]int16, 2)); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}

	spk2 := openSpeaker(t, ctx, d, stereo)
	go func() { done <- spk2.Write(ctx, make([]int16, 2*48000)) }()
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := d.Speaker().Stats().Samples
	if err := d.SetPresent(hal.KindSpeaker, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Write across unplug = %v", err)
	}
	clock.Advance(time.Second)
	if got := d.Speaker().Stats().Samples; got != before {
		t.Errorf("an unplugged speaker played %d more samples", got-before)
	}
	if _, err := d.Speaker().Open(ctx, stereo); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open while unplugged = %v", err)
	}
	if err := d.SetPresent(hal.KindSpeaker, true); err != nil {
		t.Fatal(err)
	}
	// The stream from before the unplug no longer holds the device.
	if _, err := d.Speaker().Open(ctx, hal.AudioFormat{SampleRate: 8000, Channels: 1}); !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("Open(8 kHz) = %v, want ErrUnsupportedMode", err)
	}
	openSpeaker(t, ctx, d, mono)
}

func TestDominantFrequency(t *testing.T) {
	for _, hz := range []float64{100, 440, 997.3, 5000} {
		x := make([]float64, 48000)
		for i := range x {
			x[i] = 0.3*math.Sin(2*math.Pi*hz*float64(i)/48000) + 0.05*math.Sin(2*math.Pi*3*hz*float64(i)/48000)
		}
		if got := dominantFrequency(x, 48000); math.Abs(got-hz) > 0.5 {
			t.Errorf("%g Hz: got %.2f", hz, got)
		}
	}
	if got := dominantFrequency(make([]float64, 100), 48000); got != 0 {
		t.Errorf("too short: got %g", got)
	}
}
