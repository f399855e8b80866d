package codecsel

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

var fwht720 = hal.CodecCaps{Codec: hal.CodecFWHT, MaxWidth: 1920, MaxHeight: 1080}

func encCfg() hal.VideoEncoderConfig {
	return hal.VideoEncoderConfig{Codec: hal.CodecFWHT, Width: 64, Height: 48, FPS: 30, BitrateBps: 300_000}
}

// stream feeds numbered frames to an encoder through one reused buffer, as
// a capture loop with a ring of buffers would, and checks what comes out.
type stream struct {
	t    *testing.T
	enc  hal.VideoEncoder
	buf  []byte
	next int
	crcs map[time.Time]uint32 // the input's checksum by CapturedAt
	out  []hal.EncodedFrame
}

func newStream(t *testing.T, enc hal.VideoEncoder) *stream {
	return &stream{t: t, enc: enc, buf: make([]byte, 64*48*3/2), crcs: make(map[time.Time]uint32)}
}

func frameTime(i int) time.Time { return epoch.Add(time.Duration(i) * 33 * time.Millisecond) }

// encode feeds n frames and returns their outputs.
func (s *stream) encode(ctx context.Context, n int) []hal.EncodedFrame {
	s.t.Helper()
	var got []hal.EncodedFrame
	for range n {
		i := s.next
		s.next++
		for j := range s.buf {
			s.buf[j] = byte(i*7 + j)
		}
		at := frameTime(i)
		s.crcs[at] = crc32.ChecksumIEEE(s.buf)
		out, err := s.enc.Encode(ctx, hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: s.buf, Seq: uint64(i), CapturedAt: at})
		if err != nil {
			s.t.Fatalf("encode frame %d: %v", i, err)
		}
		got = append(got, out...)
	}
	s.out = append(s.out, got...)
	return got
}

// checkEach checks that every input so far came out exactly once, encoded
// from the input's own data, and returns the path of each output in order.
func (s *stream) checkEach() []string {
	s.t.Helper()
	seen := make(map[time.Time]int)
	var paths []string
	for _, o := range s.out {
		seen[o.CapturedAt]++
		name, crc, _ := strings.Cut(string(o.Data), ":")
		paths = append(paths, name)
		if want := fmt.Sprintf("%08x", s.crcs[o.CapturedAt]); crc != want {
			s.t.Errorf("output for %v encoded data with crc %s, the input had %s", o.CapturedAt.Sub(epoch), crc, want)
		}
	}
	for i := range s.next {
		if n := seen[frameTime(i)]; n != 1 {
			s.t.Errorf("frame %d came out %d times, want once", i, n)
		}
	}
	if len(s.out) != s.next {
		s.t.Errorf("%d outputs for %d inputs", len(s.out), s.next)
	}
	return paths
}

func newEncoders(t *testing.T, opts Options, fs ...*fakeFactory) (*Encoders, *fakeClock, *logRecorder) {
	t.Helper()
	clock := newFakeClock()
	logs := &logRecorder{}
	opts.Clock, opts.Logger = clock, slog.New(logs)
	var list []hal.VideoEncoderFactory
	for _, f := range fs {
		f.clock = clock
		list = append(list, f)
	}
	return NewEncoders(list, opts), clock, logs
}

