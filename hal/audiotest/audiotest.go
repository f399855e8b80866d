// Package audiotest is the audio self-test: it plays a known signal through
// a speaker while recording a microphone, finds the signal's echo, and
// reports how long it took to come back (the echo delay) and how much
// quieter it came back (the echo return loss, ERL). Run on the room's raw
// speaker and microphone it measures the room; run on an echo canceller's
// pair it measures the canceller: the far end hears the ERL of the
// cancelled pair, and RunWithAndWithoutCanceller reports both, so whoever
// installs a room can see the canceller at work.
//
// # The signal
//
// White Gaussian noise (from a fixed seed, so every run plays the same
// samples) at -20 dBFS RMS, one second long by default, with 10 ms fades.
// Noise has the sharpest autocorrelation there is, so its echo shows as a
// single peak of the cross-correlation, to the sample, even well below the
// room's noise; and it excites every frequency a canceller must handle.
// Before it the speaker plays a second of other noise (Options.Warmup), so
// that an echo canceller has learnt the room as it has in a meeting, then
// silence (Options.Lead), whose end, once the warm-up's echo has died
// away, gives the microphone's noise floor; after it, silence long enough
// for the longest echo looked for (Options.MaxDelay).
//
// # The measurement
//
//   - Delay is the time from handing the signal's first sample to the
//     speaker (hal.AudioPlayback.Write) to its echo's arrival at the
//     microphone (by hal.AudioCapture.Read's capture times): the output
//     buffering, the acoustic path and the input buffering, which is the
//     delay an echo canceller must span. It comes from the peak of the
//     cross-correlation of recording and signal, searched over the whole
//     recording (the warm-up is other noise), and is only as exact as the
//     devices' capture times.
//   - EchoLevel is the power of the loudest stretch of the recording, of the
//     signal's length, where the echo is (around the correlation peak when
//     the echo was found; anywhere from the burst's start to MaxDelay after
//     it, by the clocks, when a canceller left nothing to find), less the
//     noise floor: an upper bound of the echo, so the ERL never flatters.
//   - ERL is PlayedLevel - EchoLevel in dB. An echo less than 1 dB above
//     the noise floor cannot be told from it: then BelowNoise is set and
//     ERL is a lower bound, the distance from the signal to the noise.
package audiotest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Defaults of Options.
const (
	DefaultSignal   = time.Second
	DefaultLevel    = -20.0 // dBFS RMS
	DefaultWarmup   = time.Second
	DefaultLead     = 800 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
)

// DetectThreshold is the normalised cross-correlation (0..1) above which
// the echo counts as found, and Delay as meaningful. With no echo, the best
// of the lags searched correlates to about 0.02 (a one-second burst at
// 48 kHz); a clean echo to 1, an echo 10 dB under the noise to about 0.3.
const DetectThreshold = 0.3

const (
	chunk   = 10 * time.Millisecond // what each Read and Write carries
	fade    = 10 * time.Millisecond
	tail    = 100 * time.Millisecond // recorded past the longest delay
	slack   = 50 * time.Millisecond  // timestamp error allowed for: how early the echo may seem
	overrun = 10 * time.Second       // added to the run's own length to bound a stuck device
)

// lsbPower is the power of one 16-bit step: a digitally silent microphone
// (a virtual source, a canceller's output) still cannot resolve less.
var lsbPower = math.Pow(1.0/32768, 2)

// Clock tells the time the signal is handed to the speaker.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Pair is a speaker and the microphone that hears it.
type Pair struct {
	Speaker    hal.Speaker
	Microphone hal.Microphone
}

