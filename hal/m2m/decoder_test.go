package m2m

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// fakeCoded is what the fake encoder makes of testFrame(w, h, i).
func fakeCoded(w, h, i int, key bool) hal.EncodedFrame {
	f := testFrame(w, h, i)
	return hal.EncodedFrame{Codec: hal.CodecFWHT, Data: append(fakeHeader(w, h, key, len(f.Data)), f.Data...), Keyframe: key, CapturedAt: f.CapturedAt}
}

func openDecoder(t *testing.T, n *fakeNode, mod func(*Config)) hal.VideoDecoder {
	t.Helper()
	c := system(map[string]*fakeNode{"video0": n}, nil)
	if mod != nil {
		mod(&c)
	}
	devs, err := New(c).Enumerate(testContext(t))
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate: %v, %v", devs, err)
	}
	n.Trace()
	d, err := devs[0].(*Decoder).NewVideoDecoder(testContext(t), hal.CodecFWHT)
	if err != nil {
		t.Fatalf("NewVideoDecoder: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// decodeOne decodes frame i at w×h and checks the one picture it gives.
func decodeOne(t *testing.T, d hal.VideoDecoder, w, h, i int, seq uint64) {
	t.Helper()
	in := fakeCoded(w, h, i, i == 0)
	out, err := d.Decode(testContext(t), in)
	if err != nil {
		t.Fatalf("Decode frame %d: %v", i, err)
	}
	if len(out) != 1 {
		t.Fatalf("frame %d: %d pictures, want 1", i, len(out))
	}
	p := out[0]
	want := testFrame(w, h, i)
	if p.Width != w || p.Height != h || p.Format != hal.PixelI420 || p.Seq != seq || !p.CapturedAt.Equal(want.CapturedAt) {
		t.Errorf("frame %d: %dx%d %s seq %d at %v, want %dx%d I420 seq %d at %v", i, p.Width, p.Height, p.Format, p.Seq, p.CapturedAt, w, h, seq, want.CapturedAt)
	}
	if !bytes.Equal(p.Data, want.Data) {
		t.Errorf("frame %d: picture differs from what the device decoded", i)
	}
}

func TestDecoderSetupAndLayouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mplane bool
		raw    uint32
		align  int
		extra  int
	}{
		{"I420", false, v4l2.PixFmtYUV420, 1, 0},
		{"I420 aligned", false, v4l2.PixFmtYUV420, 16, 32},
		{"NV12", false, v4l2.PixFmtNV12, 32, 0},
		{"NV12M", true, v4l2.PixFmtNV12M, 16, 64},
		{"YUV420M", true, v4l2.PixFmtYUV420M, 16, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := fwhtDecoder()
			n.mplane, n.raw, n.align, n.strideExtra = tc.mplane, []uint32{tc.raw}, tc.align, tc.extra
			d := openDecoder(t, n, nil)
			n.Trace()
			for i := range 4 {
				decodeOne(t, d, 200, 120, i, uint64(i))
			}
			want := strings.Join([]string{
				"DQEVENT",
				"G_FMT CAPTURE",
				"REQBUFS CAPTURE 5",
				"STREAMON CAPTURE",
			}, "\n")
			if tr := n.Trace(); !strings.HasPrefix(tr, want) {
				t.Errorf("first frame:\n%s\nwant it to start with:\n%s", tr, want)
			}
		})
	}
}

func TestDecoderOpenSequence(t *testing.T) {
	n := fwhtDecoder()
	c := system(map[string]*fakeNode{"video0": n}, nil)
	devs, err := New(c).Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Trace()
	d, err := devs[0].(*Decoder).NewVideoDecoder(testContext(t), hal.CodecFWHT)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"SUBSCRIBE_EVENT 5",
		"S_FMT OUTPUT FWHT 1280x720",
		"REQBUFS OUTPUT 4",
		"STREAMON OUTPUT",
	}, "\n")
	if got := n.Trace(); got != want {
		t.Errorf("open:\n%s\nwant:\n%s", got, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := n.Trace(), "STREAMOFF OUTPUT\nREQBUFS OUTPUT 0\nclose"; got != want {
		t.Errorf("close before any frame:\n%s\nwant:\n%s", got, want)
	}
	if _, err := d.Decode(testContext(t), fakeCoded(64, 64, 0, true)); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Decode after Close: %v", err)
	}
}

