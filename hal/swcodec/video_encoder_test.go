package swcodec

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

func TestFactoriesInfo(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		dev    hal.Device
		id     string
		kind   hal.Kind
		codecs []hal.CodecCaps
	}{
		{NewVideoEncoders(nil), VideoEncoderID, hal.KindVideoEncoder, NewVideoEncoders(nil).Codecs()},
		{NewVideoDecoders(nil), VideoDecoderID, hal.KindVideoDecoder, NewVideoDecoders(nil).Codecs()},
		{NewAudioEncoders(nil), AudioEncoderID, hal.KindAudioEncoder, NewAudioEncoders(nil).Codecs()},
		{NewAudioDecoders(nil), AudioDecoderID, hal.KindAudioDecoder, NewAudioDecoders(nil).Codecs()},
	} {
		info := tc.dev.Info()
		if info.ID != tc.id || info.Kind != tc.kind || info.Driver != "software" || info.Simulated || info.Name == "" {
			t.Errorf("Info() = %+v, want ID %q, Kind %q, Driver software", info, tc.id, tc.kind)
		}
		for _, c := range tc.codecs {
			if c.Hardware || c.MaxSessions != 0 {
				t.Errorf("%s: caps %+v: software codecs have no session limit and no hardware", tc.id, c)
			}
		}
	}
	var got []hal.Codec
	for _, c := range NewVideoEncoders(nil).Codecs() {
		got = append(got, c.Codec)
		if c.MaxWidth != 1920 || c.MaxHeight != 1080 {
			t.Errorf("encoder caps %+v, want 1920x1080", c)
		}
	}
	if len(got) != 2 || got[0] != hal.CodecH264 || got[1] != hal.CodecVP8 {
		t.Errorf("encoder codecs %v, want [H264 VP8]", got)
	}
	if c := NewVideoDecoders(nil).Codecs(); len(c) != 1 || c[0].Codec != hal.CodecVP8 {
		t.Errorf("decoder codecs %+v, want VP8 only", c)
	}
}

func TestVideoEncoderInvalidConfig(t *testing.T) {
	checkLeaks(t)
	good := hal.VideoEncoderConfig{Codec: hal.CodecVP8, Width: 640, Height: 360, FPS: 30, BitrateBps: 500_000}
	for _, tc := range []struct {
		name    string
		change  func(*hal.VideoEncoderConfig)
		want    error
		message string
	}{
		{"odd width", func(c *hal.VideoEncoderConfig) { c.Width = 641 }, ErrInvalidConfig, "must be even"},
		{"odd height", func(c *hal.VideoEncoderConfig) { c.Codec, c.Height = hal.CodecH264, 361 }, ErrInvalidConfig, "must be even"},
		{"zero size", func(c *hal.VideoEncoderConfig) { c.Width, c.Height = 0, 0 }, ErrInvalidConfig, "size 0x0"},
		{"too large", func(c *hal.VideoEncoderConfig) { c.Width, c.Height = 3840, 2160 }, ErrInvalidConfig, "1920x1080"},
		{"zero bitrate", func(c *hal.VideoEncoderConfig) { c.BitrateBps = 0 }, ErrInvalidConfig, "bitrate must be from"},
		{"zero fps", func(c *hal.VideoEncoderConfig) { c.FPS = 0 }, ErrInvalidConfig, "FPS must be from 1"},
		{"negative keyframe interval", func(c *hal.VideoEncoderConfig) { c.KeyframeInterval = -time.Second }, ErrInvalidConfig, "KeyframeInterval"},
		{"VP9", func(c *hal.VideoEncoderConfig) { c.Codec = hal.CodecVP9 }, ErrUnsupportedCodec, "VP9"},
		{"unknown codec", func(c *hal.VideoEncoderConfig) { c.Codec = "AV1" }, ErrUnsupportedCodec, "AV1"},
		{"Opus", func(c *hal.VideoEncoderConfig) { c.Codec = hal.CodecOpus }, ErrUnsupportedCodec, "Opus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(t.Context(), cfg)
			if err == nil {
				enc.Close()
				t.Fatalf("NewVideoEncoder(%+v) succeeded", cfg)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("NewVideoEncoder(%+v) = %v; want %v mentioning %q", cfg, err, tc.want, tc.message)
			}
		})
	}
}

