package rtc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Fake codecs. They stand in for hal/swcodec: the "VP8" encoder wraps the
// raw I420 picture behind a real VP8 frame tag (so keyframe detection, the
// IVF writer's size parsing and RTP packetization see the real thing) and
// the decoder unwraps it losslessly, so the simulated camera's stamp can be
// read back on the far side. The "Opus" pair carries every fourth sample
// behind a real TOC byte.

var errFake = errors.New("fake failure")

const fakeMagic = "FAKE"

type fakeVideoEncoderFactory struct {
	id       string
	hardware bool
	codecs   []hal.Codec
	// failOpen makes NewVideoEncoder fail; failAfter makes Encode fail
	// from that frame on (0: never).
	failOpen  bool
	failAfter int
	// padToBitrate grows frames to the configured bitrate, so congestion
	// control sees the encoder follow it.
	padToBitrate bool

	mu       sync.Mutex
	encoders []*fakeVideoEncoder
	opened   atomic.Int32
}

var _ hal.VideoEncoderFactory = (*fakeVideoEncoderFactory)(nil)

func (f *fakeVideoEncoderFactory) Info() hal.Info {
	return hal.Info{ID: f.id, Kind: hal.KindVideoEncoder, Name: "fake " + f.id, Driver: "fake"}
}

func (f *fakeVideoEncoderFactory) Codecs() []hal.CodecCaps {
	var out []hal.CodecCaps
	for _, c := range f.codecs {
		out = append(out, hal.CodecCaps{Codec: c, MaxWidth: 1920, MaxHeight: 1080, Hardware: f.hardware})
	}
	return out
}

func (f *fakeVideoEncoderFactory) NewVideoEncoder(_ context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	f.opened.Add(1)
	if f.failOpen {
		return nil, fmt.Errorf("open %s: %w", f.id, errFake)
	}
	if !slices.Contains(f.codecs, cfg.Codec) {
		return nil, fmt.Errorf("open %s: codec %s: %w", f.id, cfg.Codec, errFake)
	}
	e := &fakeVideoEncoder{f: f, cfg: cfg}
	e.wantKey.Store(true)
	e.bitrate.Store(int64(cfg.BitrateBps))
	f.mu.Lock()
	f.encoders = append(f.encoders, e)
	f.mu.Unlock()
	return e, nil
}

func (f *fakeVideoEncoderFactory) all() []*fakeVideoEncoder {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.encoders)
}

func (f *fakeVideoEncoderFactory) last() *fakeVideoEncoder {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.encoders) == 0 {
		return nil
	}
	return f.encoders[len(f.encoders)-1]
}

type fakeVideoEncoder struct {
	f   *fakeVideoEncoderFactory
	cfg hal.VideoEncoderConfig

	wantKey atomic.Bool
	forced  atomic.Int32
	bitrate atomic.Int64
	frames  atomic.Int64
	closed  atomic.Bool

	mu       sync.Mutex
	bitrates []int
}

func (e *fakeVideoEncoder) Encode(_ context.Context, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	if e.closed.Load() {
		return nil, fmt.Errorf("encode: %w", hal.ErrClosed)
	}
	n := e.frames.Add(1)
	if e.f.failAfter > 0 && n > int64(e.f.failAfter) {
		return nil, fmt.Errorf("encode frame %d: %w", n, errFake)
	}
	key := e.wantKey.Swap(false) || n%90 == 1
	var data []byte
	switch e.cfg.Codec {
	case hal.CodecVP8:
		data = fakeVP8(frame, key)
	case hal.CodecH264:
		data = fakeH264(frame, key)
	default:
		return nil, fmt.Errorf("encode %s: %w", e.cfg.Codec, errFake)
	}
	if e.f.padToBitrate && e.cfg.FPS > 0 {
		if want := int(e.bitrate.Load()) / 8 / e.cfg.FPS; len(data) < want {
			pad := make([]byte, want-len(data))
			for i := range pad {
				pad[i] = 0x55 // no zero runs: H.264 start codes stay unambiguous
			}
			data = append(data, pad...)
		}
	}
	return []hal.EncodedFrame{{Codec: e.cfg.Codec, Data: data, Keyframe: key, CapturedAt: frame.CapturedAt, Duration: time.Second / time.Duration(max(e.cfg.FPS, 1))}}, nil
}

func (e *fakeVideoEncoder) ForceKeyframe() {
	e.forced.Add(1)
	e.wantKey.Store(true)
}

func (e *fakeVideoEncoder) SetBitrate(bps int) error {
	e.bitrate.Store(int64(bps))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bitrates = append(e.bitrates, bps)
	return nil
}

func (e *fakeVideoEncoder) setBitrates() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.bitrates)
}

func (e *fakeVideoEncoder) Close() error {
	e.closed.Store(true)
	return nil
}

