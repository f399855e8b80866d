package m2m

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

func h264Cfg(w, h int) hal.VideoEncoderConfig {
	return hal.VideoEncoderConfig{Codec: hal.CodecH264, Width: w, Height: h, FPS: 30, BitrateBps: 2_000_000, KeyframeInterval: time.Second}
}

// encodeOne encodes testFrame(w, h, i) and checks it comes back as one
// coded frame with its CapturedAt and the picture intact.
func encodeOne(t *testing.T, e hal.VideoEncoder, w, h, i int) hal.EncodedFrame {
	t.Helper()
	f := testFrame(w, h, i)
	out, err := e.Encode(testContext(t), f)
	if err != nil {
		t.Fatalf("Encode frame %d: %v", i, err)
	}
	if len(out) != 1 {
		t.Fatalf("frame %d: %d coded frames, want 1", i, len(out))
	}
	c := out[0]
	if !c.CapturedAt.Equal(f.CapturedAt) || c.Duration != time.Second/30 {
		t.Errorf("frame %d: CapturedAt %v Duration %v, want %v and 1/30 s", i, c.CapturedAt, c.Duration, f.CapturedAt)
	}
	if !bytes.HasSuffix(c.Data, f.Data) || len(c.Data) < fwhtHeaderSize+len(f.Data) {
		t.Errorf("frame %d: the device did not get the picture as it was", i)
	}
	return c
}

func TestEncoderSetup(t *testing.T) {
	n := h264Encoder()
	_, e := openEncoder(t, n, h264Cfg(1920, 1080), nil)
	// The encoder interface's order: coded format first, then raw; the
	// aligned raw buffer cropped to the picture; rate, GOP and bitrate;
	// buffers; both queues streaming.
	want := strings.Join([]string{
		"S_FMT CAPTURE H264 1920x1080",
		"S_FMT OUTPUT NM12 1920x1088",
		"S_SELECTION 2 0 1920x1080",
		"S_PARM OUTPUT 1/30",
		"S_CTRL GOP_SIZE 30",
		"S_CTRL BITRATE_MODE 1",
		"S_CTRL BITRATE 2000000",
		"REQBUFS OUTPUT 2",
		"REQBUFS CAPTURE 4",
		"STREAMON OUTPUT",
		"STREAMON CAPTURE",
	}, "\n")
	if got := n.Trace(); got != want {
		t.Errorf("setup:\n%s\nwant:\n%s", got, want)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want = strings.Join([]string{
		"ENCODER_CMD 1",
		"STREAMOFF OUTPUT",
		"STREAMOFF CAPTURE",
		"REQBUFS OUTPUT 0",
		"REQBUFS CAPTURE 0",
		"close",
	}, "\n")
	if got := n.Trace(); got != want {
		t.Errorf("close:\n%s\nwant:\n%s", got, want)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := e.Encode(testContext(t), testFrame(64, 64, 0)); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Encode after Close: %v, want ErrClosed", err)
	}
	if err := e.SetBitrate(1); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("SetBitrate after Close: %v, want ErrClosed", err)
	}
}

// TestEncodeLayouts sends pictures through every raw layout, with strides
// and aligned heights, and checks the device saw them unchanged.
func TestEncodeLayouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mplane bool
		raw    uint32
		align  int
		extra  int
	}{
		{"I420", false, v4l2.PixFmtYUV420, 1, 0},
		{"I420 strided", false, v4l2.PixFmtYUV420, 16, 32},
		{"NV12", false, v4l2.PixFmtNV12, 16, 0},
		{"NV12 strided", false, v4l2.PixFmtNV12, 32, 64},
		{"I420 mplane", true, v4l2.PixFmtYUV420, 16, 16},
		{"YUV420M", true, v4l2.PixFmtYUV420M, 16, 32},
		{"NV12M", true, v4l2.PixFmtNV12M, 16, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &fakeNode{role: "encoder", mplane: tc.mplane, driver: "fake", bus: "platform:fake", coded: v4l2.PixFmtFWHT,
				raw: []uint32{tc.raw}, align: tc.align, strideExtra: tc.extra, maxW: 1920, maxH: 1080}
			_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 200, Height: 120, FPS: 30}, nil)
			for i := range 3 {
				encodeOne(t, e, 200, 120, i)
			}
		})
	}
}

