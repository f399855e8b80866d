package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/cmplx"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Onset detection: the output is cut into short blocks; a block much louder
// than the preceding background starts an onset, whose time is then refined
// to the first sample that rises above the background's peak.
const (
	onsetBlock      = 2 * time.Millisecond
	onsetBackground = 25 // blocks (50 ms) of background level
	onsetRatio      = 2  // +6 dB over the background
	onsetFloor      = 0.05
	onsetRefractory = 100 * time.Millisecond
	maxOnsets       = 64
	// minSpectrum is the fewest samples DominantHz is computed from.
	minSpectrum = 1024
)

// errFrames is returned for writes that are not whole frames.
var errFrames = errors.New("sample count is not a multiple of the channel count")

// SpeakerStats is what the simulated speaker has played.
type SpeakerStats struct {
	// Samples counts sample frames (one per channel group) played from
	// streams, not counting silence; Played is the same as a duration.
	Samples int64
	Played  time.Duration
	// RMS and Peak are the level of the last second of output, silence
	// included, with channels averaged and full scale 1 (a full-scale sine
	// has RMS 0.707).
	RMS, Peak float64
	// Underruns counts the times a stream's buffer ran dry and more audio
	// came later; Gaps is the total silence those caused. A stream that
	// simply stops writing is not an underrun.
	Underruns int
	Gaps      time.Duration
	// DominantHz is the strongest frequency in the last second of output
	// (about 1 Hz resolution), or 0 when it is silent.
	DominantHz float64
	// Onsets are the play times of the most recent sudden level rises (the
	// simulated microphone's beeps, after whatever path they took), oldest
	// first, at most 64.
	Onsets []time.Time
}

// Speaker is the simulated speaker. It implements hal.Speaker. It plays one
// stream at a time, like an ALSA hw device, through a device buffer of
// Config.SpeakerBuffer, and analyses what it plays (Stats).
type Speaker struct {
	plug     plug
	formats  []hal.AudioFormat
	grid     sampleGrid
	capacity int // device buffer, in frames
	clock    Clock
	log      *slog.Logger

	mu   sync.Mutex
	open *audioPlayback
	// queue holds the open stream's interleaved samples not yet played.
	queue []int16
	// outK is the grid index of the next frame the device outputs; the
	// device outputs continuously, silence when the queue is empty.
	outK int64
	// dryAt is where the open stream's queue ran dry (valid when dry).
	dry   bool
	dryAt int64
	stats speakerAnalysis
}

var _ hal.Speaker = (*Speaker)(nil)

func newSpeaker(cfg Config) *Speaker {
	g := sampleGrid(cfg.SampleRate)
	rate := cfg.SampleRate
	return &Speaker{
		plug:     newPlug(),
		formats:  audioFormats(cfg),
		grid:     g,
		capacity: max(int(int64(cfg.SpeakerBuffer)*int64(rate)/int64(time.Second)), 1),
		clock:    cfg.Clock,
		log:      cfg.Logger.With("device", SpeakerID),
		outK:     g.floor(cfg.Clock.Now()),
		stats:    newSpeakerAnalysis(rate),
	}
}

// Info implements hal.Device.
func (s *Speaker) Info() hal.Info {
	return hal.Info{ID: SpeakerID, Kind: hal.KindSpeaker, Name: "Simulated speaker", Driver: DriverName, Simulated: true}
}

// Formats lists the preferred channel count first.
func (s *Speaker) Formats() []hal.AudioFormat { return slices.Clone(s.formats) }

// Open implements hal.Speaker. A second Open while a stream is open fails
// with hal.ErrBusy.
func (s *Speaker) Open(ctx context.Context, format hal.AudioFormat) (hal.AudioPlayback, error) {
	op := fmt.Sprintf("open %s %d Hz %d ch", SpeakerID, format.SampleRate, format.Channels)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !slices.Contains(s.formats, format) {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnsupportedMode)
	}
	gone, ok := s.plug.current()
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnplugged)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.clock.Now())
	if s.open != nil {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrBusy)
	}
	p := &audioPlayback{spk: s, format: format, gone: gone, closed: make(chan struct{})}
	s.open, s.queue, s.dry = p, s.queue[:0], false
	return p, nil
}

// Stats returns what the speaker has played up to now.
func (s *Speaker) Stats() SpeakerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.clock.Now())
	return s.stats.snapshot(s.grid)
}

// ResetStats forgets everything played so far, so a test can measure one
// phase at a time.
func (s *Speaker) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.clock.Now())
	s.stats = newSpeakerAnalysis(int(s.grid))
}

// unplugged drops what the device had queued: the DAC is gone.
func (s *Speaker) unplugged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.clock.Now())
	s.open, s.queue = nil, s.queue[:0]
}