// fakeVP8 is a VP8 frame tag (keyframes with the start code and size, RFC
// 6386 section 9.1), then the magic, size, seq and the raw picture.
func fakeVP8(frame hal.VideoFrame, key bool) []byte {
	hdr := make([]byte, 10)
	if key {
		hdr[0] = 0x10 // show_frame, key
		copy(hdr[3:], []byte{0x9d, 0x01, 0x2a})
		binary.LittleEndian.PutUint16(hdr[6:], uint16(frame.Width))
		binary.LittleEndian.PutUint16(hdr[8:], uint16(frame.Height))
	} else {
		hdr[0] = 0x11 // show_frame, inter
	}
	body := make([]byte, 0, len(fakeMagic)+12+len(frame.Data))
	body = append(body, fakeMagic...)
	body = binary.BigEndian.AppendUint16(body, uint16(frame.Width))
	body = binary.BigEndian.AppendUint16(body, uint16(frame.Height))
	body = binary.BigEndian.AppendUint64(body, frame.Seq)
	body = append(body, frame.Data...)
	return append(hdr, body...)
}

// fakeH264 is an Annex B access unit: SPS and IDR slice for keyframes, a
// non-IDR slice otherwise, with payloads free of zero bytes.
func fakeH264(frame hal.VideoFrame, key bool) []byte {
	var out []byte
	sc := []byte{0, 0, 0, 1}
	if key {
		out = append(out, sc...)
		out = append(out, 0x67, 0x42, 0xe0, 0x1f, 0x11, 0x22) // SPS
		out = append(out, sc...)
		out = append(out, 0x65) // IDR
	} else {
		out = append(out, sc...)
		out = append(out, 0x41) // non-IDR
	}
	out = append(out, fakeMagic...)
	for i := range 8 {
		out = append(out, byte(frame.Seq>>(8*i))|0x80)
	}
	return out
}

type fakeVideoDecoderFactory struct{ id string }

func (f fakeVideoDecoderFactory) Info() hal.Info {
	return hal.Info{ID: f.id, Kind: hal.KindVideoDecoder, Name: "fake decoder", Driver: "fake"}
}

func (f fakeVideoDecoderFactory) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecVP8}}
}

func (f fakeVideoDecoderFactory) NewVideoDecoder(_ context.Context, codec hal.Codec) (hal.VideoDecoder, error) {
	if codec != hal.CodecVP8 {
		return nil, fmt.Errorf("decoder for %s: %w", codec, errFake)
	}
	return &fakeVideoDecoder{}, nil
}

type fakeVideoDecoder struct{}

// Decode carries CapturedAt through, as a real decoder carries timestamps.
func (fakeVideoDecoder) Decode(_ context.Context, f hal.EncodedFrame) ([]hal.VideoFrame, error) {
	d := f.Data
	if len(d) < 10+len(fakeMagic)+12 || string(d[10:10+len(fakeMagic)]) != fakeMagic {
		return nil, fmt.Errorf("decode: not a fake frame: %w", errFake)
	}
	d = d[10+len(fakeMagic):]
	w, h := int(binary.BigEndian.Uint16(d)), int(binary.BigEndian.Uint16(d[2:]))
	seq := binary.BigEndian.Uint64(d[4:])
	raw := d[12:]
	if size := w*h + 2*(w/2)*(h/2); len(raw) < size {
		return nil, fmt.Errorf("decode: %d bytes for %dx%d: %w", len(raw), w, h, errFake)
	} else {
		raw = raw[:size]
	}
	return []hal.VideoFrame{{Width: w, Height: h, Format: hal.PixelI420, Data: raw, Seq: seq, CapturedAt: f.CapturedAt}}, nil
}

func (fakeVideoDecoder) Close() error { return nil }

// fakeOpusTOC is config 31 (CELT fullband, 20 ms), mono, one frame.
const fakeOpusTOC = 0xF8

const fakeAudioDecimation = 4

type fakeAudioEncoderFactory struct {
	id       string
	failOpen bool
}

func (f fakeAudioEncoderFactory) Info() hal.Info {
	return hal.Info{ID: f.id, Kind: hal.KindAudioEncoder, Name: "fake opus", Driver: "fake"}
}

func (f fakeAudioEncoderFactory) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecOpus}}
}

func (f fakeAudioEncoderFactory) NewAudioEncoder(_ context.Context, cfg hal.AudioEncoderConfig) (hal.AudioEncoder, error) {
	if f.failOpen || cfg.Codec != hal.CodecOpus {
		return nil, fmt.Errorf("open %s: %w", f.id, errFake)
	}
	return &fakeAudioEncoder{format: cfg.Format}, nil
}

type fakeAudioEncoder struct{ format hal.AudioFormat }