func open(t *testing.T, e *Encoders, cfg hal.VideoEncoderConfig) hal.VideoEncoder {
	t.Helper()
	enc, err := e.NewVideoEncoder(testContext(t), cfg)
	if err != nil {
		t.Fatalf("NewVideoEncoder: %v", err)
	}
	t.Cleanup(func() {
		if err := enc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return enc
}

func pathOfEnc(t *testing.T, v any) Path {
	t.Helper()
	r, ok := v.(PathReporter)
	if !ok {
		t.Fatalf("%T does not implement PathReporter", v)
	}
	return r.CodecPath()
}

func TestEncoderPrefersHardware(t *testing.T) {
	checkLeaks(t)
	sw := newFake("sw", false, behavior{}, fwht720)
	hw := newFake("hw", true, behavior{}, fwht720)
	// Software listed first: hardware still wins.
	e, clock, _ := newEncoders(t, Options{}, sw, hw)
	enc := open(t, e, encCfg())
	p := pathOfEnc(t, enc)
	want := Path{Device: "hw", Name: "fake hw", Driver: "fake-hw", Hardware: true, Reason: ReasonHardware, Since: clock.Now()}
	if p != want {
		t.Errorf("path = %+v, want %+v", p, want)
	}
	s := newStream(t, enc)
	s.encode(testContext(t), 5)
	for i, name := range s.checkEach() {
		if name != "hw#1" {
			t.Errorf("output %d from %s, want hw#1", i, name)
		}
	}
	if n := e.Sessions("hw"); n != 1 {
		t.Errorf("Sessions(hw) = %d, want 1", n)
	}
}

func TestEncoderSoftwareWhenHardwareCannot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hw     *fakeFactory
		cfg    func(*hal.VideoEncoderConfig)
		reason Reason
		detail string
	}{
		{"other codec", newFake("hw", true, behavior{}, hal.CodecCaps{Codec: hal.CodecH264, MaxWidth: 1920, MaxHeight: 1080}), nil, ReasonNoHardware, ""},
		{"too large", newFake("hw", true, behavior{}, hal.CodecCaps{Codec: hal.CodecFWHT, MaxWidth: 32, MaxHeight: 32}), nil, ReasonNoHardware, ""},
		{"open fails", newFake("hw", true, behavior{openErr: errBroken}, fwht720), nil, ReasonOpenFailed, "open hw: fake hardware broke"},
		{"busy at open", newFake("hw", true, behavior{busyAfter: -1}, fwht720), nil, ReasonSessionLimit, "open hw: device busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			sw := newFake("sw", false, behavior{}, fwht720)
			e, _, _ := newEncoders(t, Options{}, tc.hw, sw)
			enc := open(t, e, encCfg())
			p := pathOfEnc(t, enc)
			if p.Device != "sw" || p.Hardware || p.Reason != tc.reason || p.Detail != tc.detail || p.Fallbacks != 0 {
				t.Errorf("path = %+v, want sw for %s (%q)", p, tc.reason, tc.detail)
			}
			if n := tc.hw.openSessions(); n != 0 {
				t.Errorf("%d hardware sessions open", n)
			}
			if n := e.Sessions("hw"); n != 0 {
				t.Errorf("Sessions(hw) = %d, want 0", n)
			}
		})
	}
}

func TestEncoderSessionLimit(t *testing.T) {
	checkLeaks(t)
	caps := fwht720
	caps.MaxSessions = 2
	hw := newFake("hw", true, behavior{}, caps)
	sw := newFake("sw", false, behavior{}, fwht720)
	e, _, _ := newEncoders(t, Options{}, hw, sw)
	ctx := testContext(t)
	var encs []hal.VideoEncoder
	for range 3 {
		enc, err := e.NewVideoEncoder(ctx, encCfg())
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, enc)
	}
	for i, want := range []Reason{ReasonHardware, ReasonHardware, ReasonSessionLimit} {
		if p := pathOfEnc(t, encs[i]); p.Reason != want || p.Hardware != (want == ReasonHardware) {
			t.Errorf("session %d: path %+v, want reason %s", i, p, want)
		}
	}
	if n := e.Sessions("hw"); n != 2 {
		t.Errorf("Sessions(hw) = %d, want 2", n)
	}
	// A closed hardware session frees its slot for the next one.
	if err := encs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := encs[0].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := e.Sessions("hw"); n != 1 {
		t.Errorf("after Close: Sessions(hw) = %d, want 1", n)
	}
	enc, err := e.NewVideoEncoder(ctx, encCfg())
	if err != nil {
		t.Fatal(err)
	}
	encs = append(encs, enc)
	if p := pathOfEnc(t, enc); !p.Hardware {
		t.Errorf("after a slot was freed: path %+v, want hardware", p)
	}
	for _, enc := range encs {
		if err := enc.Close(); err != nil {
			t.Error(err)
		}
	}
	if n := e.Sessions("hw") + e.Sessions("sw"); n != 0 {
		t.Errorf("after closing all: %d sessions counted", n)
	}
	if n := hw.openSessions(); n != 0 {
		t.Errorf("%d fake hardware sessions left open", n)
	}
}

