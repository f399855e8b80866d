package swcodec

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// audioDecoders is the factory returned by NewAudioDecoders.
type audioDecoders struct {
	log *slog.Logger
}

var _ hal.AudioDecoderFactory = (*audioDecoders)(nil)

// NewAudioDecoders returns the software audio decoder factory: Opus through
// libopus, with packet-loss concealment. A nil logger discards.
func NewAudioDecoders(logger *slog.Logger) hal.AudioDecoderFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &audioDecoders{log: logger.With("device", AudioDecoderID)}
}

// Info implements hal.Device.
func (f *audioDecoders) Info() hal.Info {
	return hal.Info{ID: AudioDecoderID, Kind: hal.KindAudioDecoder, Name: "Software audio decoder (libopus)", Driver: DriverName}
}

// Codecs implements hal.AudioDecoderFactory.
func (f *audioDecoders) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecOpus}}
}

// NewAudioDecoder implements hal.AudioDecoderFactory. format is the PCM to
// produce; Opus decodes any stream to any of its rates and channel counts,
// whatever the sender used.
func (f *audioDecoders) NewAudioDecoder(ctx context.Context, c hal.Codec, format hal.AudioFormat) (hal.AudioDecoder, error) {
	op := fmt.Sprintf("new %s decoder %d Hz %d ch", c, format.SampleRate, format.Channels)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if c != hal.CodecOpus {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	if err := checkOpusFormat(format); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	dec, err := newLibopusDecoder(format.SampleRate, format.Channels)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	f.log.Debug("opened Opus decoder", "rate", format.SampleRate, "channels", format.Channels)
	return &opusDecoder{format: format, dec: dec}, nil
}

// opusDecoder is one decoding session. It implements hal.AudioDecoder.
type opusDecoder struct {
	format hal.AudioFormat

	mu  sync.Mutex // serialises Decode and Close, and guards dec
	dec *libopusDecoder
}

var _ hal.AudioDecoder = (*opusDecoder)(nil)

// Decode implements hal.AudioDecoder: one Opus packet in, its interleaved
// samples out (up to 120 ms). A frame with no Data reports a lost packet:
// the decoder conceals it, extrapolating from what it decoded last, for
// frame.Duration (a multiple of 2.5 ms up to 120 ms), or for
// OpusFrameDuration when Duration is 0.
func (d *opusDecoder) Decode(ctx context.Context, frame hal.EncodedFrame) ([]int16, error) {
	op := "decode Opus packet"
	conceal := 0
	if len(frame.Data) == 0 {
		op = "conceal lost Opus packet"
		dur := frame.Duration
		if dur == 0 {
			dur = OpusFrameDuration
		}
		const step = 2500 * time.Microsecond
		if dur%step != 0 || dur > maxOpusPacketMillis*time.Millisecond || dur < 0 {
			return nil, fmt.Errorf("%s: duration %s is not a multiple of 2.5ms up to %dms: %w", op, dur, maxOpusPacketMillis, ErrInvalidConfig)
		}
		conceal = int(dur * time.Duration(d.format.SampleRate) / time.Second)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if frame.Codec != "" && frame.Codec != hal.CodecOpus {
		return nil, fmt.Errorf("%s: got a %s frame: %w", op, frame.Codec, ErrUnsupportedCodec)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec == nil {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	pcm, err := d.dec.decode(frame.Data, conceal)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return pcm, nil
}

// Close implements hal.AudioDecoder. It frees the libopus decoder and is
// idempotent; Decode after Close returns hal.ErrClosed.
func (d *opusDecoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dec != nil {
		d.dec.destroy()
		d.dec = nil
	}
	return nil
}