// Encode keeps the first channel's every fourth sample.
func (e *fakeAudioEncoder) Encode(_ context.Context, samples []int16, at time.Time) ([]hal.EncodedFrame, error) {
	ch := max(e.format.Channels, 1)
	data := []byte{fakeOpusTOC}
	for i := 0; i < len(samples); i += ch * fakeAudioDecimation {
		data = binary.LittleEndian.AppendUint16(data, uint16(samples[i]))
	}
	d := time.Duration(len(samples)/ch) * time.Second / time.Duration(e.format.SampleRate)
	return []hal.EncodedFrame{{Codec: hal.CodecOpus, Data: data, CapturedAt: at, Duration: d}}, nil
}

func (e *fakeAudioEncoder) SetBitrate(int) error { return nil }
func (e *fakeAudioEncoder) Close() error         { return nil }

type fakeAudioDecoderFactory struct{ id string }

func (f fakeAudioDecoderFactory) Info() hal.Info {
	return hal.Info{ID: f.id, Kind: hal.KindAudioDecoder, Name: "fake opus", Driver: "fake"}
}

func (f fakeAudioDecoderFactory) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecOpus}}
}

func (f fakeAudioDecoderFactory) NewAudioDecoder(_ context.Context, codec hal.Codec, format hal.AudioFormat) (hal.AudioDecoder, error) {
	if codec != hal.CodecOpus {
		return nil, fmt.Errorf("decoder for %s: %w", codec, errFake)
	}
	return &fakeAudioDecoder{format: format}, nil
}

type fakeAudioDecoder struct{ format hal.AudioFormat }

func (d *fakeAudioDecoder) Decode(_ context.Context, f hal.EncodedFrame) ([]int16, error) {
	if len(f.Data) < 1 || f.Data[0] != fakeOpusTOC {
		return nil, fmt.Errorf("decode: not a fake packet: %w", errFake)
	}
	ch := max(d.format.Channels, 1)
	var out []int16
	for i := 1; i+1 < len(f.Data); i += 2 {
		s := int16(binary.LittleEndian.Uint16(f.Data[i:]))
		for range fakeAudioDecimation * ch {
			out = append(out, s)
		}
	}
	return out, nil
}

func (d *fakeAudioDecoder) Close() error { return nil }

// fakeSpeaker records what is played.
type fakeSpeaker struct {
	format hal.AudioFormat
	mu     sync.Mutex
	played []int16
	opens  int
	open   bool
}

func (s *fakeSpeaker) Info() hal.Info {
	return hal.Info{ID: "fake:speaker", Kind: hal.KindSpeaker, Name: "fake speaker", Driver: "fake"}
}
func (s *fakeSpeaker) Formats() []hal.AudioFormat { return []hal.AudioFormat{s.format} }
func (s *fakeSpeaker) Open(_ context.Context, f hal.AudioFormat) (hal.AudioPlayback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		return nil, hal.ErrBusy
	}
	s.open = true
	s.opens++
	return &fakePlayback{s: s, format: f}, nil
}

func (s *fakeSpeaker) samples() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.played)
}

func (s *fakeSpeaker) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

type fakePlayback struct {
	s      *fakeSpeaker
	format hal.AudioFormat
}

func (p *fakePlayback) Format() hal.AudioFormat { return p.format }
func (p *fakePlayback) Write(_ context.Context, samples []int16) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.played = append(p.s.played, samples...)
	return nil
}
func (p *fakePlayback) Close() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.open = false
	return nil
}

// frameLog is a VideoSink and AudioSink that remembers what it got.
type frameLog struct {
	mu      sync.Mutex
	frames  map[string][]hal.EncodedFrame
	infos   map[string]TrackInfo
	removed map[string]bool
}

func newFrameLog() *frameLog {
	return &frameLog{frames: map[string][]hal.EncodedFrame{}, infos: map[string]TrackInfo{}, removed: map[string]bool{}}
}

func (l *frameLog) WriteVideo(t TrackInfo, f hal.EncodedFrame) error { return l.add(t, f) }
func (l *frameLog) WriteAudio(t TrackInfo, f hal.EncodedFrame) error { return l.add(t, f) }

func (l *frameLog) add(t TrackInfo, f hal.EncodedFrame) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f.Data = nil // keep the log small
	l.frames[t.ID] = append(l.frames[t.ID], f)
	l.infos[t.ID] = t
	return nil
}

func (l *frameLog) RemoveTrack(t TrackInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removed[t.ID] = true
}

// kind returns the frames and info of the first track of kind.
func (l *frameLog) kind(kind string) ([]hal.EncodedFrame, TrackInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, info := range l.infos {
		if info.Kind == kind {
			return slices.Clone(l.frames[id]), info
		}
	}
	return nil, TrackInfo{}
}

func (l *frameLog) count(kind string) int {
	f, _ := l.kind(kind)
	return len(f)
}
