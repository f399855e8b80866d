package audiotest

import (
	"context"
	"errors"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/hal"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sample is one sample period at 48 kHz: the precision the fake room's
// delays are known to.
const sample = time.Second / 48000

// TestRunMeasuresKnownEchoPath runs the test on synthetic rooms whose echo
// delay, gain and noise are known, and checks the measurement against
// them. The fake speaker buffers 20 ms, which is part of the delay the
// test must report (it is part of what a canceller must span).
func TestRunMeasuresKnownEchoPath(t *testing.T) {
	const speakerBuffer = 20 * time.Millisecond
	for _, c := range []struct {
		name    string
		room    roomConfig
		wantERL float64 // dB
		tolERL  float64
		below   bool // the echo is under the noise: wantERL is the lower bound
	}{
		{"perfect echo", roomConfig{delay: 37 * time.Millisecond, gain: 1}, 0, 0.1, false},
		{"20 dB down in noise", roomConfig{delay: 120 * time.Millisecond, gain: 0.1, noiseDB: -60}, 20, 0.5, false},
		{"40 dB down, quiet room", roomConfig{delay: 3 * time.Millisecond, gain: 0.01, noiseDB: -80}, 40, 0.5, false},
		{"inverted, 6 dB down", roomConfig{delay: 250 * time.Millisecond, gain: -0.5, noiseDB: -70}, 6.02, 0.2, false},
		// An echo 60 dB down sits 10 dB under noise at -70 dBFS: the test
		// can only say it is at least signal-to-noise (50 dB) plus the
		// 1 dB margin's 5.9 dB.
		{"echo below noise", roomConfig{delay: 80 * time.Millisecond, gain: 0.001, noiseDB: -70}, 55.9, 0.5, true},
		{"no echo at all", roomConfig{noiseDB: -70}, 55.9, 0.5, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			room := newFakeRoom(c.room)
			res, err := Run(testContext(t), room.pair(), Options{Clock: room})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res)
			if math.Abs(res.ERL-c.wantERL) > c.tolERL {
				t.Errorf("ERL = %.2f dB, want %.2f ± %.2f", res.ERL, c.wantERL, c.tolERL)
			}
			if res.BelowNoise != c.below {
				t.Errorf("BelowNoise = %v, want %v", res.BelowNoise, c.below)
			}
			if math.Abs(res.PlayedLevel-DefaultLevel) > 0.5 {
				t.Errorf("PlayedLevel = %.2f dBFS, want %.1f", res.PlayedLevel, DefaultLevel)
			}
			if c.room.gain == 0 && (res.Detected || res.Correlation > 0.05) {
				t.Errorf("an echo was found in a room without one (correlation %.3f)", res.Correlation)
			}
			if c.below {
				// Correlation may still find an echo 10 dB under the
				// noise; whether it does is not what this case checks.
				return
			}
			if !res.Detected || res.Correlation < 0.9 {
				t.Errorf("echo not found cleanly: correlation %.3f", res.Correlation)
			}
			wantDelay := c.room.delay + speakerBuffer
			if d := res.Delay - wantDelay; d.Abs() > sample {
				t.Errorf("Delay = %v, want %v (± one sample)", res.Delay, wantDelay)
			}
			if c.room.noiseDB != 0 && math.Abs(res.NoiseLevel-c.room.noiseDB) > 0.5 {
				t.Errorf("NoiseLevel = %.2f dBFS, want %.1f", res.NoiseLevel, c.room.noiseDB)
			}
			if n := room.openStreams(); n != 0 {
				t.Errorf("%d streams left open", n)
			}
		})
	}
}