// Options adjust a run. The zero value is the default test.
type Options struct {
	// Format is what both devices are opened with; the zero value picks
	// 48 kHz mono if both offer it, else the speaker's first format the
	// microphone also offers.
	Format hal.AudioFormat
	// Signal is the length of the noise burst; 0 means DefaultSignal.
	Signal time.Duration
	// Level is the burst's RMS level in dBFS (negative); 0 means
	// DefaultLevel.
	Level float64
	// Warmup is noise (a different one) played before everything else, so
	// that an echo canceller has learnt the room before the burst it is
	// measured on, as it has in a meeting; 0 means DefaultWarmup, negative
	// none.
	Warmup time.Duration
	// Lead is the silence played before the burst; 0 means DefaultLead.
	Lead time.Duration
	// MaxDelay is the longest echo delay looked for; 0 means
	// DefaultMaxDelay.
	MaxDelay time.Duration
	// Seed chooses the noise; runs with the same seed play the same.
	Seed uint64
	// Clock reads the time the burst is handed to the speaker; nil means
	// the system clock. It must be the clock the microphone's capture
	// times are on.
	Clock Clock
	// Logger receives progress and oddities (gaps in the capture); nil
	// discards.
	Logger *slog.Logger
}

// Result is one measurement.
type Result struct {
	Format hal.AudioFormat
	// Delay is from handing the burst to the speaker to its echo at the
	// microphone; meaningful when Detected.
	Delay time.Duration
	// Correlation is the normalised cross-correlation of the burst and the
	// recording at Delay, 0..1.
	Correlation float64
	// Detected says Correlation reached DetectThreshold: the echo was
	// found, not just the loudest noise.
	Detected bool
	// PlayedLevel, EchoLevel and NoiseLevel are RMS levels in dBFS: of the
	// burst as written, of the echo (see the package documentation), and
	// of the microphone before the burst.
	PlayedLevel, EchoLevel, NoiseLevel float64
	// ERL is the echo return loss in dB, PlayedLevel - EchoLevel: how much
	// quieter the echo is than what was played. Larger is better.
	ERL float64
	// BelowNoise says the echo did not rise 1 dB above the noise: ERL is
	// then a lower bound.
	BelowNoise bool
}

func (r Result) String() string {
	erl := fmt.Sprintf("%.1f dB", r.ERL)
	if r.BelowNoise {
		erl = "≥ " + erl + " (echo below the noise)"
	}
	delay := "not found"
	if r.Detected {
		delay = r.Delay.Round(100 * time.Microsecond).String()
	}
	return fmt.Sprintf("ERL %s, delay %s (correlation %.2f), played %.1f dBFS, echo %.1f dBFS, noise %.1f dBFS",
		erl, delay, r.Correlation, r.PlayedLevel, r.EchoLevel, r.NoiseLevel)
}

func (o Options) withDefaults() Options {
	if o.Signal == 0 {
		o.Signal = DefaultSignal
	}
	if o.Level == 0 {
		o.Level = DefaultLevel
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	o.Warmup = max(o.Warmup, 0)
	if o.Lead == 0 {
		o.Lead = DefaultLead
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Signal < 100*time.Millisecond:
		return fmt.Errorf("signal of %s is too short to measure (100 ms at least)", o.Signal)
	case o.Level >= 0:
		return fmt.Errorf("level %.1f dBFS is not below full scale", o.Level)
	case o.Lead < 100*time.Millisecond:
		return fmt.Errorf("lead of %s leaves no noise floor to measure (100 ms at least)", o.Lead)
	case o.Warmup > 0 && o.Lead < o.MaxDelay+100*time.Millisecond:
		return fmt.Errorf("lead of %s leaves no noise floor after the warm-up's echo (MaxDelay %s + 100 ms at least)", o.Lead, o.MaxDelay)
	case o.MaxDelay < 0:
		return fmt.Errorf("negative MaxDelay %s", o.MaxDelay)
	}
	return nil
}

// chooseFormat picks the format both devices are opened with.
func chooseFormat(want hal.AudioFormat, spk, mic []hal.AudioFormat) (hal.AudioFormat, error) {
	if want != (hal.AudioFormat{}) {
		if !slices.Contains(spk, want) || !slices.Contains(mic, want) {
			return hal.AudioFormat{}, fmt.Errorf("%d Hz %d ch is not offered by both devices: %w", want.SampleRate, want.Channels, hal.ErrUnsupportedMode)
		}
		return want, nil
	}
	preferred := hal.AudioFormat{SampleRate: 48000, Channels: 1}
	if slices.Contains(spk, preferred) && slices.Contains(mic, preferred) {
		return preferred, nil
	}
	for _, f := range spk {
		if slices.Contains(mic, f) {
			return f, nil
		}
	}
	return hal.AudioFormat{}, fmt.Errorf("the devices have no format in common: %w", hal.ErrUnsupportedMode)
}

// noiseBurst is the test signal: n samples of Gaussian noise at level dBFS
// RMS, faded in and out, clipped to full scale.
func noiseBurst(n, rate int, level float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x61747269756d)) // "atrium"
	amp := math.Pow(10, level/20)
	fadeN := min(int(int64(rate)*int64(fade)/int64(time.Second)), n/2)
	out := make([]float64, n)
	for i := range out {
		v := rng.NormFloat64() * amp
		if k := min(i, n-1-i); k < fadeN {
			v *= 0.5 - 0.5*math.Cos(math.Pi*float64(k)/float64(fadeN))
		}
		out[i] = min(max(v, -1), 32767.0/32768)
	}
	return out
}