// TestDecoderResolutionChange follows the dynamic resolution change
// sequence: the decoder stops CAPTURE with an empty last buffer and a
// source change, and the session sets CAPTURE up again at the new size.
func TestDecoderResolutionChange(t *testing.T) {
	n := fwhtDecoder()
	d := openDecoder(t, n, nil)
	for i := range 3 {
		decodeOne(t, d, 320, 240, i, uint64(i))
	}
	n.Trace()
	decodeOne(t, d, 160, 96, 3, 3)
	tr := n.Trace()
	want := "DQEVENT\nSTREAMOFF CAPTURE\nREQBUFS CAPTURE 0\nG_FMT CAPTURE\nREQBUFS CAPTURE 5\nSTREAMON CAPTURE"
	if !strings.Contains(tr, want) {
		t.Errorf("resolution change:\n%s\nwant:\n%s", tr, want)
	}
	decodeOne(t, d, 160, 96, 4, 4)
}

func TestDecoderSplitsLargeFrames(t *testing.T) {
	n := fwhtDecoder()
	n.codedBufSize = 10_000 // a 200x120 frame is 36 kB
	d := openDecoder(t, n, nil)
	for i := range 3 {
		decodeOne(t, d, 200, 120, i, uint64(i))
	}

	n = fwhtDecoder()
	n.codedBufSize, n.continuous = 10_000, false
	d = openDecoder(t, n, nil)
	if _, err := d.Decode(testContext(t), fakeCoded(200, 120, 0, true)); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("frame larger than a buffer, format that cannot span: %v, want ErrInvalidFrame", err)
	}
}

func TestDecoderBeforeStreamStart(t *testing.T) {
	n := fwhtDecoder()
	d := openDecoder(t, n, func(c *Config) { c.FrameTimeout = time.Minute })
	start := time.Now()
	out, err := d.Decode(testContext(t), hal.EncodedFrame{Codec: hal.CodecFWHT, Data: []byte("not a stream yet")})
	if err != nil || len(out) != 0 {
		t.Errorf("junk before the stream: %d pictures, %v; want none, no error", len(out), err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Decode waited for a picture although the decoder had not seen a stream")
	}
	decodeOne(t, d, 200, 120, 0, 0)
}

func TestDecoderFailures(t *testing.T) {
	t.Run("stall", func(t *testing.T) {
		n := fwhtDecoder()
		d := openDecoder(t, n, func(c *Config) { c.FrameTimeout = 50 * time.Millisecond })
		decodeOne(t, d, 200, 120, 0, 0)
		n.stall = true
		if _, err := d.Decode(testContext(t), fakeCoded(200, 120, 1, false)); !errors.Is(err, ErrTimeout) {
			t.Errorf("Decode on a stalled device: %v, want ErrTimeout", err)
		}
	})
	t.Run("error flag", func(t *testing.T) {
		n := fwhtDecoder()
		d := openDecoder(t, n, nil)
		decodeOne(t, d, 200, 120, 0, 0)
		n.errorFlag = true
		n.stall = false
		_, err := d.Decode(testContext(t), fakeCoded(200, 120, 1, false))
		if !errors.Is(err, ErrDevice) {
			t.Errorf("Decode with a failed picture: %v, want ErrDevice", err)
		}
	})
	t.Run("unplugged", func(t *testing.T) {
		n := fwhtDecoder()
		d := openDecoder(t, n, nil)
		n.ioctlErr = map[uint32]error{v4l2.IoctlQBuf: unix.ENODEV}
		if _, err := d.Decode(testContext(t), fakeCoded(200, 120, 0, true)); !errors.Is(err, hal.ErrUnplugged) {
			t.Errorf("Decode on a vanished device: %v, want ErrUnplugged", err)
		}
	})
	t.Run("rejects", func(t *testing.T) {
		d := openDecoder(t, fwhtDecoder(), nil)
		if _, err := d.Decode(testContext(t), hal.EncodedFrame{Codec: hal.CodecFWHT}); !errors.Is(err, ErrInvalidFrame) {
			t.Errorf("empty frame: %v", err)
		}
		if _, err := d.Decode(testContext(t), hal.EncodedFrame{Codec: hal.CodecVP8, Data: []byte{1}}); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("VP8 frame: %v", err)
		}
	})
}