// TestRunFormats: stereo and another rate measure the same, and the
// format is the one both devices offer.
func TestRunFormats(t *testing.T) {
	stereo := hal.AudioFormat{SampleRate: 44100, Channels: 2}
	room := newFakeRoom(roomConfig{delay: 50 * time.Millisecond, gain: 0.25, noiseDB: -70,
		formats: []hal.AudioFormat{stereo}})
	// The fake's clock runs at 48 kHz frames; give it the format's rate.
	room.rate = 44100
	room.delay = frames(50*time.Millisecond, 44100)
	room.buffer, room.ahead = 44100/50, 44100/10
	res, err := Run(testContext(t), room.pair(), Options{Clock: room, Signal: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != stereo {
		t.Errorf("Format = %+v, want %+v", res.Format, stereo)
	}
	if math.Abs(res.ERL-12.04) > 0.3 {
		t.Errorf("ERL = %.2f dB, want 12.04", res.ERL)
	}
	if d := res.Delay - 70*time.Millisecond; d.Abs() > time.Second/44100 {
		t.Errorf("Delay = %v, want 70ms", res.Delay)
	}
}

func TestRunWithAndWithoutCanceller(t *testing.T) {
	raw := newFakeRoom(roomConfig{delay: 40 * time.Millisecond, gain: 1, noiseDB: -85})
	// A canceller that leaves the echo 35 dB down, 10 ms later.
	cancelled := newFakeRoom(roomConfig{delay: 50 * time.Millisecond, gain: math.Pow(10, -35.0/20), noiseDB: -85})
	ctx := testContext(t)
	// Each room is its own clock; the comparison runs them one after the
	// other, so each run gets its own options.
	r, err := Run(ctx, raw.pair(), Options{Clock: raw})
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := RunWithAndWithoutCanceller(ctx, raw.pair(), cancelled.pair(), Options{Clock: clockSwitch{raw, cancelled}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cmp)
	if math.Abs(cmp.Raw.ERL-r.ERL) > 0.1 {
		t.Errorf("raw ERL %.2f differs from a plain run's %.2f", cmp.Raw.ERL, r.ERL)
	}
	if math.Abs(cmp.Cancelled.ERL-35) > 0.5 {
		t.Errorf("cancelled ERL = %.2f, want 35", cmp.Cancelled.ERL)
	}
	if math.Abs(cmp.Improvement-(cmp.Cancelled.ERL-cmp.Raw.ERL)) > 1e-9 || math.Abs(cmp.Improvement-35) > 0.5 {
		t.Errorf("Improvement = %.2f, want 35", cmp.Improvement)
	}
}

// clockSwitch reads the first room's clock until its speaker has played
// everything the raw run writes, then the second's: RunWithAndWithoutCanceller
// takes one Options for both runs, while each fake room keeps its own time.
type clockSwitch struct{ first, second *fakeRoom }

func (c clockSwitch) Now() time.Time {
	if c.second.openStreams() > 0 {
		return c.second.Now()
	}
	return c.first.Now()
}

func TestRunErrors(t *testing.T) {
	ctx := testContext(t)
	if _, err := Run(ctx, Pair{}, Options{}); err == nil {
		t.Error("Run without devices succeeded")
	}

	mono := []hal.AudioFormat{{SampleRate: 48000, Channels: 1}}
	stereo := []hal.AudioFormat{{SampleRate: 48000, Channels: 2}}
	spkRoom, micRoom := newFakeRoom(roomConfig{formats: mono}), newFakeRoom(roomConfig{formats: stereo})
	_, err := Run(ctx, Pair{Speaker: spkRoom.speaker(), Microphone: micRoom.mic()}, Options{})
	if !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("no common format: err = %v, want ErrUnsupportedMode", err)
	}

	room := newFakeRoom(roomConfig{gain: 1})
	_, err = Run(ctx, room.pair(), Options{Clock: room, Format: hal.AudioFormat{SampleRate: 16000, Channels: 1}})
	if !errors.Is(err, hal.ErrUnsupportedMode) {
		t.Errorf("unoffered format: err = %v, want ErrUnsupportedMode", err)
	}

	for _, o := range []Options{{Signal: 10 * time.Millisecond}, {Level: 3}, {Lead: time.Millisecond}, {MaxDelay: -time.Second}} {
		if _, err := Run(ctx, room.pair(), o); err == nil {
			t.Errorf("Run with %+v succeeded", o)
		}
	}

	// A speaker that will not open: the microphone opened first is
	// closed again.
	room = newFakeRoom(roomConfig{gain: 1})
	room.failSpkOpen = hal.ErrUnplugged
	_, err = Run(ctx, room.pair(), Options{Clock: room})
	if !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("speaker open failure: err = %v, want ErrUnplugged", err)
	}
	if n := room.openStreams(); n != 0 {
		t.Errorf("%d streams left open after a failed Open", n)
	}
}

// TestRunSpeakerUnplugged: a speaker that goes away mid-run ends the run
// at once (the microphone is not waited for), with the reason.
func TestRunSpeakerUnplugged(t *testing.T) {
	defer goleak.VerifyNone(t)
	room := newFakeRoom(roomConfig{gain: 1})
	room.unplugAfter = 48000 / 2
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Run(ctx, room.pair(), Options{Clock: room})
	if !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("err = %v, want ErrUnplugged", err)
	}
	if n := room.openStreams(); n != 0 {
		t.Errorf("%d streams left open", n)
	}
}