func TestEncoderKeyframes(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    *fakeNode
		cfg  hal.VideoEncoderConfig
		// how a forced keyframe shows in the trace
		force string
	}{
		{"control, flags", h264Encoder(), h264Cfg(320, 240), "S_CTRL FORCE_KEY_FRAME 1"},
		// SPS and PPS come in a buffer of their own, flagged or not: the
		// frame is still one EncodedFrame, a keyframe by its IDR.
		{"parameter sets apart", func() *fakeNode { n := h264Encoder(); n.splitParams = true; return n }(), h264Cfg(320, 240), "S_CTRL FORCE_KEY_FRAME 1"},
		{"parameter sets apart, no flags", func() *fakeNode { n := h264Encoder(); n.splitParams, n.flagFrames = true, false; return n }(), h264Cfg(320, 240), "S_CTRL FORCE_KEY_FRAME 1"},
		// vicodec: no control, no flags: the stream restarts and the
		// keyframe is read from the FWHT header.
		{"reset, bitstream", fwhtEncoder(), hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30, KeyframeInterval: 200 * time.Millisecond}, "STREAMOFF CAPTURE\nSTREAMON CAPTURE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, e := openEncoder(t, tc.n, tc.cfg, nil)
			gop := int(tc.cfg.KeyframeInterval * 30 / time.Second)
			var keys []bool
			for i := range 2 * gop {
				keys = append(keys, encodeOne(t, e, 320, 240, i).Keyframe)
			}
			for i, k := range keys {
				if k != (i%gop == 0) {
					t.Errorf("frame %d keyframe %v, want one every %d frames: %v", i, k, gop, keys)
					break
				}
			}
			tc.n.Trace()
			e.ForceKeyframe()
			if !encodeOne(t, e, 320, 240, 2*gop+1).Keyframe {
				t.Error("frame after ForceKeyframe is not a keyframe")
			}
			if tr := tc.n.Trace(); !strings.Contains(tr, tc.force) {
				t.Errorf("ForceKeyframe did:\n%s\nwant %q", tr, tc.force)
			}
			if encodeOne(t, e, 320, 240, 2*gop+2).Keyframe {
				t.Error("the frame after the forced one is a keyframe too")
			}
		})
	}
}

func TestEncoderBitrate(t *testing.T) {
	n := h264Encoder()
	_, e := openEncoder(t, n, h264Cfg(320, 240), nil)
	encodeOne(t, e, 320, 240, 0)
	n.Trace()
	if err := e.SetBitrate(0); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("SetBitrate(0): %v", err)
	}
	if err := e.SetBitrate(50_000_000); err != nil {
		t.Fatal(err)
	}
	encodeOne(t, e, 320, 240, 1)
	// Clamped to the control's maximum.
	if tr := n.Trace(); !strings.Contains(tr, "S_CTRL BITRATE 8000000") {
		t.Errorf("after SetBitrate: %s", tr)
	}
	encodeOne(t, e, 320, 240, 2)
	if tr := n.Trace(); strings.Contains(tr, "BITRATE") {
		t.Errorf("bitrate set again although unchanged: %s", tr)
	}
	// A device without the control encodes on at its own rate.
	v := fwhtEncoder()
	_, e = openEncoder(t, v, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
	if err := e.SetBitrate(300_000); err != nil {
		t.Errorf("SetBitrate without a control: %v", err)
	}
	encodeOne(t, e, 320, 240, 0)
}