func TestVideoEncoderBadFramesAndClose(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		t.Run(string(c), func(t *testing.T) {
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: c, Width: 64, Height: 48, FPS: 30, BitrateBps: 100_000})
			if err != nil {
				t.Fatal(err)
			}
			frame := hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: make([]byte, i420Size(64, 48))}
			for _, bad := range []struct {
				name   string
				change func(*hal.VideoFrame)
			}{
				{"NV12", func(f *hal.VideoFrame) { f.Format = hal.PixelNV12 }},
				{"odd width", func(f *hal.VideoFrame) { f.Width = 63 }},
				{"short data", func(f *hal.VideoFrame) { f.Data = f.Data[:100] }},
			} {
				f := frame
				bad.change(&f)
				if _, err := enc.Encode(ctx, f); !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("Encode(%s) = %v, want ErrInvalidConfig", bad.name, err)
				}
			}
			if err := enc.SetBitrate(0); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("SetBitrate(0) = %v, want ErrInvalidConfig", err)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := enc.Encode(cancelled, frame); !errors.Is(err, context.Canceled) {
				t.Errorf("Encode with a cancelled context = %v", err)
			}
			if out, err := enc.Encode(ctx, frame); err != nil || len(out) != 1 || !out[0].Keyframe {
				t.Errorf("Encode after bad frames = %d frames, %v; want one keyframe", len(out), err)
			}
			if err := enc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := enc.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := enc.Encode(ctx, frame); !errors.Is(err, hal.ErrClosed) {
				t.Errorf("Encode after Close = %v, want ErrClosed", err)
			}
			if err := enc.SetBitrate(200_000); !errors.Is(err, hal.ErrClosed) {
				t.Errorf("SetBitrate after Close = %v, want ErrClosed", err)
			}
			enc.ForceKeyframe() // must not panic
		})
	}
}

// nalTypes lists the NAL unit types of an Annex-B access unit.
func nalTypes(au []byte) []int {
	var types []int
	for _, nal := range annexBNALs(au) {
		types = append(types, int(nal[0]&0x1f))
	}
	return types
}

func hasNAL(types []int, want int) bool {
	for _, t := range types {
		if t == want {
			return true
		}
	}
	return false
}