func frames(d time.Duration, rate int) int {
	return int(int64(d) * int64(rate) / int64(time.Second))
}

// Run measures pair once: it opens both devices, plays the burst while
// recording, closes them, and analyses the recording. ctx bounds it; it
// also gives up by itself 10 s after the run should have ended, in case a
// device stalls.
func Run(ctx context.Context, pair Pair, opts Options) (Result, error) {
	if pair.Speaker == nil || pair.Microphone == nil {
		return Result{}, errors.New("audio test: the pair needs a speaker and a microphone")
	}
	opts = opts.withDefaults()
	op := fmt.Sprintf("audio test %s -> %s", pair.Speaker.Info().ID, pair.Microphone.Info().ID)
	if err := opts.validate(); err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	f, err := chooseFormat(opts.Format, pair.Speaker.Formats(), pair.Microphone.Formats())
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	rate := f.SampleRate
	burst := noiseBurst(frames(opts.Signal, rate), rate, opts.Level, opts.Seed)
	var warmup []float64
	if opts.Warmup > 0 {
		warmup = noiseBurst(frames(opts.Warmup, rate), rate, opts.Level, opts.Seed+1)
	}
	length := opts.Warmup + opts.Lead + opts.Signal + opts.MaxDelay + tail
	total := frames(length, rate)

	ctx, cancel := context.WithTimeout(ctx, length+overrun)
	defer cancel()
	capture, err := pair.Microphone.Open(ctx, f)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open microphone: %w", op, err)
	}
	defer capture.Close()
	playback, err := pair.Speaker.Open(ctx, f)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open speaker: %w", op, err)
	}
	defer playback.Close()

	opts.Logger.Debug("audio test", "speaker", pair.Speaker.Info().ID, "microphone", pair.Microphone.Info().ID,
		"rate", rate, "channels", f.Channels)
	rec, err := playAndRecord(ctx, playback, capture, f, warmup, burst, total, opts)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	return analyse(rec, burst, f, opts), nil
}

// recording is what the microphone heard, mixed to mono, with the times
// that place it against the burst.
type recording struct {
	samples []float64
	start   time.Time // capture time of samples[0]
	burstAt time.Time // when the burst's first sample was handed to the speaker
}