func TestEncoderSizeChange(t *testing.T) {
	n := fwhtEncoder()
	_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
	for i := range 3 {
		encodeOne(t, e, 320, 240, i)
	}
	n.Trace()
	if c := encodeOne(t, e, 160, 120, 3); !c.Keyframe {
		t.Error("first frame at the new size is not a keyframe")
	}
	tr := n.Trace()
	for _, want := range []string{"STREAMOFF OUTPUT", "REQBUFS OUTPUT 0", "S_FMT CAPTURE FWHT 160x120", "S_FMT OUTPUT YU12 160x120", "STREAMON CAPTURE"} {
		if !strings.Contains(tr, want) {
			t.Errorf("size change did not %q:\n%s", want, tr)
		}
	}
	encodeOne(t, e, 160, 120, 4)
}

func TestEncoderRejects(t *testing.T) {
	n := fwhtEncoder()
	f, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
	ctx := testContext(t)
	for _, fr := range []hal.VideoFrame{
		{Width: 320, Height: 240, Format: hal.PixelNV12, Data: make([]byte, 320*240*3/2)},
		{Width: 321, Height: 240, Format: hal.PixelI420, Data: make([]byte, 321*240*3/2)},
		{Width: 320, Height: 240, Format: hal.PixelI420, Data: make([]byte, 100)},
	} {
		if _, err := e.Encode(ctx, fr); !errors.Is(err, ErrInvalidFrame) {
			t.Errorf("Encode(%dx%d %s, %d bytes): %v, want ErrInvalidFrame", fr.Width, fr.Height, fr.Format, len(fr.Data), err)
		}
	}
	if _, err := f.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecVP8, Width: 320, Height: 240, FPS: 30}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("VP8 on an FWHT encoder: %v", err)
	}
	if _, err := f.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("FPS 0: %v", err)
	}
}

func TestEncoderFailures(t *testing.T) {
	t.Run("stall", func(t *testing.T) {
		n := fwhtEncoder()
		_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, func(c *Config) { c.FrameTimeout = 50 * time.Millisecond })
		n.stall = true
		start := time.Now()
		_, err := e.Encode(testContext(t), testFrame(320, 240, 0))
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Encode on a stalled device: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("gave up after %v", d)
		}
	})
	t.Run("error flag", func(t *testing.T) {
		n := fwhtEncoder()
		_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
		n.errorFlag = true
		if _, err := e.Encode(testContext(t), testFrame(320, 240, 0)); !errors.Is(err, ErrDevice) {
			t.Errorf("Encode with a failed buffer: %v, want ErrDevice", err)
		}
	})
	t.Run("unplugged", func(t *testing.T) {
		n := fwhtEncoder()
		_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
		n.ioctlErr = map[uint32]error{v4l2.IoctlQBuf: unix.ENODEV}
		if _, err := e.Encode(testContext(t), testFrame(320, 240, 0)); !errors.Is(err, hal.ErrUnplugged) {
			t.Errorf("Encode on a vanished device: %v, want ErrUnplugged", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		n := fwhtEncoder()
		_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, nil)
		n.stall = true
		ctx, cancel := context.WithTimeout(testContext(t), 30*time.Millisecond)
		defer cancel()
		if _, err := e.Encode(ctx, testFrame(320, 240, 0)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Encode past its context: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("close wakes encode", func(t *testing.T) {
		n := fwhtEncoder()
		_, e := openEncoder(t, n, hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 320, Height: 240, FPS: 30}, func(c *Config) { c.FrameTimeout = time.Minute })
		n.stall = true
		done := make(chan error)
		go func() {
			_, err := e.Encode(testContext(t), testFrame(320, 240, 0))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // let Encode reach its wait
		closed := make(chan error)
		go func() { closed <- e.Close() }()
		select {
		case err := <-done:
			if !errors.Is(err, hal.ErrClosed) {
				t.Errorf("Encode interrupted by Close: %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake Encode")
		}
		<-closed
	})
}
