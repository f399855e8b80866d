package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// The microphone's signal is a pure function of time, so every stream, and a
// test computing the expected signal, agrees on it sample for sample.
const (
	toneLevel  = 0.25 // -12 dBFS
	beepHz     = 1000
	beepLevel  = 0.7 // about -3 dBFS: a 9 dB step a receiver can spot
	beepLength = 50 * time.Millisecond
	// rightGain sets the right channel apart from the left so interleaving
	// mistakes show, without cancelling in a downmix.
	rightGain = 0.5
	// micBuffer is how much captured audio the device holds for a reader
	// that falls behind; older samples are overwritten (an overrun).
	micBuffer = 2 * time.Second
)

// Microphone is the simulated microphone. It implements hal.Microphone.
//
// Left (or mono) carries a ToneHz sine at -12 dBFS, replaced for 50 ms at
// every BeepInterval boundary of the clock's wall time by a 1 kHz beep at
// about -3 dBFS; right carries the same at half the amplitude.
type Microphone struct {
	plug     plug
	formats  []hal.AudioFormat
	toneHz   float64
	interval time.Duration
	clock    Clock
	log      *slog.Logger
}

var _ hal.Microphone = (*Microphone)(nil)

func newMicrophone(cfg Config) *Microphone {
	return &Microphone{
		plug:     newPlug(),
		formats:  audioFormats(cfg),
		toneHz:   cfg.ToneHz,
		interval: cfg.BeepInterval,
		clock:    cfg.Clock,
		log:      cfg.Logger.With("device", MicrophoneID),
	}
}

// Info implements hal.Device.
func (m *Microphone) Info() hal.Info {
	return hal.Info{ID: MicrophoneID, Kind: hal.KindMicrophone, Name: "Simulated microphone", Driver: DriverName, Simulated: true}
}

// Formats lists the preferred channel count first.
func (m *Microphone) Formats() []hal.AudioFormat { return slices.Clone(m.formats) }

// Open implements hal.Microphone. Any number of captures may be open.
func (m *Microphone) Open(ctx context.Context, format hal.AudioFormat) (hal.AudioCapture, error) {
	op := fmt.Sprintf("open %s %d Hz %d ch", MicrophoneID, format.SampleRate, format.Channels)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !slices.Contains(m.formats, format) {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnsupportedMode)
	}
	gone, ok := m.plug.current()
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnplugged)
	}
	g := sampleGrid(format.SampleRate)
	return &audioCapture{
		mic:    m,
		format: format,
		grid:   g,
		next:   g.ceil(m.clock.Now()),
		gone:   gone,
		closed: make(chan struct{}),
	}, nil
}

// sampleGrid numbers samples from the Unix epoch, so that sample times are
// exact integers and beeps can sit on wall-clock boundaries.
type sampleGrid int64

// floor is the number of whole sample periods from the epoch to t.
func (g sampleGrid) floor(t time.Time) int64 {
	rate := int64(g)
	k := t.Unix()*rate + int64(t.Nanosecond())*rate/1e9
	return k
}

// ceil is the first sample at or after t.
func (g sampleGrid) ceil(t time.Time) int64 {
	k := g.floor(t)
	if g.time(k).Before(t) {
		k++
	}
	return k
}

// time is when sample k starts, rounded up to the nanosecond so that
// floor(time(k)) == k.
func (g sampleGrid) time(k int64) time.Time {
	rate := int64(g)
	sec, rem := k/rate, k%rate
	if rem < 0 {
		sec, rem = sec-1, rem+rate
	}
	return time.Unix(sec, (rem*1e9+rate-1)/rate)
}

// audioCapture is an open microphone stream.
type audioCapture struct {
	mic    *Microphone
	format hal.AudioFormat
	grid   sampleGrid
	gone   <-chan struct{}

	closeOnce sync.Once
	closed    chan struct{}

	mu   sync.Mutex // serialises readers
	next int64      // grid index of the next sample frame to deliver
}

func (c *audioCapture) Format() hal.AudioFormat { return c.format }

// Read implements hal.AudioCapture. It fills as many whole frames as fit in
// buf, blocking until the last of them has been captured, and returns the
// number of samples (frames × channels).
func (c *audioCapture) Read(ctx context.Context, buf []int16) (int, time.Time, error) {
	frames := len(buf) / c.format.Channels
	if frames == 0 {
		return 0, time.Time{}, fmt.Errorf("read from %s: buffer of %d samples holds no %d-channel frame", MicrophoneID, len(buf), c.format.Channels)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rate := int64(c.format.SampleRate)
	for {
		select {
		case <-c.closed:
			return 0, time.Time{}, fmt.Errorf("read from %s: %w", MicrophoneID, hal.ErrClosed)
		default:
		}
		select {
		case <-c.gone:
			return 0, time.Time{}, fmt.Errorf("read from %s: %w", MicrophoneID, hal.ErrUnplugged)
		default:
		}
		// A sample is captured once its period has passed.
		captured := c.grid.floor(c.mic.clock.Now())
		if limit := int64(micBuffer) * rate / int64(time.Second); captured-c.next > limit {
			dropped := captured - limit - c.next
			c.mic.log.Warn("microphone overrun: reader fell behind; dropped samples",
				"dropped", time.Duration(dropped*int64(time.Second)/rate))
			c.next += dropped
		}
		if c.next+int64(frames) <= captured {
			break
		}
		if err := wait(ctx, c.mic.clock, c.grid.time(c.next+int64(frames)), c.closed, c.gone); err != nil {
			return 0, time.Time{}, fmt.Errorf("read from %s: %w", MicrophoneID, err)
		}
	}
	start := c.next
	c.mic.synthesize(buf[:frames*c.format.Channels], c.format, start)
	c.next += int64(frames)
	return frames * c.format.Channels, c.grid.time(start), nil
}

// synthesize writes frames starting at grid index k into buf.
func (m *Microphone) synthesize(buf []int16, f hal.AudioFormat, k int64) {
	rate := int64(f.SampleRate)
	interval := int64(m.interval) * rate / int64(time.Second)
	beepLen := int64(beepLength) * rate / int64(time.Second)
	for i := 0; i < len(buf); i += f.Channels {
		v := m.sample(k, rate, interval, beepLen)
		buf[i] = toPCM(v)
		if f.Channels == 2 {
			buf[i+1] = toPCM(v * rightGain)
		}
		k++
	}
}

// sample is the left channel at grid index k, in [-1, 1].
func (m *Microphone) sample(k, rate, interval, beepLen int64) float64 {
	pos := k % interval
	if pos < 0 {
		pos += interval
	}
	if pos < beepLen {
		// The beep starts at phase zero on the boundary: a clean onset.
		return beepLevel * math.Sin(2*math.Pi*beepHz*float64(pos)/float64(rate))
	}
	// The phase is split into whole seconds and the rest so that it stays
	// precise with k around 10^14.
	sec, rem := k/rate, k%rate
	if rem < 0 {
		sec, rem = sec-1, rem+rate
	}
	cycles := frac(m.toneHz*float64(sec)) + m.toneHz*float64(rem)/float64(rate)
	return toneLevel * math.Sin(2*math.Pi*cycles)
}

func toPCM(v float64) int16 {
	return int16(math.Round(min(max(v, -1), 1) * math.MaxInt16))
}

// Close implements hal.AudioCapture; it is idempotent and wakes a blocked
// Read.
func (c *audioCapture) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