// TestEncoderFallback runs every way hardware can fail mid-stream, with and
// without a pipeline, and checks what the caller sees.
func TestEncoderFallback(t *testing.T) {
	for _, tc := range []struct {
		name        string
		b           behavior
		stallFrames int
		reason      Reason
		detail      string
	}{
		{"error", behavior{failAfter: 10}, 4, ReasonError, "hw#1 call 11: fake hardware broke"},
		{"error pipelined", behavior{failAfter: 10, delay: 2}, 4, ReasonError, "hw#1 call 11: fake hardware broke"},
		{"quiet", behavior{quietAfter: 10}, 4, ReasonStall, "no output for 4 frames"},
		{"quiet pipelined", behavior{quietAfter: 10, delay: 3}, 4, ReasonStall, "no output for 4 frames"},
		// 300 ms a call: the default 1 s budget runs out in the 4th quiet call.
		{"slow", behavior{quietAfter: 10, cost: 300 * time.Millisecond}, 0, ReasonStall, "no output after 1.2s in the encoder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			hw := newFake("hw", true, tc.b, fwht720)
			sw := newFake("sw", false, behavior{}, fwht720)
			e, clock, logs := newEncoders(t, Options{StallFrames: tc.stallFrames}, hw, sw)
			enc := open(t, e, encCfg())
			ctx := testContext(t)
			if err := enc.SetBitrate(450_000); err != nil {
				t.Fatal(err)
			}
			s := newStream(t, enc)
			s.encode(ctx, 30)
			paths := s.checkEach()
			// Outputs are in input order, hardware then software.
			for i, o := range s.out {
				if want := frameTime(i); !o.CapturedAt.Equal(want) {
					t.Fatalf("output %d is for %v, want %v", i, o.CapturedAt.Sub(epoch), want.Sub(epoch))
				}
			}
			first := -1
			for i, p := range paths {
				if p == "sw#1" && first < 0 {
					first = i
				}
				if first >= 0 && p != "sw#1" || first < 0 && p != "hw#1" {
					t.Fatalf("output paths %v: want hw#1 then sw#1 only", paths)
				}
			}
			if first < 0 {
				t.Fatalf("never fell back: %v", paths)
			}
			if !s.out[first].Keyframe {
				t.Errorf("first software output (frame %d) is not a keyframe", first)
			}
			p := pathOfEnc(t, enc)
			want := Path{Device: "sw", Name: "fake sw", Driver: "software", Reason: tc.reason, Detail: tc.detail, Fallbacks: 1, Since: clock.Now()}
			if p != want {
				t.Errorf("path = %+v\nwant   %+v", p, want)
			}
			if got := sw.encCfgs[0].BitrateBps; got != 450_000 {
				t.Errorf("software session opened at %d bps, want the 450000 set on hardware", got)
			}
			if msg, ok := logs.find("WARN", "continuing in software", "device=hw", "reason="+string(tc.reason)); !ok {
				t.Errorf("no fallback warning in the log: %q", logs.msgs)
			} else {
				t.Log(msg)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			if hw.openSessions() != 0 || sw.openSessions() != 0 {
				t.Errorf("sessions left open: hw %d, sw %d", hw.openSessions(), sw.openSessions())
			}
			if n := e.Sessions("hw") + e.Sessions("sw"); n != 0 {
				t.Errorf("%d sessions still counted", n)
			}
		})
	}
}