// advance plays the device's output up to now. Must hold s.mu.
func (s *Speaker) advance(now time.Time) {
	due := s.grid.floor(now)
	n := due - s.outK
	if n <= 0 {
		return
	}
	var played int64
	if s.open != nil {
		ch := s.open.format.Channels
		played = min(n, int64(len(s.queue)/ch))
		for i := range played {
			sum := 0
			for c := range ch {
				sum += int(s.queue[int(i)*ch+c])
			}
			s.stats.push(s.outK+i, float64(sum)/float64(ch)/32768, s.grid)
		}
		s.queue = s.queue[int(played)*ch:]
		s.stats.samples += played
		if played < n && s.open.started && !s.dry {
			s.dry, s.dryAt = true, s.outK+played
		}
	}
	// Silence fills the rest; only the last second of a long pause matters
	// to the analysis.
	silentFrom := s.outK + played
	if due-silentFrom > int64(s.grid) {
		silentFrom = due - int64(s.grid)
		s.stats.resetDetector()
	}
	for k := silentFrom; k < due; k++ {
		s.stats.push(k, 0, s.grid)
	}
	s.outK = due
}

// audioPlayback is an open speaker stream.
type audioPlayback struct {
	spk    *Speaker
	format hal.AudioFormat
	gone   <-chan struct{}

	closeOnce sync.Once
	closed    chan struct{}

	wmu     sync.Mutex // serialises writers, so their samples do not interleave
	started bool       // guarded by spk.mu
}

func (p *audioPlayback) Format() hal.AudioFormat { return p.format }

// Write implements hal.AudioPlayback. It returns once every sample is in the
// device buffer, blocking in real time while the buffer is full.
func (p *audioPlayback) Write(ctx context.Context, samples []int16) error {
	ch := p.format.Channels
	if len(samples)%ch != 0 {
		return fmt.Errorf("write %d samples to %s: %w", len(samples), SpeakerID, errFrames)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	s := p.spk
	for len(samples) > 0 {
		select {
		case <-p.closed:
			return fmt.Errorf("write to %s: %w", SpeakerID, hal.ErrClosed)
		default:
		}
		select {
		case <-p.gone:
			return fmt.Errorf("write to %s: %w", SpeakerID, hal.ErrUnplugged)
		default:
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("write to %s: %w", SpeakerID, err)
		}
		s.mu.Lock()
		s.advance(s.clock.Now())
		free := s.capacity - len(s.queue)/ch
		if free > 0 {
			if s.dry {
				if gap := s.outK - s.dryAt; gap > 0 {
					s.stats.underruns++
					s.stats.gaps += s.grid.time(s.outK).Sub(s.grid.time(s.dryAt))
					s.log.Debug("speaker underrun", "gap", s.grid.time(s.outK).Sub(s.grid.time(s.dryAt)))
				}
				s.dry = false
			}
			k := min(free, len(samples)/ch)
			s.queue = append(s.queue, samples[:k*ch]...)
			samples = samples[k*ch:]
			p.started = true
			s.mu.Unlock()
			continue
		}
		// Wait for a quarter of the buffer (or the rest of samples) to
		// drain, rather than waking once per sample.
		need := min(len(samples)/ch, max(s.capacity/4, 1))
		deadline := s.grid.time(s.outK + int64(need-free))
		s.mu.Unlock()
		if err := wait(ctx, s.clock, deadline, p.closed, p.gone); err != nil {
			return fmt.Errorf("write to %s: %w", SpeakerID, err)
		}
	}
	return nil
}

// Close implements hal.AudioPlayback. Like snd_pcm_drop, it discards what
// has not been played yet. It is idempotent.
func (p *audioPlayback) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		s := p.spk
		s.mu.Lock()
		defer s.mu.Unlock()
		s.advance(s.clock.Now())
		if s.open == p {
			s.open, s.queue, s.dry = nil, s.queue[:0], false
		}
	})
	return nil
}

// speakerAnalysis measures the speaker's output.
type speakerAnalysis struct {
	rate      int
	samples   int64
	underruns int
	gaps      time.Duration

	// history is the last second of output by grid index modulo its length.
	history []float64
	histEnd int64 // grid index after the newest sample
	filled  int

	blockLen   int
	blockStart int64
	blockN     int
	blockSum   float64
	background []float64 // ring of recent block RMS levels
	bgPos      int
	bgFilled   int
	lastOnset  int64
	hasOnset   bool
	onsets     []time.Time
}

func newSpeakerAnalysis(rate int) speakerAnalysis {
	return speakerAnalysis{
		rate:       rate,
		history:    make([]float64, rate),
		blockLen:   max(int(int64(onsetBlock)*int64(rate)/int64(time.Second)), 1),
		background: make([]float64, onsetBackground),
	}
}

func (a *speakerAnalysis) resetDetector() {
	a.blockN, a.blockSum, a.bgFilled, a.bgPos = 0, 0, 0, 0
}