// playAndRecord plays the warm-up, lead silence, the burst and then
// silence until the microphone has recorded total frames; the recording
// runs on its own goroutine, which ends before it returns. Either side
// failing stops the other.
func playAndRecord(ctx context.Context, playback hal.AudioPlayback, capture hal.AudioCapture, f hal.AudioFormat, warmup, burst []float64, total int, opts Options) (recording, error) {
	var (
		rec     recording
		recErr  error
		wg      sync.WaitGroup
		recDone = make(chan struct{})
	)
	// The writer stops when the recording is complete, even in the middle
	// of a blocked Write; the recording stops if the writer fails.
	playCtx, stopPlay := context.WithCancel(ctx)
	defer stopPlay()
	recCtx, stopRec := context.WithCancel(ctx)
	defer stopRec()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(recDone)
		defer stopPlay()
		rec.samples, rec.start, recErr = record(recCtx, capture, f, total, opts.Logger)
	}()

	playErr := play(playCtx, playback, f, warmup, burst, opts, &rec.burstAt, recDone)
	playFailed := playErr != nil && !errors.Is(playErr, context.Canceled)
	if playFailed {
		stopRec()
	}
	wg.Wait()
	switch {
	case playFailed:
		return recording{}, fmt.Errorf("play: %w", playErr)
	case recErr != nil:
		return recording{}, fmt.Errorf("record: %w", recErr)
	case rec.burstAt.IsZero():
		return recording{}, errors.New("the recording ended before the burst was played")
	}
	return rec, nil
}

// play writes the warm-up noise, lead silence, the burst (noting when its
// first sample was handed over in *burstAt), then silence until done
// closes.
func play(ctx context.Context, playback hal.AudioPlayback, f hal.AudioFormat, warmup, burst []float64, opts Options, burstAt *time.Time, done <-chan struct{}) error {
	rate, ch := f.SampleRate, f.Channels
	step := frames(chunk, rate)
	buf := make([]int16, step*ch)
	lead := len(warmup) + frames(opts.Lead, rate)
	// pos counts frames written: the warm-up is at [0, len(warmup)), the
	// burst at [lead, lead+len(burst)).
	for pos := 0; ; pos += step {
		select {
		case <-done:
			return nil
		default:
		}
		for i := range step {
			var v float64
			if k := pos + i; k < len(warmup) {
				v = warmup[k]
			} else if k := pos + i - lead; k >= 0 && k < len(burst) {
				v = burst[k]
			}
			s := int16(math.Round(v * 32768))
			for c := range ch {
				buf[i*ch+c] = s
			}
		}
		if pos <= lead && lead < pos+step {
			// The burst starts lead-pos frames into this chunk.
			*burstAt = opts.Clock.Now().Add(time.Duration(lead-pos) * time.Second / time.Duration(rate))
		}
		if err := playback.Write(ctx, buf); err != nil {
			return err
		}
	}
}

// record reads total frames (mixed to mono) and returns them with the
// capture time of the first. That time is the median of what each Read's
// capture time says of it: a device's timestamps jitter with scheduling,
// and a stream's first packets may come in a hurry, but most reads agree.
func record(ctx context.Context, capture hal.AudioCapture, f hal.AudioFormat, total int, log *slog.Logger) ([]float64, time.Time, error) {
	rate, ch := f.SampleRate, f.Channels
	buf := make([]int16, frames(chunk, rate)*ch)
	out := make([]float64, 0, total)
	var starts []time.Time
	for len(out) < total {
		n, at, err := capture.Read(ctx, buf)
		if err != nil {
			return nil, time.Time{}, err
		}
		starts = append(starts, at.Add(-time.Duration(len(out))*time.Second/time.Duration(rate)))
		for i := 0; i+ch <= n; i += ch {
			var sum float64
			for c := range ch {
				sum += float64(buf[i+c])
			}
			out = append(out, sum/float64(ch)/32768)
		}
	}
	slices.SortFunc(starts, time.Time.Compare)
	start := starts[len(starts)/2]
	if spread := starts[len(starts)*9/10].Sub(starts[len(starts)/10]); spread > 4*chunk {
		// Audio was lost or the device's clock jumped: the delay is only
		// as good as the majority's timing.
		log.Warn("audio test: capture times disagree", "spread", spread)
	}
	return out[:total], start, nil
}