// TestEncoderBlockedCall checks that a hardware call that never returns is
// abandoned after the stall timeout and its frame encoded in software.
func TestEncoderBlockedCall(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{blockAfter: 3}, fwht720)
	sw := newFake("sw", false, behavior{}, fwht720)
	e, clock, _ := newEncoders(t, Options{StallTimeout: 500 * time.Millisecond}, hw, sw)
	enc := open(t, e, encCfg())
	ctx := testContext(t)
	s := newStream(t, enc)
	s.encode(ctx, 3)

	done := make(chan []hal.EncodedFrame)
	go func() { done <- s.encode(ctx, 1) }()
	clock.waitTimers(ctx, t, 1)
	clock.Advance(499 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("Encode returned before the stall timeout")
	case <-time.After(20 * time.Millisecond):
	}
	clock.Advance(time.Millisecond)
	var out []hal.EncodedFrame
	select {
	case out = <-done:
	case <-ctx.Done():
		t.Fatal("Encode still blocked after the stall timeout")
	}
	if len(out) != 1 || pathOfData(out[0].Data) != "sw#1" || !out[0].Keyframe {
		t.Errorf("blocked frame came out as %+v, want one software keyframe", out)
	}
	if p := pathOfEnc(t, enc); p.Reason != ReasonStall || p.Hardware || !strings.Contains(p.Detail, "blocked past the stall timeout of 500ms") {
		t.Errorf("path = %+v, want software after a stall", p)
	}
	s.encode(ctx, 5)
	s.checkEach()
}

func TestEncoderCallerCancelIsNotAFailure(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{blockAfter: 1}, fwht720)
	sw := newFake("sw", false, behavior{}, fwht720)
	e, _, _ := newEncoders(t, Options{}, hw, sw)
	enc := open(t, e, encCfg())
	s := newStream(t, enc)
	s.encode(testContext(t), 1)
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	_, err := enc.Encode(ctx, hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: s.buf, CapturedAt: frameTime(1)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Encode with a cancelled context: %v, want context.Canceled", err)
	}
	if p := pathOfEnc(t, enc); !p.Hardware {
		t.Errorf("path = %+v, want still hardware", p)
	}
}

func TestEncoderKeyframeAndBitrate(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{}, fwht720)
	e, _, _ := newEncoders(t, Options{}, hw)
	enc := open(t, e, encCfg())
	ctx := testContext(t)
	s := newStream(t, enc)
	s.encode(ctx, 3)
	enc.ForceKeyframe()
	out := s.encode(ctx, 2)
	if !out[0].Keyframe || out[1].Keyframe {
		t.Errorf("after ForceKeyframe: keyframes %v %v, want true false", out[0].Keyframe, out[1].Keyframe)
	}
	if err := enc.SetBitrate(10); err == nil {
		t.Error("SetBitrate(10) accepted a rate the session refuses")
	}
	if err := enc.SetBitrate(900_000); err != nil {
		t.Fatal(err)
	}
	if got := hw.session(0).getBitrate(); got != 900_000 {
		t.Errorf("session bitrate %d, want 900000", got)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.SetBitrate(900_000); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("SetBitrate after Close: %v, want ErrClosed", err)
	}
	if _, err := enc.Encode(ctx, hal.VideoFrame{}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Encode after Close: %v, want ErrClosed", err)
	}
}

func TestEncoderCooldown(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{failAfter: 2}, fwht720)
	sw := newFake("sw", false, behavior{}, fwht720)
	e, clock, _ := newEncoders(t, Options{Cooldown: time.Minute}, hw, sw)
	ctx := testContext(t)
	enc := open(t, e, encCfg())
	newStream(t, enc).encode(ctx, 3)
	if p := pathOfEnc(t, enc); p.Hardware {
		t.Fatalf("path = %+v, want software after the failure", p)
	}
	second := open(t, e, encCfg())
	if p := pathOfEnc(t, second); p.Hardware || p.Reason != ReasonCooldown {
		t.Errorf("during the cooldown: path %+v, want software for %s", p, ReasonCooldown)
	}
	clock.Advance(time.Minute)
	third := open(t, e, encCfg())
	if p := pathOfEnc(t, third); !p.Hardware {
		t.Errorf("after the cooldown: path %+v, want hardware", p)
	}
}

