package swcodec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// Device IDs of the four factories.
const (
	VideoEncoderID = "sw:video-encoder"
	VideoDecoderID = "sw:video-decoder"
	AudioEncoderID = "sw:audio-encoder"
	AudioDecoderID = "sw:audio-decoder"
)

// DriverName is the driver's name in hal.Info.Driver.
const DriverName = "software"

// DefaultKeyframeInterval is the keyframe spacing when
// VideoEncoderConfig.KeyframeInterval is 0. A receiver that joins late or
// loses a keyframe normally asks for one (a PLI, which calls ForceKeyframe),
// so the periodic keyframe is a backstop for receivers that cannot ask
// (recorders, a lost PLI). 3 s bounds their wait while spending less than
// the usual 1-2 s: a keyframe costs several inter frames' worth of bits,
// and a burst of them is what makes a constrained uplink stall.
const DefaultKeyframeInterval = 3 * time.Second

// Limits on video encoder sessions. MaxVideoWidth×MaxVideoHeight (1080p) is
// what the factory advertises in CodecCaps: larger pictures encode, in
// software, far slower than real time on the 2-core appliances.
const (
	MaxVideoWidth   = 1920
	MaxVideoHeight  = 1080
	MinVideoBitrate = 30_000     // bps; below this neither codec makes a usable picture
	MaxVideoBitrate = 50_000_000 // bps
	MaxVideoFPS     = 120
	minVideoSide    = 16 // both libraries reject smaller pictures
)

// videoCodec is one software video encoder.
type videoCodec struct {
	caps hal.CodecCaps
	// open starts a library encoder.
	open func(s encoderSettings) (libEncoder, error)
	// isKeyframe parses one encoded frame.
	isKeyframe func(data []byte) bool
}

// encoderSettings is what a library encoder is opened with.
type encoderSettings struct {
	width, height int
	fps           int
	bitrate       int // bps
	keyint        int // frames
}

// libEncoder is a library encoder behind videoEncoder, which serialises
// calls to it and checks frames before they reach it.
type libEncoder interface {
	// encode encodes one I420 frame of the size the encoder was opened
	// with, as a keyframe if asked, and returns the compressed frame
	// (empty if the encoder dropped it).
	encode(f hal.VideoFrame, keyframe bool) ([]byte, error)
	setBitrate(bps int) error
	close() error
}

// videoEncoders is the factory returned by NewVideoEncoders.
type videoEncoders struct {
	log    *slog.Logger
	codecs []videoCodec
}

var _ hal.VideoEncoderFactory = (*videoEncoders)(nil)

// NewVideoEncoders returns the software video encoder factory: H.264
// (libx264, constrained baseline, Annex-B with SPS and PPS before every
// IDR, suitable for RTP packetization-mode=1) and VP8 (libvpx, real-time
// deadline, error resilient, CBR). A nil logger discards.
func NewVideoEncoders(logger *slog.Logger) hal.VideoEncoderFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &videoEncoders{
		log:    logger.With("device", VideoEncoderID),
		codecs: []videoCodec{h264Codec(), vp8Codec()},
	}
}

// Info implements hal.Device.
func (f *videoEncoders) Info() hal.Info {
	return hal.Info{ID: VideoEncoderID, Kind: hal.KindVideoEncoder, Name: "Software video encoder (x264, libvpx)", Driver: DriverName}
}

// Codecs implements hal.VideoEncoderFactory.
func (f *videoEncoders) Codecs() []hal.CodecCaps {
	caps := make([]hal.CodecCaps, len(f.codecs))
	for i, c := range f.codecs {
		caps[i] = c.caps
	}
	return caps
}