// TestH264AnnexB checks the stream a late-joining receiver depends on: the
// first frame and every forced keyframe carry SPS, PPS and an IDR slice, in
// that order, the SPS says Constrained Baseline, and the frames between are
// non-IDR slices without parameter sets.
func TestH264AnnexB(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	cam := openCamera(t, 640, 360)
	enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: hal.CodecH264, Width: 640, Height: 360, FPS: 30, BitrateBps: 1_000_000,
		KeyframeInterval: time.Minute, // only the forced keyframes
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	forced := map[int]bool{0: true, 10: true, 11: true, 25: true}
	for i := range 30 {
		if forced[i] && i > 0 {
			enc.ForceKeyframe()
			enc.ForceKeyframe() // twice before one frame still means one keyframe
		}
		f := cam.next(t)
		out, err := enc.Encode(ctx, f)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(out) != 1 {
			t.Fatalf("frame %d: %d encoded frames, want exactly 1 (zero latency)", i, len(out))
		}
		ef := out[0]
		if ef.Codec != hal.CodecH264 || !ef.CapturedAt.Equal(f.CapturedAt) || ef.Duration != time.Second/30 {
			t.Errorf("frame %d: Codec %s CapturedAt %v Duration %v; want H264, %v, 33.3ms", i, ef.Codec, ef.CapturedAt, ef.Duration, f.CapturedAt)
		}
		if !(len(ef.Data) > 4 && ef.Data[0] == 0 && ef.Data[1] == 0 && (ef.Data[2] == 1 || ef.Data[2] == 0 && ef.Data[3] == 1)) {
			t.Fatalf("frame %d does not start with an Annex-B start code: % x", i, ef.Data[:min(8, len(ef.Data))])
		}
		types := nalTypes(ef.Data)
		if ef.Keyframe != forced[i] {
			t.Errorf("frame %d: Keyframe = %v, want %v (NAL types %v)", i, ef.Keyframe, forced[i], types)
		}
		if !forced[i] {
			if hasNAL(types, naluIDR) || hasNAL(types, naluSPS) || hasNAL(types, naluPPS) || !hasNAL(types, naluSlice) {
				t.Errorf("frame %d: NAL types %v, want non-IDR slices only", i, types)
			}
			continue
		}
		sps, pps, idr := -1, -1, -1
		for j, typ := range types {
			switch {
			case typ == naluSPS && sps < 0:
				sps = j
			case typ == naluPPS && pps < 0:
				pps = j
			case typ == naluIDR && idr < 0:
				idr = j
			}
		}
		if sps < 0 || pps < sps || idr < pps {
			t.Errorf("keyframe %d: NAL types %v, want SPS, PPS, then IDR", i, types)
			continue
		}
		// profile_idc 66 with constraint_set1_flag is Constrained Baseline
		// (H.264 A.2.1.1), profile-level-id 42e0xx/42c0xx in SDP.
		s := annexBNALs(ef.Data)[sps]
		if profile, flags := s[1], s[2]; profile != 66 || flags&0x40 == 0 {
			t.Errorf("keyframe %d: SPS profile_idc %d constraint flags %#x, want 66 with constraint_set1", i, profile, flags)
		}
	}
}

func TestForceKeyframe(t *testing.T) {
	checkLeaks(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		t.Run(string(c), func(t *testing.T) {
			ctx := testContext(t)
			cam := openCamera(t, 320, 180)
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
				Codec: c, Width: 320, Height: 180, FPS: 30, BitrateBps: 300_000, KeyframeInterval: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { enc.Close() })
			var keys []int
			for i := range 40 {
				if i == 7 || i == 20 || i == 21 {
					enc.ForceKeyframe()
				}
				out, err := enc.Encode(ctx, cam.next(t))
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if len(out) != 1 {
					t.Fatalf("frame %d: %d encoded frames, want 1", i, len(out))
				}
				if out[0].Keyframe {
					keys = append(keys, i)
				}
			}
			if want := []int{0, 7, 20, 21}; !slices.Equal(keys, want) {
				t.Errorf("keyframes at %v, want %v", keys, want)
			}
		})
	}
}

func TestKeyframeInterval(t *testing.T) {
	checkLeaks(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		t.Run(string(c), func(t *testing.T) {
			ctx := testContext(t)
			cam := openCamera(t, 320, 180)
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
				Codec: c, Width: 320, Height: 180, FPS: 30, BitrateBps: 300_000, KeyframeInterval: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { enc.Close() })
			var keys []int
			for i := range 50 {
				out, err := enc.Encode(ctx, cam.next(t))
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if len(out) == 1 && out[0].Keyframe {
					keys = append(keys, i)
				}
			}
			// 500 ms at 30 fps is 15 frames: the encoder may place a keyframe
			// earlier (a scene cut) but never further apart.
			if len(keys) < 4 || keys[0] != 0 {
				t.Fatalf("keyframes at %v, want one at least every 15 frames from 0", keys)
			}
			for i := 1; i < len(keys); i++ {
				if keys[i]-keys[i-1] > 15 {
					t.Errorf("keyframes at %v: %d frames apart, want at most 15", keys, keys[i]-keys[i-1])
				}
			}
		})
	}
}

