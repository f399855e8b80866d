package swcodec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/codec/opus"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/atriumroom/atrium/hal"
)

// OpusFrameDuration is the length of every packet the encoder emits, the
// WebRTC norm: shorter frames cost header overhead, longer ones latency.
const OpusFrameDuration = 20 * time.Millisecond

// Opus bitrate limits, bps. libopus clamps outside 500..512000; below 6 kbps
// even narrowband speech is unintelligible.
const (
	MinOpusBitrate     = 6_000
	MaxOpusBitrate     = 510_000
	DefaultOpusBitrate = 32_000 // wideband speech; music wants 64-128 kbps
)

// opusRates are the sample rates libopus encodes and decodes natively.
var opusRates = []int{8000, 12000, 16000, 24000, 48000}

func checkOpusFormat(f hal.AudioFormat) error {
	if !slices.Contains(opusRates, f.SampleRate) || (f.Channels != 1 && f.Channels != 2) {
		return fmt.Errorf("format %d Hz %d ch: Opus takes 1 or 2 channels at %v Hz: %w", f.SampleRate, f.Channels, opusRates, ErrInvalidConfig)
	}
	return nil
}

func checkOpusBitrate(bps int) error {
	if bps < MinOpusBitrate || bps > MaxOpusBitrate {
		return fmt.Errorf("bitrate must be from %d to %d bps, got %d: %w", MinOpusBitrate, MaxOpusBitrate, bps, ErrInvalidConfig)
	}
	return nil
}

// audioEncoders is the factory returned by NewAudioEncoders.
type audioEncoders struct {
	log *slog.Logger
}

var _ hal.AudioEncoderFactory = (*audioEncoders)(nil)

// NewAudioEncoders returns the software audio encoder factory: Opus
// through mediadevices (libopus, VOIP application), 20 ms packets. A nil
// logger discards.
func NewAudioEncoders(logger *slog.Logger) hal.AudioEncoderFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &audioEncoders{log: logger.With("device", AudioEncoderID)}
}

// Info implements hal.Device.
func (f *audioEncoders) Info() hal.Info {
	return hal.Info{ID: AudioEncoderID, Kind: hal.KindAudioEncoder, Name: "Software audio encoder (Opus)", Driver: DriverName}
}

// Codecs implements hal.AudioEncoderFactory.
func (f *audioEncoders) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecOpus}}
}