// push adds output sample x (full scale 1) played at grid index k.
func (a *speakerAnalysis) push(k int64, x float64, g sampleGrid) {
	a.history[a.slot(k)] = x
	a.histEnd = k + 1
	a.filled = min(a.filled+1, len(a.history))

	if a.blockN == 0 {
		a.blockStart = k
	}
	a.blockSum += x * x
	a.blockN++
	if a.blockN < a.blockLen {
		return
	}
	rms := math.Sqrt(a.blockSum / float64(a.blockN))
	a.blockN, a.blockSum = 0, 0
	bg := 0.0
	for _, v := range a.background[:a.bgFilled] {
		bg += v
	}
	if a.bgFilled > 0 {
		bg /= float64(a.bgFilled)
	}
	refractory := int64(onsetRefractory) * int64(a.rate) / int64(time.Second)
	if rms > onsetFloor && rms > onsetRatio*bg && (!a.hasOnset || a.blockStart-a.lastOnset >= refractory) {
		onset := a.refineOnset(bg)
		a.lastOnset, a.hasOnset = onset, true
		a.onsets = append(a.onsets, g.time(onset))
		if len(a.onsets) > maxOnsets {
			a.onsets = slices.Delete(a.onsets, 0, len(a.onsets)-maxOnsets)
		}
	}
	a.background[a.bgPos] = rms
	a.bgPos = (a.bgPos + 1) % len(a.background)
	a.bgFilled = min(a.bgFilled+1, len(a.background))
}

// refineOnset finds, in the block just finished and the one before it, the
// first sample louder than a sine at the background level could be.
func (a *speakerAnalysis) refineOnset(bg float64) int64 {
	threshold := max(bg*math.Sqrt2*1.3, onsetFloor)
	from := max(a.blockStart-int64(a.blockLen), a.histEnd-int64(a.filled))
	for k := from; k < a.histEnd; k++ {
		if math.Abs(a.history[a.slot(k)]) > threshold {
			return k
		}
	}
	return a.blockStart
}

func (a *speakerAnalysis) snapshot(g sampleGrid) SpeakerStats {
	st := SpeakerStats{
		Samples:   a.samples,
		Played:    time.Duration(a.samples * int64(time.Second) / int64(a.rate)),
		Underruns: a.underruns,
		Gaps:      a.gaps,
		Onsets:    slices.Clone(a.onsets),
	}
	recent := a.recent()
	sum := 0.0
	for _, x := range recent {
		sum += x * x
		st.Peak = max(st.Peak, math.Abs(x))
	}
	if len(recent) > 0 {
		st.RMS = math.Sqrt(sum / float64(len(recent)))
	}
	if st.RMS > 1e-4 {
		st.DominantHz = dominantFrequency(recent, a.rate)
	}
	return st
}

// recent returns the history, oldest first.
func (a *speakerAnalysis) recent() []float64 {
	out := make([]float64, a.filled)
	for i := range out {
		out[i] = a.history[a.slot(a.histEnd-int64(a.filled)+int64(i))]
	}
	return out
}

// slot is where grid index k lives in history.
func (a *speakerAnalysis) slot(k int64) int {
	n := int64(len(a.history))
	return int((k%n + n) % n)
}

// dominantFrequency returns the frequency of the strongest spectral peak of
// x, from a Hann-windowed FFT of its newest power-of-two samples with the
// peak interpolated between bins; 0 if x is too short.
func dominantFrequency(x []float64, rate int) float64 {
	n := 1
	for n*2 <= len(x) {
		n *= 2
	}
	if n < minSpectrum {
		return 0
	}
	x = x[len(x)-n:]
	buf := make([]complex128, n)
	for i, v := range x {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		buf[i] = complex(v*w, 0)
	}
	fft(buf)
	mag := func(i int) float64 { return cmplx.Abs(buf[i]) }
	best := 1
	for i := 2; i < n/2; i++ {
		if mag(i) > mag(best) {
			best = i
		}
	}
	// Parabolic interpolation on log magnitudes; exact enough for a
	// Hann-windowed sine to a fraction of a bin.
	delta := 0.0
	if best > 1 && best < n/2-1 {
		l, c, r := math.Log(mag(best-1)+1e-12), math.Log(mag(best)+1e-12), math.Log(mag(best+1)+1e-12)
		if d := l - 2*c + r; d != 0 {
			delta = 0.5 * (l - r) / d
		}
	}
	return (float64(best) + delta) * float64(rate) / float64(n)
}

// fft is an in-place iterative radix-2 FFT; len(x) must be a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		step := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := range size / 2 {
				a, b := x[start+k], x[start+k+size/2]*w
				x[start+k], x[start+k+size/2] = a+b, a-b
				w *= step
			}
		}
	}
}