// encodeRun encodes n textured camera frames and returns their sizes;
// before is called before frame i.
func encodeRun(t *testing.T, enc hal.VideoEncoder, cam *camera, n int, before func(i int)) []int {
	t.Helper()
	ctx := testContext(t)
	sizes := make([]int, n)
	for i := range n {
		if before != nil {
			before(i)
		}
		f := cam.next(t)
		addTexture(f, i)
		out, err := enc.Encode(ctx, f)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		for _, o := range out {
			sizes[i] += len(o.Data)
		}
	}
	return sizes
}

func meanSize(sizes []int) float64 {
	sum := 0
	for _, s := range sizes {
		sum += s
	}
	return float64(sum) / float64(len(sizes))
}

// TestBitrateMatchesTarget checks that the output is close to the requested
// bitrate at 15 and 30 fps, once the first keyframe's burst is paid back:
// for x264 that tests the x264AssumedFPS correction, for VP8 that libvpx
// sees the capture times.
func TestBitrateMatchesTarget(t *testing.T) {
	checkLeaks(t)
	const target = 1_000_000
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		for _, fps := range []int{15, 30} {
			t.Run(string(c)+"@"+strconv.Itoa(fps), func(t *testing.T) {
				ctx := testContext(t)
				cam := openCameraFPS(t, 640, 360, fps)
				enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
					Codec: c, Width: 640, Height: 360, FPS: fps, BitrateBps: target, KeyframeInterval: time.Minute,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { enc.Close() })
				sizes := encodeRun(t, enc, cam, 3*fps, nil)
				got := meanSize(sizes[fps:]) * 8 * float64(fps)
				t.Logf("%s at %d fps: %.0f kbps for a %d kbps target", c, fps, got/1000, target/1000)
				if got < 0.7*target || got > 1.3*target {
					t.Errorf("%s at %d fps: %.0f kbps, want %d kbps ± 30%%", c, fps, got/1000, target/1000)
				}
			})
		}
	}
}

// TestSetBitrateLive lowers the bitrate mid-stream and checks that the
// frames shrink accordingly, without a keyframe.
func TestSetBitrateLive(t *testing.T) {
	checkLeaks(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		t.Run(string(c), func(t *testing.T) {
			ctx := testContext(t)
			cam := openCamera(t, 640, 360)
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
				Codec: c, Width: 640, Height: 360, FPS: 30, BitrateBps: 1_500_000, KeyframeInterval: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { enc.Close() })
			const change = 60
			sizes := encodeRun(t, enc, cam, 150, func(i int) {
				if i == change {
					if err := enc.SetBitrate(300_000); err != nil {
						t.Fatalf("SetBitrate: %v", err)
					}
				}
			})
			before := meanSize(sizes[change-30 : change])
			after := meanSize(sizes[len(sizes)-30:])
			t.Logf("%s: %.0f bytes/frame at 1.5 Mbps, %.0f after lowering to 300 kbps", c, before, after)
			if after > before/2.5 {
				t.Errorf("%s: frames went from %.0f to %.0f bytes on a 5x bitrate cut; want at most %.0f", c, before, after, before/2.5)
			}
		})
	}
}

// TestEncoderConcurrentControl calls ForceKeyframe and SetBitrate from other
// goroutines while frames are encoded, as RTCP and congestion control do;
// the race detector checks the rest.
func TestEncoderConcurrentControl(t *testing.T) {
	checkLeaks(t)
	for _, c := range []hal.Codec{hal.CodecH264, hal.CodecVP8} {
		t.Run(string(c), func(t *testing.T) {
			ctx := testContext(t)
			cam := openCamera(t, 320, 180)
			enc, err := NewVideoEncoders(nil).NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: c, Width: 320, Height: 180, FPS: 30, BitrateBps: 300_000})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					enc.ForceKeyframe()
					if err := enc.SetBitrate(100_000 + i%10*50_000); err != nil {
						t.Errorf("SetBitrate: %v", err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
			for i := range 30 {
				if _, err := enc.Encode(ctx, cam.next(t)); err != nil {
					t.Errorf("frame %d: %v", i, err)
				}
			}
			close(done)
			wg.Wait()
			if err := enc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}