// NewAudioEncoder implements hal.AudioEncoderFactory. The format is 48 kHz
// in Atrium, though any rate libopus has (8, 12, 16, 24, 48 kHz) works;
// mono or stereo. BitrateBps 0 means DefaultOpusBitrate.
func (f *audioEncoders) NewAudioEncoder(ctx context.Context, cfg hal.AudioEncoderConfig) (hal.AudioEncoder, error) {
	op := fmt.Sprintf("new %s encoder %d Hz %d ch %d bps", cfg.Codec, cfg.Format.SampleRate, cfg.Format.Channels, cfg.BitrateBps)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if cfg.Codec != hal.CodecOpus {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	bps := cfg.BitrateBps
	if bps == 0 {
		bps = DefaultOpusBitrate
	}
	if err := errors.Join(checkOpusFormat(cfg.Format), checkOpusBitrate(bps)); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p, err := opus.NewParams()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p.BitRate = bps
	p.Latency = opus.Latency(OpusFrameDuration)
	src := &sampleSource{}
	enc, err := p.BuildAudioEncoder(src, prop.Media{Audio: prop.Audio{
		SampleRate:   cfg.Format.SampleRate,
		ChannelCount: cfg.Format.Channels,
		Latency:      OpusFrameDuration,
	}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	frameLen := cfg.Format.SampleRate * int(OpusFrameDuration/time.Millisecond) / 1000
	f.log.Debug("opened Opus encoder", "rate", cfg.Format.SampleRate, "channels", cfg.Format.Channels, "bps", bps)
	return &opusEncoder{
		format:   cfg.Format,
		frameLen: frameLen,
		enc:      enc,
		src:      src,
		pending:  make([]int16, 0, frameLen*cfg.Format.Channels),
	}, nil
}

// opusEncoder is one encoding session. It implements hal.AudioEncoder.
type opusEncoder struct {
	format   hal.AudioFormat
	frameLen int // samples per channel in one packet

	mu        sync.Mutex // serialises Encode, SetBitrate and Close
	enc       codec.ReadCloser
	src       *sampleSource
	pending   []int16   // samples of an incomplete packet, interleaved
	pendingAt time.Time // capture time of pending[0]
	closed    bool
}

var _ hal.AudioEncoder = (*opusEncoder)(nil)

// Encode implements hal.AudioEncoder. samples are interleaved, a whole
// number of frames, captured from capturedAt on; any count is fine. It
// emits one packet per complete 20 ms and keeps the rest for the next call.
// Each packet's CapturedAt is its first sample's: samples kept over from an
// earlier call keep their own timeline, and a gap between calls is not
// filled. Every packet is marked Keyframe: an Opus decoder can start at any
// packet.
func (e *opusEncoder) Encode(ctx context.Context, samples []int16, capturedAt time.Time) ([]hal.EncodedFrame, error) {
	op := "encode Opus"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ch := e.format.Channels
	if len(samples)%ch != 0 {
		return nil, fmt.Errorf("%s: %d samples is not a whole number of %d-channel frames: %w", op, len(samples), ch, ErrInvalidConfig)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	if len(e.pending) == 0 {
		e.pendingAt = capturedAt
	}
	var out []hal.EncodedFrame
	need := e.frameLen * ch
	for consumed := 0; consumed < len(samples); {
		take := min(need-len(e.pending), len(samples)-consumed)
		e.pending = append(e.pending, samples[consumed:consumed+take]...)
		consumed += take
		if len(e.pending) < need {
			break
		}
		e.src.put(e.pending, e.format)
		data, release, err := e.enc.Read()
		e.src.clear()
		if err != nil {
			return out, fmt.Errorf("%s: %w", op, err)
		}
		if release != nil {
			release()
		}
		out = append(out, hal.EncodedFrame{
			Codec:      hal.CodecOpus,
			Data:       data,
			Keyframe:   true,
			CapturedAt: e.pendingAt,
			Duration:   OpusFrameDuration,
		})
		e.pending = e.pending[:0]
		// The next packet starts at this call's sample number consumed/ch;
		// deriving its time from this call's capturedAt, rather than adding
		// 20 ms to the last packet's, keeps rounding from accumulating.
		e.pendingAt = capturedAt.Add(time.Duration(consumed/ch) * time.Second / time.Duration(e.format.SampleRate))
	}
	return out, nil
}

// SetBitrate implements hal.AudioEncoder. It applies from the next packet.
func (e *opusEncoder) SetBitrate(bps int) error {
	op := fmt.Sprintf("set Opus bitrate to %d bps", bps)
	if err := checkOpusBitrate(bps); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	ctl, ok := e.enc.Controller().(codec.BitRateController)
	if !ok {
		return fmt.Errorf("%s: encoder has no bitrate control", op)
	}
	if err := ctl.SetBitRate(bps); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Close implements hal.AudioEncoder. It is idempotent; samples of an
// incomplete packet are dropped.
func (e *opusEncoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if err := e.enc.Close(); err != nil {
		return fmt.Errorf("close Opus encoder: %w", err)
	}
	return nil
}

// errNoSamples is what a sampleSource returns when the library encoder reads
// more than the one packet's worth Encode gave it: a bug in the adapter.
var errNoSamples = errors.New("encoder read a second packet's samples for one packet")

// sampleSource is the pull side of the audio push adapter: an audio.Reader
// holding exactly one packet's samples. mediadevices' 20 ms buffer reads
// it once, finds a whole packet, and passes it on without reading again.
type sampleSource struct {
	chunk *wave.Int16Interleaved
}

func (s *sampleSource) put(samples []int16, f hal.AudioFormat) {
	s.chunk = &wave.Int16Interleaved{
		Data: samples,
		Size: wave.ChunkInfo{Len: len(samples) / f.Channels, Channels: f.Channels, SamplingRate: f.SampleRate},
	}
}

func (s *sampleSource) clear() { s.chunk = nil }

// Read implements mediadevices' audio.Reader.
func (s *sampleSource) Read() (wave.Audio, func(), error) {
	c := s.chunk
	if c == nil {
		return nil, func() {}, errNoSamples
	}
	s.chunk = nil
	return c, func() {}, nil
}