// analyse finds the burst's echo in the recording.
func analyse(rec recording, burst []float64, f hal.AudioFormat, opts Options) Result {
	rate := f.SampleRate
	x := rec.samples
	m := len(burst)
	res := Result{Format: f, PlayedLevel: dB(meanPower(burst))}
	toDuration := func(samples int) time.Duration { return time.Duration(samples) * time.Second / time.Duration(rate) }

	// The echo is where the recording correlates best with the burst,
	// searched everywhere: the warm-up is other noise, so it cannot be
	// mistaken for it, and the clocks may be off under load.
	e := newEnergies(x)
	refEnergy := newEnergies(burst).window(0, m)
	corr := crossCorrelate(x, burst)
	best, bestLag := -1.0, 0
	for lag, c := range corr {
		if c := math.Abs(c); c > best {
			best, bestLag = c, lag
		}
	}
	if w := e.window(bestLag, m); w > 0 && refEnergy > 0 {
		res.Correlation = min(best/math.Sqrt(refEnergy*w), 1)
	}
	res.Detected = res.Correlation >= DetectThreshold
	res.Delay = rec.start.Add(toDuration(bestLag)).Sub(rec.burstAt)

	// Where the echo begins: found, or else where the clocks say the burst
	// went out (a canceller may have left nothing to find).
	anchor := int(math.Round(rec.burstAt.Sub(rec.start).Seconds() * float64(rate)))
	if res.Detected {
		if res.Delay < -slack || res.Delay > opts.MaxDelay {
			opts.Logger.Warn("audio test: the echo came back outside the delays looked for; the clocks are off",
				"delay", res.Delay, "max_delay", opts.MaxDelay)
		}
		anchor = bestLag
	}

	// Noise: the lead silence once the warm-up's echo has died away
	// (MaxDelay after it), until the burst's could come back.
	quiet := opts.Lead
	if opts.Warmup > 0 {
		quiet -= opts.MaxDelay
	}
	noiseEnd := min(max(anchor-frames(chunk, rate), 0), len(x))
	noiseStart := max(anchor-frames(quiet, rate), 0)
	noise := meanPower(x[min(noiseStart, noiseEnd):noiseEnd])
	res.NoiseLevel = dB(noise)

	// The echo's level: the loudest stretch of the burst's length where the
	// echo can be, less the noise under it.
	lo := max(anchor-frames(slack, rate), 0)
	hi := min(anchor+frames(opts.MaxDelay, rate), len(x)-m)
	if res.Detected {
		hi = min(anchor+frames(slack, rate), len(x)-m)
	}
	loudest, loudestLag := 0.0, lo
	for lag := lo; lag <= hi; lag++ {
		if w := e.window(lag, m); w > loudest {
			loudest, loudestLag = w, lag
		}
	}
	window := loudest / float64(m)
	floor := max(noise*(math.Pow(10, 0.1)-1), lsbPower)
	echo := window - noise
	if echo < floor {
		echo, res.BelowNoise = floor, true
	}
	res.EchoLevel = dB(echo)
	res.ERL = res.PlayedLevel - res.EchoLevel
	opts.Logger.Debug("audio test result", "erl_db", res.ERL, "delay", res.Delay, "correlation", res.Correlation,
		"loudest_at", toDuration(loudestLag), "anchor_at", toDuration(anchor))
	return res
}

// Comparison is the self-test's report: the room without and with the
// echo canceller.
type Comparison struct {
	Raw, Cancelled Result
	// Improvement is Cancelled.ERL - Raw.ERL in dB: what the canceller
	// removes (its echo return loss enhancement).
	Improvement float64
}

func (c Comparison) String() string {
	return fmt.Sprintf("without canceller: %v\nwith canceller: %v\ncanceller removes %.1f dB", c.Raw, c.Cancelled, c.Improvement)
}

// RunWithAndWithoutCanceller measures the raw pair, then the cancelled one
// (one after the other: they share the room's hardware), with the same
// options and signal.
func RunWithAndWithoutCanceller(ctx context.Context, raw, cancelled Pair, opts Options) (Comparison, error) {
	r, err := Run(ctx, raw, opts)
	if err != nil {
		return Comparison{}, fmt.Errorf("without canceller: %w", err)
	}
	c, err := Run(ctx, cancelled, opts)
	if err != nil {
		return Comparison{}, fmt.Errorf("with canceller: %w", err)
	}
	return Comparison{Raw: r, Cancelled: c, Improvement: c.ERL - r.ERL}, nil
}
