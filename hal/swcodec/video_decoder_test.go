package swcodec

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

func newVP8Pair(t *testing.T, w, h, bps int) (hal.VideoEncoder, hal.VideoDecoder) {
	t.Helper()
	ctx := testContext(t)
	enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: hal.CodecVP8, Width: w, Height: h, FPS: 30, BitrateBps: bps,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	dec, err := NewVideoDecoders(nil).NewVideoDecoder(ctx, hal.CodecVP8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dec.Close() })
	return enc, dec
}

// roundTrip encodes f, decodes the result and checks that the picture
// carries f's stamp, size and capture time.
func roundTrip(t *testing.T, enc hal.VideoEncoder, dec hal.VideoDecoder, f hal.VideoFrame) hal.EncodedFrame {
	t.Helper()
	ctx := testContext(t)
	out, err := enc.Encode(ctx, f)
	if err != nil || len(out) != 1 {
		t.Fatalf("frame %d: Encode = %d frames, %v; want 1", f.Seq, len(out), err)
	}
	pics, err := dec.Decode(ctx, out[0])
	if err != nil || len(pics) != 1 {
		t.Fatalf("frame %d: Decode = %d pictures, %v; want 1", f.Seq, len(pics), err)
	}
	checkPicture(t, pics[0], f)
	return out[0]
}

func checkPicture(t *testing.T, p, f hal.VideoFrame) {
	t.Helper()
	if p.Width != f.Width || p.Height != f.Height || p.Format != hal.PixelI420 || len(p.Data) != i420Size(f.Width, f.Height) {
		t.Fatalf("frame %d: decoded %dx%d %s with %d bytes, want %dx%d I420", f.Seq, p.Width, p.Height, p.Format, len(p.Data), f.Width, f.Height)
	}
	if !p.CapturedAt.Equal(f.CapturedAt) {
		t.Errorf("frame %d: decoded CapturedAt %v, want %v", f.Seq, p.CapturedAt, f.CapturedAt)
	}
	seq, at, ok := sim.DecodeStamp(p)
	if !ok || seq != f.Seq || !at.Equal(f.CapturedAt) {
		t.Errorf("frame %d: stamp in the decoded picture = %d, %v, %v; want %d, %v", f.Seq, seq, at, ok, f.Seq, f.CapturedAt)
	}
}

// TestVP8RoundTrip sends the simulated camera through VP8 and back, and
// reads every frame's sequence number and capture time off the decoded
// picture, across a forced keyframe and a resolution change.
func TestVP8RoundTrip(t *testing.T) {
	checkLeaks(t)
	enc, dec := newVP8Pair(t, 640, 360, 800_000)
	cam := openCamera(t, 640, 360)
	var decoded uint64
	for i := range 45 {
		if i == 20 {
			enc.ForceKeyframe()
		}
		roundTrip(t, enc, dec, cam.next(t))
		decoded++
	}
	// The camera switches mode: the encoder re-creates itself at the new
	// size and the decoder follows the keyframe.
	big := openCamera(t, 1280, 720)
	for i := range 15 {
		ef := roundTrip(t, enc, dec, big.next(t))
		if i == 0 && !ef.Keyframe {
			t.Errorf("first frame after the size change is not a keyframe")
		}
		decoded++
	}
	// Seq counts decoded pictures.
	out, err := enc.Encode(testContext(t), big.next(t))
	if err != nil {
		t.Fatal(err)
	}
	pics, err := dec.Decode(testContext(t), out[0])
	if err != nil || len(pics) != 1 || pics[0].Seq != decoded {
		t.Errorf("Decode = %d pictures (Seq %v), %v; want Seq %d", len(pics), pics, err, decoded)
	}
}

// TestVP8LateJoin starts a second decoder at a forced keyframe in the middle
// of a stream, as a receiver that joins late and sends a PLI would.
func TestVP8LateJoin(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	enc, _ := newVP8Pair(t, 640, 360, 800_000)
	cam := openCamera(t, 640, 360)
	for range 10 {
		if _, err := enc.Encode(ctx, cam.next(t)); err != nil {
			t.Fatal(err)
		}
	}
	late, err := NewVideoDecoders(nil).NewVideoDecoder(ctx, hal.CodecVP8)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	enc.ForceKeyframe()
	for range 10 {
		f := cam.next(t)
		out, err := enc.Encode(ctx, f)
		if err != nil || len(out) != 1 {
			t.Fatalf("Encode: %d frames, %v", len(out), err)
		}
		pics, err := late.Decode(ctx, out[0])
		if err != nil || len(pics) != 1 {
			t.Fatalf("frame %d: late decoder: %d pictures, %v", f.Seq, len(pics), err)
		}
		checkPicture(t, pics[0], f)
	}
}

func TestVideoDecoderErrors(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP9, hal.CodecOpus, "AV1"} {
		if d, err := NewVideoDecoders(nil).NewVideoDecoder(ctx, c); !errors.Is(err, ErrUnsupportedCodec) {
			if d != nil {
				d.Close()
			}
			t.Errorf("NewVideoDecoder(%s) = %v, want ErrUnsupportedCodec", c, err)
		}
	}

	enc, dec := newVP8Pair(t, 320, 180, 300_000)
	cam := openCamera(t, 320, 180)
	if _, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecVP8}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Decode(empty) = %v, want ErrInvalidConfig", err)
	}
	if _, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecH264, Data: []byte{0, 0, 0, 1, 0x65}}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("Decode(H.264 frame) = %v, want ErrUnsupportedCodec", err)
	}
	garbage := make([]byte, 500)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if pics, err := dec.Decode(ctx, hal.EncodedFrame{Codec: hal.CodecVP8, Data: garbage}); err == nil && len(pics) > 0 {
		t.Errorf("Decode(garbage) = %d pictures, want an error", len(pics))
	}
	// The decoder survives garbage: the next keyframe decodes.
	roundTrip(t, enc, dec, cam.next(t))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := dec.Decode(cancelled, hal.EncodedFrame{Data: garbage}); !errors.Is(err, context.Canceled) {
		t.Errorf("Decode with a cancelled context = %v", err)
	}
	if err := dec.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := dec.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := dec.Decode(ctx, hal.EncodedFrame{Data: garbage}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Decode after Close = %v, want ErrClosed", err)
	}
}

// TestVP8EncoderTimestamps feeds frames without capture times and frames
// that go back in time: the encoder must not fail, and the output must
// still decode.
func TestVP8EncoderTimestamps(t *testing.T) {
	checkLeaks(t)
	enc, dec := newVP8Pair(t, 320, 180, 300_000)
	cam := openCamera(t, 320, 180)
	ctx := testContext(t)
	for i := range 12 {
		f := cam.next(t)
		switch {
		case i >= 3 && i < 6:
			f.CapturedAt = time.Time{}
		case i >= 6 && i < 9:
			f.CapturedAt = f.CapturedAt.Add(-time.Hour)
		case i == 10:
			f.CapturedAt = f.CapturedAt.Add(time.Hour) // a stall
		}
		out, err := enc.Encode(ctx, f)
		if err != nil || len(out) != 1 {
			t.Fatalf("frame %d: Encode = %d frames, %v", i, len(out), err)
		}
		if _, err := dec.Decode(ctx, out[0]); err != nil {
			t.Fatalf("frame %d: Decode: %v", i, err)
		}
	}
}
