package codecsel

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// behavior scripts a fake codec session. Counts are per session, 1-based:
// failAfter 3 means the 4th call fails. 0 means never.
type behavior struct {
	openErr    error         // every open fails with it
	busyAfter  int           // opens beyond this many open sessions fail with hal.ErrBusy; -1: all
	failAfter  int           // calls after this many return errBroken
	quietAfter int           // calls after this many return no output
	blockAfter int           // calls after this many block until ctx is done
	delay      int           // pipeline depth: input i comes out with input i+delay
	cost       time.Duration // each call advances the clock by this much
	// skipBeforeKey makes a decoder return nothing for inter frames before
	// its first keyframe, as hardware decoders do; otherwise it fails them.
	skipBeforeKey bool
}

var errBroken = errors.New("fake hardware broke")

// fakeFactory is a fake codec factory, encoder and decoder at once.
type fakeFactory struct {
	id    string
	hw    bool
	caps  []hal.CodecCaps
	b     behavior
	clock *fakeClock

	mu       sync.Mutex
	opened   int
	sessions []*fakeSession
	encCfgs  []hal.VideoEncoderConfig
}

func newFake(id string, hw bool, b behavior, caps ...hal.CodecCaps) *fakeFactory {
	for i := range caps {
		caps[i].Hardware = hw
	}
	return &fakeFactory{id: id, hw: hw, caps: caps, b: b}
}

func (f *fakeFactory) Info() hal.Info {
	driver := "software"
	if f.hw {
		driver = "fake-hw"
	}
	return hal.Info{ID: f.id, Kind: hal.KindVideoEncoder, Name: "fake " + f.id, Driver: driver}
}

func (f *fakeFactory) Codecs() []hal.CodecCaps { return f.caps }

func (f *fakeFactory) open(ctx context.Context, codec hal.Codec) (*fakeSession, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.b.openErr != nil {
		return nil, fmt.Errorf("open %s: %w", f.id, f.b.openErr)
	}
	if _, ok := capsFor(f, codec); !ok {
		return nil, fmt.Errorf("open %s: no %s", f.id, codec)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.b.busyAfter != 0 && f.openLocked() >= max(f.b.busyAfter, 0) {
		return nil, fmt.Errorf("open %s: %w", f.id, hal.ErrBusy)
	}
	f.opened++
	s := &fakeSession{f: f, name: fmt.Sprintf("%s#%d", f.id, f.opened), codec: codec}
	f.sessions = append(f.sessions, s)
	return s, nil
}

func (f *fakeFactory) openLocked() int {
	n := 0
	for _, s := range f.sessions {
		if !s.isClosed() {
			n++
		}
	}
	return n
}

// openSessions counts the sessions not closed yet.
func (f *fakeFactory) openSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.openLocked()
}

func (f *fakeFactory) session(i int) *fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[i]
}

func (f *fakeFactory) NewVideoEncoder(ctx context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	s, err := f.open(ctx, cfg.Codec)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.encCfgs = append(f.encCfgs, cfg)
	f.mu.Unlock()
	s.bitrate = cfg.BitrateBps
	return s, nil
}

func (f *fakeFactory) NewVideoDecoder(ctx context.Context, codec hal.Codec) (hal.VideoDecoder, error) {
	return f.open(ctx, codec)
}

// item is what a fake session holds in its pipeline.
type item struct {
	at   time.Time
	data []byte
}

// fakeSession encodes a frame into "<session>:<crc of the input>" and
// decodes a frame into "<session>:<coded data>"; as a decoder it refuses
// inter frames before its first keyframe, like a real one.
type fakeSession struct {
	f     *fakeFactory
	name  string
	codec hal.Codec

	mu        sync.Mutex
	calls     int
	queue     []item
	outputs   int
	forceKey  bool
	sawKey    bool
	bitrate   int
	keyforced int
	closed    bool
}

func (s *fakeSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *fakeSession) getBitrate() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bitrate
}

func (s *fakeSession) keyframesForced() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyforced
}

// step runs one call's script and returns the items that come out.
func (s *fakeSession) step(ctx context.Context, in item) ([]item, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, hal.ErrClosed
	}
	s.calls++
	n := s.calls
	b := s.f.b
	s.mu.Unlock()
	if b.cost > 0 {
		s.f.clock.Advance(b.cost)
	}
	if b.blockAfter > 0 && n > b.blockAfter {
		<-ctx.Done()
		return nil, fmt.Errorf("%s: %w", s.name, ctx.Err())
	}
	if b.failAfter > 0 && n > b.failAfter {
		return nil, fmt.Errorf("%s call %d: %w", s.name, n, errBroken)
	}
	if b.quietAfter > 0 && n > b.quietAfter {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, in)
	var out []item
	for len(s.queue) > b.delay {
		out = append(out, s.queue[0])
		s.queue = s.queue[1:]
	}
	return out, nil
}

func (s *fakeSession) Encode(ctx context.Context, f hal.VideoFrame) ([]hal.EncodedFrame, error) {
	in := item{at: f.CapturedAt, data: fmt.Appendf(nil, "%s:%08x", s.name, crc32.ChecksumIEEE(f.Data))}
	items, err := s.step(ctx, in)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hal.EncodedFrame
	for _, it := range items {
		key := s.outputs == 0 || s.forceKey
		s.forceKey = false
		s.outputs++
		out = append(out, hal.EncodedFrame{Codec: s.codec, Data: it.data, Keyframe: key, CapturedAt: it.at})
	}
	return out, err
}

func (s *fakeSession) ForceKeyframe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forceKey = true
	s.keyforced++
}

func (s *fakeSession) SetBitrate(bps int) error {
	if bps < 1000 {
		return fmt.Errorf("%s: bitrate %d too low", s.name, bps)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bitrate = bps
	return nil
}

func (s *fakeSession) Decode(ctx context.Context, f hal.EncodedFrame) ([]hal.VideoFrame, error) {
	s.mu.Lock()
	if f.Keyframe {
		s.sawKey = true
	}
	sawKey := s.sawKey
	s.mu.Unlock()
	if !sawKey && s.f.b.skipBeforeKey {
		return nil, nil
	}
	if !sawKey {
		return nil, fmt.Errorf("%s: inter frame %q without a reference", s.name, f.Data)
	}
	in := item{at: f.CapturedAt, data: fmt.Appendf(nil, "%s:%s", s.name, f.Data)}
	items, err := s.step(ctx, in)
	var out []hal.VideoFrame
	for _, it := range items {
		out = append(out, hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: it.data, Seq: 99, CapturedAt: it.at})
	}
	return out, err
}

func (s *fakeSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// pathOfData is the session name an output's data starts with.
func pathOfData(b []byte) string {
	name, _, _ := strings.Cut(string(b), ":")
	return name
}