func TestEncoderNoSoftwareToFallBackTo(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{failAfter: 1}, fwht720)
	e, _, _ := newEncoders(t, Options{}, hw)
	enc := open(t, e, encCfg())
	ctx := testContext(t)
	s := newStream(t, enc)
	s.encode(ctx, 1)
	_, err := enc.Encode(ctx, hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: s.buf, CapturedAt: frameTime(1)})
	if !errors.Is(err, ErrNoCodec) {
		t.Errorf("Encode after the only codec failed: %v, want ErrNoCodec", err)
	}
	// The session does not go back to the failed hardware.
	_, err = enc.Encode(ctx, hal.VideoFrame{Width: 64, Height: 48, Format: hal.PixelI420, Data: s.buf, CapturedAt: frameTime(2)})
	if !errors.Is(err, ErrNoCodec) {
		t.Errorf("next Encode: %v, want ErrNoCodec", err)
	}
	if p := pathOfEnc(t, enc); p.Device != "" || p.Reason != ReasonError || p.Fallbacks != 1 {
		t.Errorf("path = %+v, want no device after %s", p, ReasonError)
	}
	if _, err := e.NewVideoEncoder(ctx, hal.VideoEncoderConfig{Codec: hal.CodecVP9}); !errors.Is(err, ErrNoCodec) {
		t.Errorf("NewVideoEncoder(VP9): %v, want ErrNoCodec", err)
	}
}

// TestEncoderConcurrentControl calls SetBitrate and ForceKeyframe while the
// session falls back, for the race detector.
func TestEncoderConcurrentControl(t *testing.T) {
	checkLeaks(t)
	hw := newFake("hw", true, behavior{failAfter: 20}, fwht720)
	sw := newFake("sw", false, behavior{}, fwht720)
	e, _, _ := newEncoders(t, Options{}, hw, sw)
	enc := open(t, e, encCfg())
	ctx, cancel := context.WithCancel(testContext(t))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := enc.SetBitrate(100_000 + i); err != nil {
				t.Error(err)
				return
			}
			enc.ForceKeyframe()
			_ = pathOfEnc(t, enc)
		}
	})
	s := newStream(t, enc)
	s.encode(ctx, 40)
	cancel()
	wg.Wait()
	s.checkEach()
	if p := pathOfEnc(t, enc); p.Hardware || p.Fallbacks != 1 {
		t.Errorf("path = %+v, want one fallback", p)
	}
	if sw.session(0).keyframesForced() == 0 {
		t.Error("software session never asked for a keyframe")
	}
}

func TestEncodersInfoAndCodecs(t *testing.T) {
	h264hw := hal.CodecCaps{Codec: hal.CodecH264, MaxWidth: 4096, MaxHeight: 2160, MaxSessions: 4}
	h264hw2 := hal.CodecCaps{Codec: hal.CodecH264, MaxWidth: 1920, MaxHeight: 1088, MaxSessions: 2}
	vp8sw := hal.CodecCaps{Codec: hal.CodecVP8, MaxWidth: 1920, MaxHeight: 1080}
	h264sw := hal.CodecCaps{Codec: hal.CodecH264, MaxWidth: 1920, MaxHeight: 1080}
	hw1 := newFake("hw1", true, behavior{}, h264hw)
	hw2 := newFake("hw2", true, behavior{}, h264hw2)
	sw := newFake("sw", false, behavior{}, h264sw, vp8sw)
	e, _, _ := newEncoders(t, Options{}, hw1, hw2)
	if got := e.Info(); got.ID != EncodersID || got.Kind != hal.KindVideoEncoder || got.Driver != DriverName {
		t.Errorf("Info = %+v", got)
	}
	got := fmt.Sprint(e.Codecs())
	if want := "[{H264 4096 2160 6 true}]"; got != want {
		t.Errorf("hardware only: Codecs = %s, want %s", got, want)
	}
	e.SetFactories([]hal.VideoEncoderFactory{hw1, sw})
	got = fmt.Sprint(e.Codecs())
	if want := "[{H264 4096 2160 0 true} {VP8 1920 1080 0 false}]"; got != want {
		t.Errorf("with software: Codecs = %s, want %s", got, want)
	}
}
