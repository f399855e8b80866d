package halbench

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/pixconv"
)

// fakeClock moves 1 ms at every reading, and as far as the fakes say.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time {
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// fakeCamera's stream hands out frames captured 20 ms before they are read.
type fakeCamera struct {
	clock   *fakeClock
	opened  []hal.VideoMode
	stream  *fakeStream
	readErr error
}

func (c *fakeCamera) Info() hal.Info                                         { return hal.Info{ID: "fake:cam", Kind: hal.KindCamera} }
func (c *fakeCamera) Controls() []hal.Control                                { return nil }
func (c *fakeCamera) Modes() []hal.VideoMode                                 { return nil }
func (c *fakeCamera) SetControl(context.Context, hal.ControlID, int64) error { return nil }
func (c *fakeCamera) Open(_ context.Context, m hal.VideoMode) (hal.VideoStream, error) {
	c.opened = append(c.opened, m)
	c.stream = &fakeStream{cam: c, mode: m}
	return c.stream, nil
}

type fakeStream struct {
	cam    *fakeCamera
	mode   hal.VideoMode
	seq    uint64
	closed bool
}

func (s *fakeStream) Mode() hal.VideoMode { return s.mode }
func (s *fakeStream) Close() error        { s.closed = true; return nil }
func (s *fakeStream) ReadFrame(context.Context) (hal.VideoFrame, error) {
	if s.cam.readErr != nil {
		return hal.VideoFrame{}, s.cam.readErr
	}
	w, h := s.mode.Width, s.mode.Height
	data := make([]byte, pixconv.I420Size(w, h))
	if s.mode.Format == hal.PixelYUYV {
		data = make([]byte, pixconv.YUYVSize(w, h))
	}
	for i := range data {
		data[i] = byte(int(s.seq) + i)
	}
	f := hal.VideoFrame{Width: w, Height: h, Format: s.mode.Format, Data: data, Seq: s.seq,
		CapturedAt: s.cam.clock.t.Add(-20 * time.Millisecond)}
	s.seq++
	return f, nil
}

// fakeEncoders' sessions take 7 ms of the clock, 5 ms of the process's CPU
// (2 ms of it in the kernel) and 9 ms of the machine's per frame, and return 100 bytes (or nothing).
type fakeEncoders struct {
	clock   *fakeClock
	cpu     CPUTimes
	configs []hal.VideoEncoderConfig
	frames  []hal.VideoFrame
	silent  bool
	closed  int
}

func (f *fakeEncoders) Info() hal.Info          { return hal.Info{ID: "fake:enc"} }
func (f *fakeEncoders) Codecs() []hal.CodecCaps { return nil }
func (f *fakeEncoders) NewVideoEncoder(_ context.Context, cfg hal.VideoEncoderConfig) (hal.VideoEncoder, error) {
	f.configs = append(f.configs, cfg)
	return fakeEncoder{f}, nil
}
func (f *fakeEncoders) readCPU() (CPUTimes, error) { return f.cpu, nil }

type fakeEncoder struct{ f *fakeEncoders }

func (e fakeEncoder) Encode(_ context.Context, frame hal.VideoFrame) ([]hal.EncodedFrame, error) {
	frame.Data = slices.Clone(frame.Data)
	e.f.frames = append(e.f.frames, frame)
	e.f.clock.t = e.f.clock.t.Add(7 * time.Millisecond)
	e.f.cpu.User += 3 * time.Millisecond
	e.f.cpu.System += 2 * time.Millisecond
	e.f.cpu.Machine += 9 * time.Millisecond
	if e.f.silent {
		return nil, nil
	}
	return []hal.EncodedFrame{{Codec: hal.CodecH264, Data: make([]byte, 100), CapturedAt: frame.CapturedAt}}, nil
}
func (e fakeEncoder) ForceKeyframe()       {}
func (e fakeEncoder) SetBitrate(int) error { return nil }
func (e fakeEncoder) Close() error         { e.f.closed++; return nil }

func newFakes() (*fakeCamera, *fakeEncoders, Options) {
	clock := &fakeClock{t: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)}
	enc := &fakeEncoders{clock: clock}
	return &fakeCamera{clock: clock}, enc, Options{Frames: 3, Warmup: 2, Now: clock.Now, CPU: enc.readCPU}
}