// TestRunCancelled: a cancelled context ends the run promptly, with every
// stream closed and no goroutine left.
func TestRunCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	room := newFakeRoom(roomConfig{gain: 1})
	// A speaker that never accepts audio: nothing plays, the microphone
	// has nothing to deliver, and the run waits until ctx ends.
	room.ahead = -1
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, room.pair(), Options{Clock: room})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Run took %v after its context ended", time.Since(start))
	}
	if n := room.openStreams(); n != 0 {
		t.Errorf("%d streams left open", n)
	}
}

func TestFFTMatchesDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]complex128, 64)
	for i := range x {
		x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
	}
	want := make([]complex128, len(x))
	for k := range want {
		for n, v := range x {
			want[k] += v * cmplx.Rect(1, -2*math.Pi*float64(k*n)/float64(len(x)))
		}
	}
	got := append([]complex128(nil), x...)
	fft(got, false)
	for k := range got {
		if cmplx.Abs(got[k]-want[k]) > 1e-9 {
			t.Fatalf("bin %d: %v, want %v", k, got[k], want[k])
		}
	}
	fft(got, true)
	for i := range got {
		if cmplx.Abs(got[i]/complex(float64(len(x)), 0)-x[i]) > 1e-12 {
			t.Fatalf("inverse sample %d: %v, want %v", i, got[i], x[i])
		}
	}
}

func TestCrossCorrelateMatchesDirectSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rec := make([]float64, 300)
	ref := make([]float64, 47)
	for i := range rec {
		rec[i] = rng.NormFloat64()
	}
	for i := range ref {
		ref[i] = rng.NormFloat64()
	}
	got := crossCorrelate(rec, ref)
	if len(got) != len(rec)-len(ref)+1 {
		t.Fatalf("%d lags, want %d", len(got), len(rec)-len(ref)+1)
	}
	for lag := range got {
		var want float64
		for m, v := range ref {
			want += rec[lag+m] * v
		}
		if math.Abs(got[lag]-want) > 1e-9 {
			t.Fatalf("lag %d: %v, want %v", lag, got[lag], want)
		}
	}
}

func TestNoiseBurst(t *testing.T) {
	b := noiseBurst(48000, 48000, -20, 7)
	if got := dB(meanPower(b)); math.Abs(got+20) > 0.3 {
		t.Errorf("level %.2f dBFS, want -20", got)
	}
	if b[0] != 0 || math.Abs(b[len(b)-1]) > 1e-3 {
		t.Errorf("burst is not faded: first %v, last %v", b[0], b[len(b)-1])
	}
	again := noiseBurst(48000, 48000, -20, 7)
	other := noiseBurst(48000, 48000, -20, 8)
	if b[1000] != again[1000] || b[1000] == other[1000] {
		t.Error("the seed does not decide the noise")
	}
}
