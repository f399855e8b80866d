package swcodec

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"sync"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/codec/vpx"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/atriumroom/atrium/hal"
)

// maxVP8FrameBytes is the largest compressed frame the decoder takes:
// mediadevices' VP8 decoder reads each frame into a fixed 1 MiB buffer. A
// 1080p keyframe at a generous bitrate is a few hundred kilobytes.
const maxVP8FrameBytes = 1 << 20

// videoDecoders is the factory returned by NewVideoDecoders.
type videoDecoders struct {
	log *slog.Logger
}

var _ hal.VideoDecoderFactory = (*videoDecoders)(nil)

// NewVideoDecoders returns the software video decoder factory: VP8 only
// (libvpx through mediadevices), producing I420 frames. There is no H.264
// or VP9 software decoder; see the package documentation. A nil logger
// discards.
func NewVideoDecoders(logger *slog.Logger) hal.VideoDecoderFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &videoDecoders{log: logger.With("device", VideoDecoderID)}
}

// Info implements hal.Device.
func (f *videoDecoders) Info() hal.Info {
	return hal.Info{ID: VideoDecoderID, Kind: hal.KindVideoDecoder, Name: "Software video decoder (libvpx)", Driver: DriverName}
}

// Codecs implements hal.VideoDecoderFactory. The size limit is libvpx's
// VP8 limit (14-bit dimensions), not a real-time promise.
func (f *videoDecoders) Codecs() []hal.CodecCaps {
	return []hal.CodecCaps{{Codec: hal.CodecVP8, MaxWidth: 16383, MaxHeight: 16383}}
}

// NewVideoDecoder implements hal.VideoDecoderFactory.
func (f *videoDecoders) NewVideoDecoder(ctx context.Context, c hal.Codec) (hal.VideoDecoder, error) {
	op := fmt.Sprintf("new %s decoder", c)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if c != hal.CodecVP8 {
		return nil, fmt.Errorf("%s: %w", op, ErrUnsupportedCodec)
	}
	src := &packetSource{}
	// The size in prop.Media is unused by libvpx, which reads it from each
	// keyframe.
	dec, err := vpx.NewDecoder(src, prop.Media{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	f.log.Debug("opened VP8 decoder")
	return &vp8Decoder{log: f.log, dec: dec, src: src}, nil
}

// vp8Decoder is one decoding session. It implements hal.VideoDecoder.
type vp8Decoder struct {
	log *slog.Logger

	mu     sync.Mutex // serialises Decode and Close
	dec    codec.VideoDecoder
	src    *packetSource
	seq    uint64 // frames decoded so far
	w, h   int    // size of the last picture
	closed bool
}

var _ hal.VideoDecoder = (*vp8Decoder)(nil)

// Decode implements hal.VideoDecoder. It takes one whole VP8 frame (after
// RTP depacketization, without an IVF header) and returns the picture it
// produced, an I420 frame with the input's CapturedAt. Seq counts decoded
// pictures. After a decode error the decoder stays usable; inter frames
// then decode with artefacts until the next keyframe, so callers that see
// an error should ask the sender for one.
func (d *vp8Decoder) Decode(ctx context.Context, frame hal.EncodedFrame) ([]hal.VideoFrame, error) {
	op := "decode VP8 frame"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if frame.Codec != "" && frame.Codec != hal.CodecVP8 {
		return nil, fmt.Errorf("%s: got a %s frame: %w", op, frame.Codec, ErrUnsupportedCodec)
	}
	if len(frame.Data) == 0 {
		return nil, fmt.Errorf("%s: empty frame: %w", op, ErrInvalidConfig)
	}
	if len(frame.Data) > maxVP8FrameBytes {
		return nil, fmt.Errorf("%s: %d bytes, at most %d: %w", op, len(frame.Data), maxVP8FrameBytes, ErrInvalidConfig)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrClosed)
	}
	d.src.put(frame.Data)
	defer d.src.clear()
	// mediadevices' Read returns the decoder's pending pictures first and
	// reads (and decodes) the next packet only when there are none. Reading
	// until the source runs dry therefore collects every picture this
	// packet produced: one for VP8, none for a frame libvpx drops.
	var out []hal.VideoFrame
	for {
		img, release, err := d.dec.Read()
		if errors.Is(err, errNeedPacket) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", op, err)
		}
		yuv, ok := img.(*image.YCbCr)
		if !ok || yuv.SubsampleRatio != image.YCbCrSubsampleRatio420 {
			return out, fmt.Errorf("%s: decoder returned %T, want 4:2:0 *image.YCbCr", op, img)
		}
		w, h := yuv.Rect.Dx(), yuv.Rect.Dy()
		if w != d.w || h != d.h {
			d.log.Info("VP8 stream size", "from", fmt.Sprintf("%dx%d", d.w, d.h), "to", fmt.Sprintf("%dx%d", w, h))
			d.w, d.h = w, h
		}
		out = append(out, hal.VideoFrame{
			Width:      w,
			Height:     h,
			Format:     hal.PixelI420,
			Data:       packI420(yuv),
			Seq:        d.seq,
			CapturedAt: frame.CapturedAt,
		})
		d.seq++
		if release != nil {
			release()
		}
	}
}

// Close implements hal.VideoDecoder. It is idempotent: mediadevices'
// decoder frees its context unconditionally, so a second call must not
// reach it.
func (d *vp8Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.dec.Close(); err != nil {
		return fmt.Errorf("close VP8 decoder: %w", err)
	}
	return nil
}

// packI420 copies a 4:2:0 picture into the HAL's layout: Y, U and V planes
// back to back without padding. Odd dimensions round the chroma planes up,
// as libvpx does.
func packI420(img *image.YCbCr) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	out := make([]byte, w*h+2*cw*ch)
	y, u, v := out[:w*h], out[w*h:w*h+cw*ch], out[w*h+cw*ch:]
	for r := range h {
		copy(y[r*w:(r+1)*w], img.Y[r*img.YStride:])
	}
	for r := range ch {
		copy(u[r*cw:(r+1)*cw], img.Cb[r*img.CStride:])
		copy(v[r*cw:(r+1)*cw], img.Cr[r*img.CStride:])
	}
	return out
}

// errNeedPacket is what a packetSource returns once its packet has been
// read: the decoder has consumed its input and Decode is done.
var errNeedPacket = errors.New("decoder wants the next packet")

// packetSource is the pull side of the decoder's push adapter: an io.Reader
// that yields one whole compressed frame per Read, then errNeedPacket.
type packetSource struct {
	pkt []byte
}

var _ io.Reader = (*packetSource)(nil)

func (s *packetSource) put(pkt []byte) { s.pkt = pkt }

func (s *packetSource) clear() { s.pkt = nil }

// Read implements io.Reader, one packet per call: the decoder passes what
// one Read returns to vpx_codec_decode as one frame.
func (s *packetSource) Read(p []byte) (int, error) {
	if s.pkt == nil {
		return 0, errNeedPacket
	}
	if len(s.pkt) > len(p) {
		return 0, fmt.Errorf("frame of %d bytes does not fit the decoder's %d-byte buffer", len(s.pkt), len(p))
	}
	n := copy(p, s.pkt)
	s.pkt = nil
	return n, nil
}