func TestRunMeasuresOnlyTheCountedFrames(t *testing.T) {
	cam, enc, opts := newFakes()
	mode := hal.VideoMode{Width: 8, Height: 4, FPS: 30, Format: hal.PixelYUYV}
	r, err := Run(t.Context(), Path{Name: "fake/yuyv", Camera: cam, Mode: mode, Encoder: enc, Codec: hal.CodecH264}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Per frame: read at capture + 21 ms (20 ms old, then the clock's
	// reading), 1 ms converting, 7 ms encoding and 1 ms reading the clock.
	want := Result{Path: "fake/yuyv", Mode: mode, Frames: 3, Coded: 3,
		Latency: 30 * time.Millisecond, Wait: 21 * time.Millisecond,
		Convert: time.Millisecond, Encode: 8 * time.Millisecond,
		CPU: 5 * time.Millisecond, SysCPU: 2 * time.Millisecond, MachineCPU: 9 * time.Millisecond, CodedBytes: 100}
	r.AllocBytes, r.Allocs = 0, 0 // the Go runtime's, not deterministic
	if r != want {
		t.Errorf("result\n%+v, want\n%+v", r, want)
	}
	if len(cam.opened) != 1 || cam.opened[0] != mode || !cam.stream.closed {
		t.Errorf("camera opened in %v, closed %v", cam.opened, cam.stream.closed)
	}
	wantCfg := hal.VideoEncoderConfig{Codec: hal.CodecH264, Width: 8, Height: 4, FPS: 30, BitrateBps: DefaultBitrate}
	if len(enc.configs) != 1 || enc.configs[0] != wantCfg || enc.closed != 1 {
		t.Errorf("encoders %+v, closed %d; want one %+v, closed", enc.configs, enc.closed, wantCfg)
	}
	// Every frame, the warm-up ones too, reached the encoder in I420,
	// converted from the camera's YUYV.
	if len(enc.frames) != 5 {
		t.Fatalf("%d frames encoded, want 5", len(enc.frames))
	}
	for i, f := range enc.frames {
		src, _ := (&fakeStream{cam: cam, mode: mode, seq: uint64(i)}).ReadFrame(t.Context())
		want, err := pixconv.ToI420(src)
		if err != nil {
			t.Fatal(err)
		}
		if f.Format != hal.PixelI420 || f.Seq != uint64(i) || !slices.Equal(f.Data, want.Data) {
			t.Errorf("frame %d reached the encoder as %s seq %d, not the camera's frame in I420", i, f.Format, f.Seq)
		}
	}
}

func TestRunPassesI420Through(t *testing.T) {
	cam, enc, opts := newFakes()
	mode := hal.VideoMode{Width: 8, Height: 4, FPS: 25, Format: hal.PixelI420}
	r, err := Run(t.Context(), Path{Name: "fake/i420", Camera: cam, Mode: mode, Encoder: enc, Codec: hal.CodecVP8, FPS: 30}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// No conversion, so no time for it: read at capture + 21 ms, encoded
	// 8 ms later.
	if r.Convert != 0 || r.Encode != 8*time.Millisecond || r.Latency != 29*time.Millisecond {
		t.Errorf("convert %v, encode %v, latency %v; want 0, 8ms, 29ms", r.Convert, r.Encode, r.Latency)
	}
	if len(enc.configs) != 1 || enc.configs[0].FPS != 30 || cam.opened[0] != mode {
		t.Errorf("encoder set up at %+v for a camera at %+v, want the path's 30 fps", enc.configs, cam.opened)
	}
	for i, f := range enc.frames {
		src, _ := (&fakeStream{cam: cam, mode: mode, seq: uint64(i)}).ReadFrame(t.Context())
		if !slices.Equal(f.Data, src.Data) {
			t.Errorf("frame %d changed on its way", i)
		}
	}
}

func TestRunFailures(t *testing.T) {
	mode := hal.VideoMode{Width: 8, Height: 4, FPS: 30, Format: hal.PixelYUYV}
	t.Run("no output", func(t *testing.T) {
		cam, enc, opts := newFakes()
		enc.silent = true
		_, err := Run(t.Context(), Path{Name: "x", Camera: cam, Mode: mode, Encoder: enc}, opts)
		if !errors.Is(err, ErrNoOutput) || !cam.stream.closed || enc.closed != 1 {
			t.Errorf("err %v, stream closed %v, encoder closed %d times", err, cam.stream.closed, enc.closed)
		}
	})
	t.Run("camera", func(t *testing.T) {
		cam, enc, opts := newFakes()
		cam.readErr = hal.ErrUnplugged
		_, err := Run(t.Context(), Path{Name: "x", Camera: cam, Mode: mode, Encoder: enc}, opts)
		if !errors.Is(err, hal.ErrUnplugged) || !strings.Contains(err.Error(), "halbench: x: frame 0") || !cam.stream.closed || enc.closed != 1 {
			t.Errorf("err %v, stream closed %v, encoder closed %d times", err, cam.stream.closed, enc.closed)
		}
	})
	t.Run("format", func(t *testing.T) {
		cam, enc, opts := newFakes()
		_, err := Run(t.Context(), Path{Name: "x", Camera: cam, Mode: hal.VideoMode{Width: 8, Height: 4, FPS: 30, Format: hal.PixelH264}, Encoder: enc}, opts)
		if !errors.Is(err, pixconv.ErrFormat) || len(cam.opened) != 0 || len(enc.configs) != 0 {
			t.Errorf("err %v; opened %v and %v", err, cam.opened, enc.configs)
		}
	})
	t.Run("frames", func(t *testing.T) {
		cam, enc, opts := newFakes()
		opts.Frames = 0
		if _, err := Run(t.Context(), Path{Name: "x", Camera: cam, Mode: mode, Encoder: enc}, opts); err == nil {
			t.Error("no error for 0 frames")
		}
	})
}

func TestLineParses(t *testing.T) {
	r := Result{Path: "m2m-fwht/i420", Mode: hal.VideoMode{Width: 1280, Height: 720}, Frames: 60, Coded: 60,
		Latency: 123456789, Wait: 45 * time.Millisecond, Convert: 0, Encode: 78 * time.Millisecond,
		CPU: 3 * time.Millisecond, SysCPU: 1500 * time.Microsecond, MachineCPU: 81 * time.Millisecond, CodedBytes: 123456.4, AllocBytes: 1843200, Allocs: 3}
	line := r.Line(2)
	if !strings.HasPrefix(line, "BenchmarkPipeline720p/m2m-fwht/i420-2\t60\t78000000 ns/op\t123.46 ms-latency/frame\t") {
		t.Errorf("line %q", line)
	}
	b, ok := ParseLine(line)
	want := map[string]float64{UnitWork: 78e6, UnitLatency: 123.46, UnitWait: 45, UnitConvert: 0, UnitEncode: 78,
		UnitCPU: 3, UnitSysCPU: 1.5, UnitMachineCPU: 81, UnitCodedBytes: 123456, UnitAllocBytes: 1843200, UnitAllocs: 3}
	if !ok || b.Name != "Pipeline720p/m2m-fwht/i420" || b.Procs != 2 || b.N != 60 || len(b.Metrics) != len(want) {
		t.Fatalf("parsed %+v, %v", b, ok)
	}
	for u, v := range want {
		if b.Metrics[u] != v {
			t.Errorf("%s: %v, want %v", u, b.Metrics[u], v)
		}
	}
	if b, ok := ParseLine(r.Line(1)); !ok || b.Name != "Pipeline720p/m2m-fwht/i420" || b.Procs != 1 {
		t.Errorf("with 1 proc: %+v, %v", b, ok)
	}
	for _, l := range []string{"# comment", "BenchmarkX", "BenchmarkX-2 1 2", "BenchmarkX-2 x 2 ns/op", "BenchmarkX-2 1 y ns/op", "ok  pkg 1.2s"} {
		if b, ok := ParseLine(l); ok {
			t.Errorf("%q parsed as %+v", l, b)
		}
	}
}

func TestRatioLines(t *testing.T) {
	base := Result{Path: "x264/yuyv", Latency: 40 * time.Millisecond, Convert: 2 * time.Millisecond, Encode: 18 * time.Millisecond, CPU: 20 * time.Millisecond, MachineCPU: 25 * time.Millisecond}
	hw := Result{Path: "m2m-fwht/i420", Latency: 30 * time.Millisecond, Encode: 10 * time.Millisecond, CPU: 2 * time.Millisecond, MachineCPU: 0}
	lines := RatioLines(base, []Result{base, hw})
	for _, l := range lines {
		if !strings.HasPrefix(l, "# ") {
			t.Errorf("%q is not a comment", l)
		}
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"#   x264/yuyv            1.00     1.00     0.10     1.00     1.00",
		"#   m2m-fwht/i420        0.75     0.50     0.00     0.10     0.00",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no line %q in\n%s", want, got)
		}
	}
	if l := RatioLines(Result{Path: "idle"}, []Result{hw}); !strings.Contains(l[2], "       -        -") {
		t.Errorf("ratio to zero: %q", l[2])
	}
}

func TestMachineBusy(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 3 0\nintr 12345\n"
	got, err := machineBusy(bufio.NewScanner(strings.NewReader(stat)))
	// user nice system irq softirq steal = 161 ticks of 10 ms; idle and
	// iowait are not busy, guest is inside user.
	if err != nil || got != 1610*time.Millisecond {
		t.Errorf("busy %v, %v; want 1.61s", got, err)
	}
	for _, bad := range []string{"intr 1\n", "cpu 1 2\n", "cpu 1 x 3 4\n"} {
		if _, err := machineBusy(bufio.NewScanner(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSystemCPU(t *testing.T) {
	a, err := SystemCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU: both clocks must move forward.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	b, err := SystemCPU()
	if err != nil {
		t.Fatal(err)
	}
	if b.User+b.System <= a.User+a.System || b.Machine < a.Machine {
		t.Errorf("CPU times went from %+v to %+v", a, b)
	}
}