// NewVideoEncoder implements hal.VideoEncoderFactory. cfg.KeyframeInterval
// 0 means DefaultKeyframeInterval. Frames may later come at another size;
// see Encode.
func (f *videoEncoders) NewVideoEncoder(ctx context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	op := fmt.Sprintf("new %s encoder %dx%d@%d %d bps", cfg.Codec, cfg.Width, cfg.Height, cfg.FPS, cfg.BitrateBps)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	i := slices.IndexFunc(f.codecs, func(c videoCodec) bool { return c.caps.Codec == cfg.Codec })
	if i < 0 {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	c := f.codecs[i]
	if err := checkVideoConfig(cfg, c.caps); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	interval := cfg.KeyframeInterval
	if interval == 0 {
		interval = DefaultKeyframeInterval
	}
	keyint := max(1, int((interval*time.Duration(cfg.FPS)+time.Second/2)/time.Second))
	e := &videoEncoder{
		log:    f.log.With("codec", cfg.Codec),
		codec:  c,
		fps:    cfg.FPS,
		keyint: keyint,
		width:  cfg.Width,
		height: cfg.Height,
	}
	e.target.Store(int64(cfg.BitrateBps))
	// Open now, not on the first frame, so that a library that refuses the
	// settings fails here rather than mid-call.
	if err := e.open(cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	e.log.Debug("opened encoder", "size", fmt.Sprintf("%dx%d", cfg.Width, cfg.Height), "fps", cfg.FPS, "bps", cfg.BitrateBps, "keyint", keyint)
	return e, nil
}

func checkVideoConfig(cfg hal.VideoEncoderConfig, caps hal.CodecCaps) error {
	var errs []error
	if err := checkSize(cfg.Width, cfg.Height, caps); err != nil {
		errs = append(errs, err)
	}
	if cfg.FPS < 1 || cfg.FPS > MaxVideoFPS {
		errs = append(errs, fmt.Errorf("FPS must be from 1 to %d, got %d: %w", MaxVideoFPS, cfg.FPS, ErrInvalidConfig))
	}
	if err := checkVideoBitrate(cfg.BitrateBps); err != nil {
		errs = append(errs, err)
	}
	if cfg.KeyframeInterval < 0 {
		errs = append(errs, fmt.Errorf("KeyframeInterval must not be negative, got %s: %w", cfg.KeyframeInterval, ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// checkSize accepts even sizes only: I420 halves both dimensions for chroma,
// and neither library encodes the odd remainder the HAL's layout lacks.
func checkSize(w, h int, caps hal.CodecCaps) error {
	if w < minVideoSide || h < minVideoSide || w > caps.MaxWidth || h > caps.MaxHeight || w%2 != 0 || h%2 != 0 {
		return fmt.Errorf("size %dx%d: width and height must be even, from %d to %dx%d: %w",
			w, h, minVideoSide, caps.MaxWidth, caps.MaxHeight, ErrInvalidConfig)
	}
	return nil
}

func checkVideoBitrate(bps int) error {
	if bps < MinVideoBitrate || bps > MaxVideoBitrate {
		return fmt.Errorf("bitrate must be from %d to %d bps, got %d: %w", MinVideoBitrate, MaxVideoBitrate, bps, ErrInvalidConfig)
	}
	return nil
}

// i420Size is the size of an I420 picture with even dimensions.
func i420Size(w, h int) int { return w*h + 2*(w/2)*(h/2) }

// videoEncoder is one encoding session. It implements hal.VideoEncoder.
type videoEncoder struct {
	log    *slog.Logger
	codec  videoCodec
	fps    int
	keyint int

	// Requests from other goroutines, applied by the next Encode.
	keyframe atomic.Bool  // ForceKeyframe was called
	target   atomic.Int64 // bitrate set by SetBitrate, bps
	closing  atomic.Bool  // Close was called; SetBitrate fails fast

	mu            sync.Mutex // serialises Encode and Close
	enc           libEncoder
	width, height int // of the open library encoder
	applied       int // bps the library encoder was last given
	closed        bool
}

var _ hal.VideoEncoder = (*videoEncoder)(nil)

// open (re)creates the library encoder for w×h at the current target
// bitrate. The caller holds mu, or owns e exclusively.
func (e *videoEncoder) open(w, h int) error {
	if e.enc != nil {
		if err := e.enc.close(); err != nil {
			e.log.Warn("close encoder before re-creating it", "err", err)
		}
		e.enc = nil
	}
	bps := int(e.target.Load())
	enc, err := e.codec.open(encoderSettings{width: w, height: h, fps: e.fps, bitrate: bps, keyint: e.keyint})
	if err != nil {
		return fmt.Errorf("open %s encoder %dx%d: %w", e.codec.caps.Codec, w, h, err)
	}
	e.enc, e.width, e.height, e.applied = enc, w, h, bps
	// A new encoder starts with a keyframe anyway.
	e.keyframe.Store(false)
	return nil
}

// Encode implements hal.VideoEncoder. frame must be I420 with even
// dimensions. Both codecs run with zero lookahead and never drop frames, so
// the result is exactly one EncodedFrame: this very frame, encoded, with
// its CapturedAt. Keyframe is parsed from the bitstream (an IDR NAL unit
// for H.264, the frame tag for VP8), not taken on the library's word.
//
// A frame of a different size than the last re-creates the library encoder
// at the new size (after a camera mode switch or a resolution step-down):
// neither library can change resolution in place without a keyframe
// anyway, and re-creating keeps the settings exact. The output continues
// with a keyframe at the new size; the bitrate stays what it was.
func (e *videoEncoder) Encode(ctx context.Context, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	op := fmt.Sprintf("encode %s frame %d", e.codec.caps.Codec, frame.Seq)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if frame.Format != hal.PixelI420 {
		return nil, fmt.Errorf("%s: pixel format %q, want %s: %w", op, frame.Format, hal.PixelI420, ErrInvalidConfig)
	}
	if err := checkSize(frame.Width, frame.Height, e.codec.caps); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if want := i420Size(frame.Width, frame.Height); len(frame.Data) < want {
		return nil, fmt.Errorf("%s: %d bytes of data, %dx%d I420 needs %d: %w", op, len(frame.Data), frame.Width, frame.Height, want, ErrInvalidConfig)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	if e.enc == nil { // an earlier re-creation failed
		if err := e.open(frame.Width, frame.Height); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	} else if frame.Width != e.width || frame.Height != e.height {
		e.log.Info("frame size changed; re-creating encoder",
			"from", fmt.Sprintf("%dx%d", e.width, e.height), "to", fmt.Sprintf("%dx%d", frame.Width, frame.Height))
		if err := e.open(frame.Width, frame.Height); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	if bps := int(e.target.Load()); bps != e.applied {
		if err := e.enc.setBitrate(bps); err != nil {
			return nil, fmt.Errorf("%s: set bitrate %d bps: %w", op, bps, err)
		}
		e.applied = bps
	}
	data, err := e.enc.encode(frame, e.keyframe.Swap(false))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	return []hal.EncodedFrame{{
		Codec:      e.codec.caps.Codec,
		Data:       data,
		Keyframe:   e.codec.isKeyframe(data),
		CapturedAt: frame.CapturedAt,
		Duration:   time.Second / time.Duration(e.fps),
	}}, nil
}

// ForceKeyframe implements hal.VideoEncoder: the next frame Encode encodes
// is a keyframe (for H.264 an IDR with SPS and PPS). It does not block.
func (e *videoEncoder) ForceKeyframe() { e.keyframe.Store(true) }

// SetBitrate implements hal.VideoEncoder. It takes effect from the next
// Encode, without a keyframe, and does not block.
func (e *videoEncoder) SetBitrate(bps int) error {
	op := fmt.Sprintf("set %s bitrate to %d bps", e.codec.caps.Codec, bps)
	if e.closing.Load() {
		return fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	if err := checkVideoBitrate(bps); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	e.target.Store(int64(bps))
	return nil
}

// Close implements hal.VideoEncoder. It waits for a running Encode, frees
// the library encoder and is idempotent.
func (e *videoEncoder) Close() error {
	e.closing.Store(true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	enc := e.enc
	e.enc = nil
	if enc == nil {
		return nil
	}
	if err := enc.close(); err != nil {
		return fmt.Errorf("close %s encoder: %w", e.codec.caps.Codec, err)
	}
	return nil
}
