package audiotest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// fakeRoom is a speaker and a microphone joined by a synthetic echo path of
// known delay and gain, plus microphone noise of known level. Its time is
// sample-exact and driven by the speaker: the speaker's device buffer
// holds buffer frames, so the room's clock reads (frames written - buffer),
// and the microphone can deliver a frame once the clock has passed it. The
// speaker may run at most ahead frames in front of the microphone's
// reader, which paces it the way a real device's buffer would. Nothing
// depends on the wall clock: the test runs as fast as the CPU.
type fakeRoom struct {
	rate    int
	epoch   time.Time
	buffer  int     // speaker buffer, frames
	ahead   int     // how far the writer may run before the reader, frames
	delay   int     // acoustic delay, frames
	gain    float64 // acoustic gain
	noise   float64 // microphone noise, RMS (full scale 1)
	formats []hal.AudioFormat

	failMicOpen, failSpkOpen error
	// unplugAfter, when positive, unplugs the speaker once it has played
	// that many frames.
	unplugAfter int

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	played  []float64     // speaker output, mono, by frame since epoch
	readPos int           // next frame the microphone delivers
	rng     *rand.Rand
	opened  []string // "mic", "spk" as opened, for tests of Open's errors
	open    int      // streams open now
}

// roomConfig says how a fake room behaves; zero fields take the defaults
// of newFakeRoom.
type roomConfig struct {
	delay   time.Duration
	gain    float64
	noiseDB float64 // dBFS RMS; 0 means none
	formats []hal.AudioFormat
}

var fakeEpoch = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func newFakeRoom(cfg roomConfig) *fakeRoom {
	const rate = 48000
	r := &fakeRoom{
		rate:    rate,
		epoch:   fakeEpoch,
		buffer:  rate / 50, // 20 ms
		ahead:   rate / 10, // 100 ms
		delay:   frames(cfg.delay, rate),
		gain:    cfg.gain,
		formats: cfg.formats,
		changed: make(chan struct{}),
		rng:     rand.New(rand.NewPCG(1, 2)),
	}
	if cfg.noiseDB != 0 {
		r.noise = math.Pow(10, cfg.noiseDB/20)
	}
	if r.formats == nil {
		r.formats = []hal.AudioFormat{{SampleRate: 48000, Channels: 1}, {SampleRate: 48000, Channels: 2}}
	}
	return r
}

// Now is the room's clock (the test's Options.Clock).
func (r *fakeRoom) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timeOf(len(r.played) - r.buffer)
}

func (r *fakeRoom) timeOf(frame int) time.Time {
	return r.epoch.Add(time.Duration(frame) * time.Second / time.Duration(r.rate))
}

func (r *fakeRoom) signalLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait blocks until ready holds (checked under r.mu, which it returns
// holding) or ctx is done.
func (r *fakeRoom) wait(ctx context.Context, ready func() bool) error {
	for {
		r.mu.Lock()
		if ready() {
			return nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (r *fakeRoom) speaker() *fakeSpeaker { return &fakeSpeaker{r} }
func (r *fakeRoom) mic() *fakeMic         { return &fakeMic{r} }

type fakeSpeaker struct{ r *fakeRoom }
type fakeMic struct{ r *fakeRoom }

func (s *fakeSpeaker) Info() hal.Info {
	return hal.Info{ID: "fake:speaker", Kind: hal.KindSpeaker, Name: "Fake speaker", Driver: "fake"}
}
func (s *fakeSpeaker) Formats() []hal.AudioFormat { return slices.Clone(s.r.formats) }

func (s *fakeSpeaker) Open(ctx context.Context, f hal.AudioFormat) (hal.AudioPlayback, error) {
	if s.r.failSpkOpen != nil {
		return nil, s.r.failSpkOpen
	}
	if !slices.Contains(s.r.formats, f) {
		return nil, hal.ErrUnsupportedMode
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.opened = append(s.r.opened, "spk")
	s.r.open++
	return &fakePlayback{r: s.r, f: f}, nil
}

func (m *fakeMic) Info() hal.Info {
	return hal.Info{ID: "fake:mic", Kind: hal.KindMicrophone, Name: "Fake microphone", Driver: "fake"}
}
func (m *fakeMic) Formats() []hal.AudioFormat { return slices.Clone(m.r.formats) }

func (m *fakeMic) Open(ctx context.Context, f hal.AudioFormat) (hal.AudioCapture, error) {
	if m.r.failMicOpen != nil {
		return nil, m.r.failMicOpen
	}
	if !slices.Contains(m.r.formats, f) {
		return nil, hal.ErrUnsupportedMode
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	m.r.opened = append(m.r.opened, "mic")
	m.r.open++
	return &fakeCapture{r: m.r, f: f}, nil
}

type fakePlayback struct {
	r      *fakeRoom
	f      hal.AudioFormat
	closed bool
}

func (p *fakePlayback) Format() hal.AudioFormat { return p.f }

func (p *fakePlayback) Write(ctx context.Context, samples []int16) error {
	r := p.r
	if err := r.wait(ctx, func() bool { return p.closed || len(r.played)-r.readPos <= r.ahead }); err != nil {
		return err
	}
	defer r.mu.Unlock()
	if p.closed {
		return hal.ErrClosed
	}
	if r.unplugAfter > 0 && len(r.played) >= r.unplugAfter {
		return hal.ErrUnplugged
	}
	ch := p.f.Channels
	if len(samples)%ch != 0 {
		return fmt.Errorf("fake: %d samples in %d channels", len(samples), ch)
	}
	for i := 0; i < len(samples); i += ch {
		var sum float64
		for c := range ch {
			sum += float64(samples[i+c])
		}
		r.played = append(r.played, sum/float64(ch)/32768)
	}
	r.signalLocked()
	return nil
}

func (p *fakePlayback) Close() error {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.r.open--
		p.r.signalLocked()
	}
	return nil
}

type fakeCapture struct {
	r      *fakeRoom
	f      hal.AudioFormat
	closed bool
}

func (c *fakeCapture) Format() hal.AudioFormat { return c.f }

func (c *fakeCapture) Read(ctx context.Context, buf []int16) (int, time.Time, error) {
	r := c.r
	ch := c.f.Channels
	n := len(buf) / ch
	if err := r.wait(ctx, func() bool { return c.closed || r.readPos+n <= len(r.played)-r.buffer }); err != nil {
		return 0, time.Time{}, err
	}
	defer r.mu.Unlock()
	if c.closed {
		return 0, time.Time{}, hal.ErrClosed
	}
	start := r.readPos
	for i := range n {
		k := start + i
		var v float64
		if j := k - r.delay; j >= 0 {
			v = r.gain * r.played[j]
		}
		v += r.noise * r.rng.NormFloat64()
		s := int16(math.Round(min(max(v, -1), 32767.0/32768) * 32768))
		for c := range ch {
			buf[i*ch+c] = s
		}
	}
	r.readPos += n
	r.signalLocked()
	return n * ch, r.timeOf(start), nil
}

func (c *fakeCapture) Close() error {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.r.open--
		c.r.signalLocked()
	}
	return nil
}

func (r *fakeRoom) pair() Pair { return Pair{Speaker: r.speaker(), Microphone: r.mic()} }

func (r *fakeRoom) openStreams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}
