package sim

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
)

var (
	mode720  = hal.VideoMode{Width: 1280, Height: 720, FPS: 30, Format: hal.PixelI420}
	mode360  = hal.VideoMode{Width: 640, Height: 360, FPS: 30, Format: hal.PixelI420}
	mode1080 = hal.VideoMode{Width: 1920, Height: 1080, FPS: 30, Format: hal.PixelI420}
)

func openCamera(t *testing.T, ctx context.Context, d *Driver, mode hal.VideoMode) hal.VideoStream {
	t.Helper()
	s, err := d.Camera().Open(ctx, mode)
	if err != nil {
		t.Fatalf("Open(%v): %v", mode, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readFrame(t *testing.T, ctx context.Context, s hal.VideoStream) hal.VideoFrame {
	t.Helper()
	f, err := s.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return f
}

// readAsync starts a ReadFrame and returns where its result will arrive.
func readAsync(ctx context.Context, s hal.VideoStream) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadFrame(ctx)
		done <- err
	}()
	return done
}

func frameInterval(fps int) time.Duration { return time.Second / time.Duration(fps) }

func TestCameraPacesFramesByClock(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	s := openCamera(t, ctx, d, mode720)
	if s.Mode() != mode720 {
		t.Errorf("Mode = %v", s.Mode())
	}

	f0 := readFrame(t, ctx, s)
	if f0.Seq != 0 || !f0.CapturedAt.Equal(epoch) {
		t.Errorf("first frame: Seq %d at %v, want 0 at open", f0.Seq, f0.CapturedAt)
	}
	if f0.Width != 1280 || f0.Height != 720 || f0.Format != hal.PixelI420 || len(f0.Data) != 1280*720*3/2 {
		t.Errorf("first frame: %dx%d %s, %d bytes", f0.Width, f0.Height, f0.Format, len(f0.Data))
	}

	// The next frame is not due yet: ReadFrame must wait for the clock.
	type result struct {
		f   hal.VideoFrame
		err error
	}
	got := make(chan result, 1)
	go func() {
		f, err := s.ReadFrame(ctx)
		got <- result{f, err}
	}()
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		t.Fatalf("ReadFrame returned %v before the frame was due", r.err)
	default:
	}
	clock.Advance(frameInterval(30))
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.f.Seq != 1 || !r.f.CapturedAt.Equal(epoch.Add(frameInterval(30))) {
		t.Errorf("second frame: Seq %d at %v", r.f.Seq, r.f.CapturedAt.Sub(epoch))
	}
	if diff := differingPixels(f0, r.f, stampBandHeight(720), 720); diff < 1280*720/100 {
		t.Errorf("consecutive frames differ in only %d scene pixels", diff)
	}
}

// differingPixels counts luma pixels in rows [y0, y1) that differ.
func differingPixels(a, b hal.VideoFrame, y0, y1 int) int {
	n := 0
	for i := y0 * a.Width; i < y1*a.Width; i++ {
		if a.Data[i] != b.Data[i] {
			n++
		}
	}
	return n
}

func TestCameraCounterIncrementsAndDrops(t *testing.T) {
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{CameraFPS: 25})
	s := openCamera(t, ctx, d, hal.VideoMode{Width: 640, Height: 360, FPS: 25, Format: hal.PixelI420})
	for want := uint64(0); want < 50; want++ {
		f := readFrame(t, ctx, s)
		if f.Seq != want || !f.CapturedAt.Equal(epoch.Add(time.Duration(want)*40*time.Millisecond)) {
			t.Fatalf("frame %d: Seq %d at %v", want, f.Seq, f.CapturedAt.Sub(epoch))
		}
		if seq, at, ok := DecodeStamp(f); !ok || seq != f.Seq || !at.Equal(f.CapturedAt) {
			t.Fatalf("frame %d: stamp says %d at %v (ok %v)", want, seq, at, ok)
		}
		clock.Advance(40 * time.Millisecond)
	}
	// A reader that falls a second behind gets the newest captureQueue
	// frames; the gap in Seq shows the drop.
	clock.Advance(time.Second)
	f := readFrame(t, ctx, s)
	latest := uint64(clock.Now().Sub(epoch) / (40 * time.Millisecond))
	if want := latest - captureQueue + 1; f.Seq != want {
		t.Errorf("after falling behind: Seq %d, want %d (latest %d)", f.Seq, want, latest)
	}
}

func TestCameraOpenErrors(t *testing.T) {
	ctx := testContext(t)
	d, _ := newTestDriver(t, Config{})
	for _, m := range []hal.VideoMode{
		{Width: 1280, Height: 720, FPS: 60, Format: hal.PixelI420},
		{Width: 1280, Height: 720, FPS: 30, Format: hal.PixelNV12},
		{Width: 800, Height: 600, FPS: 30, Format: hal.PixelI420},
		{},
	} {
		if _, err := d.Camera().Open(ctx, m); !errors.Is(err, hal.ErrUnsupportedMode) {
			t.Errorf("Open(%v) = %v, want ErrUnsupportedMode", m, err)
		}
	}
	// Several streams at once, each with its own numbering.
	a := openCamera(t, ctx, d, mode720)
	b := openCamera(t, ctx, d, mode360)
	fa, fb := readFrame(t, ctx, a), readFrame(t, ctx, b)
	if fa.Seq != 0 || fb.Seq != 0 || fb.Width != 640 {
		t.Errorf("two streams: %d/%d, %dx%d", fa.Seq, fb.Seq, fb.Width, fb.Height)
	}
}

func TestCameraCloseAndCancel(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	s := openCamera(t, ctx, d, mode360)
	readFrame(t, ctx, s)

	// Cancelling the context ends a blocked read with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	done := readAsync(cctx, s)
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ReadFrame = %v", err)
	}

	// Close wakes a blocked reader, and later reads fail the same way.
	done = readAsync(ctx, s)
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadFrame blocked across Close = %v, want ErrClosed", err)
	}
	clock.Advance(time.Second)
	if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestCameraUnplug(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	d, clock := newTestDriver(t, Config{})
	s := openCamera(t, ctx, d, mode360)
	readFrame(t, ctx, s)
	done := readAsync(ctx, s)
	if err := clock.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPresent(hal.KindCamera, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("ReadFrame across unplug = %v, want ErrUnplugged", err)
	}
	if _, err := d.Camera().Open(ctx, mode360); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open while unplugged = %v, want ErrUnplugged", err)
	}
	if err := d.Camera().SetControl(ctx, hal.CtrlZoom, 200); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("SetControl while unplugged = %v, want ErrUnplugged", err)
	}

	if err := d.SetPresent(hal.KindCamera, true); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("a stream from before the replug: ReadFrame = %v, want ErrUnplugged", err)
	}
	s2 := openCamera(t, ctx, d, mode360)
	if f := readFrame(t, ctx, s2); f.Seq != 0 {
		t.Errorf("new stream after replug starts at Seq %d", f.Seq)
	}
	// Close is the caller's doing, so it wins over the unplug.
	_ = s.Close()
	if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadFrame on a closed, unplugged stream = %v, want ErrClosed", err)
	}
}

func TestCameraControls(t *testing.T) {
	ctx := testContext(t)
	d, _ := newTestDriver(t, Config{})
	cam := d.Camera()
	ctls := cam.Controls()
	wantIDs := []hal.ControlID{
		hal.CtrlBrightness, hal.CtrlContrast, hal.CtrlExposureAuto, hal.CtrlExposure,
		hal.CtrlWhiteBalanceAuto, hal.CtrlWhiteBalance, hal.CtrlFocusAuto, hal.CtrlFocus,
		hal.CtrlZoom, hal.CtrlPan, hal.CtrlTilt,
	}
	if len(ctls) != len(wantIDs) {
		t.Fatalf("%d controls, want %d", len(ctls), len(wantIDs))
	}
	for i, c := range ctls {
		if c.ID != wantIDs[i] {
			t.Errorf("control %d is %s, want %s", i, c.ID, wantIDs[i])
		}
		if c.Value != c.Default || c.Default < c.Min || c.Default > c.Max || c.Step < 1 || c.Name == "" {
			t.Errorf("control %s is inconsistent: %+v", c.ID, c)
		}
		if err := cam.SetControl(ctx, c.ID, c.Max+1); !errors.Is(err, hal.ErrOutOfRange) {
			t.Errorf("SetControl(%s, max+1) = %v, want ErrOutOfRange", c.ID, err)
		}
		if err := cam.SetControl(ctx, c.ID, c.Min-1); !errors.Is(err, hal.ErrOutOfRange) {
			t.Errorf("SetControl(%s, min-1) = %v, want ErrOutOfRange", c.ID, err)
		}
		if err := cam.SetControl(ctx, c.ID, c.Max); err != nil {
			t.Errorf("SetControl(%s, max) = %v", c.ID, err)
		}
	}
	if err := cam.SetControl(ctx, "sharpness", 1); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("SetControl(sharpness) = %v, want ErrUnknownControl", err)
	}
	// Values between steps round to the nearest step, as V4L2 does.
	if err := cam.SetControl(ctx, hal.CtrlPan, 5000); err != nil {
		t.Fatal(err)
	}
	for _, c := range cam.Controls() {
		if c.ID == hal.CtrlPan && c.Value != 3600 {
			t.Errorf("pan set to 5000 reads back %d, want 3600", c.Value)
		}
	}
}

// TestCameraControlsChangePicture checks each picture control against the
// default picture, and that the stamp and digits are immune to them.
func TestCameraControlsChangePicture(t *testing.T) {
	ctx := testContext(t)
	top := stampBandHeight(360)
	grab := func(settings map[hal.ControlID]int64) hal.VideoFrame {
		d, _ := newTestDriver(t, Config{})
		for id, v := range settings {
			if err := d.Camera().SetControl(ctx, id, v); err != nil {
				t.Fatal(err)
			}
		}
		return readFrame(t, ctx, openCamera(t, ctx, d, mode360))
	}
	base := grab(nil)
	// Statistics stay above the digit box, which the controls do not touch.
	baseMean, baseSpread := lumaStats(base, top, 200)
	for _, tc := range []struct {
		name     string
		settings map[hal.ControlID]int64
		check    func(mean, spread float64) bool
	}{
		{"brightness up", map[hal.ControlID]int64{hal.CtrlBrightness: 200}, func(m, _ float64) bool { return m > baseMean+30 }},
		{"brightness down", map[hal.ControlID]int64{hal.CtrlBrightness: 40}, func(m, _ float64) bool { return m < baseMean-30 }},
		{"contrast down", map[hal.ControlID]int64{hal.CtrlContrast: 20}, func(_, s float64) bool { return s < baseSpread/3 }},
		{"contrast up", map[hal.ControlID]int64{hal.CtrlContrast: 255}, func(_, s float64) bool { return s > baseSpread*1.2 }},
		{"zoom", map[hal.ControlID]int64{hal.CtrlZoom: 300}, nil},
		{"pan", map[hal.ControlID]int64{hal.CtrlPan: 18000}, nil},
		{"tilt", map[hal.ControlID]int64{hal.CtrlTilt: -18000}, nil},
	} {
		f := grab(tc.settings)
		if diff := differingPixels(base, f, top, 360); diff < 640*360/10 {
			t.Errorf("%s: only %d scene pixels changed", tc.name, diff)
		}
		if mean, spread := lumaStats(f, top, 200); tc.check != nil && !tc.check(mean, spread) {
			t.Errorf("%s: scene luma mean %.1f spread %.1f; default %.1f, %.1f", tc.name, mean, spread, baseMean, baseSpread)
		}
		if seq, at, ok := DecodeStamp(f); !ok || seq != 0 || !at.Equal(epoch) {
			t.Errorf("%s: stamp unreadable (%d, %v, %v)", tc.name, seq, at, ok)
		}
		if got := readDigits(t, f, 13); got[0] != "0" || got[1] != strconv.FormatInt(epoch.UnixMilli(), 10) {
			t.Errorf("%s: digits read %q", tc.name, got)
		}
	}
}

// lumaStats returns the mean and mean absolute deviation of rows [y0, y1).
func lumaStats(f hal.VideoFrame, y0, y1 int) (mean, spread float64) {
	px := f.Data[y0*f.Width : y1*f.Width]
	for _, v := range px {
		mean += float64(v)
	}
	mean /= float64(len(px))
	for _, v := range px {
		spread += max(float64(v)-mean, mean-float64(v))
	}
	return mean, spread / float64(len(px))
}

// readDigits reads the two burned-in lines back by looking at the middle of
// each segment, the way a test of a screenshot would. n is the length of the
// longer line, which sets the layout.
func readDigits(t *testing.T, f hal.VideoFrame, n int) [2]string {
	t.Helper()
	l, ok := layoutDigits(f.Width, f.Height, stampBandHeight(f.Height), n)
	if !ok {
		t.Fatalf("%dx%d: no room for %d digits", f.Width, f.Height, n)
	}
	var out [2]string
	for line := range out {
		for i := range n {
			x, y := l.digitOrigin(line, i)
			var mask uint8
			for k, r := range l.segmentRects(x, y) {
				if f.Data[(r.y0+r.y1)/2*f.Width+(r.x0+r.x1)/2] > 128 {
					mask |= 1 << k
				}
			}
			if mask == 0 {
				continue // past the end of the shorter line
			}
			d := slices.Index(digitSegments[:], mask)
			if d < 0 {
				t.Fatalf("line %d digit %d: segments %07b are no digit", line, i, mask)
			}
			out[line] += strconv.Itoa(d)
		}
	}
	return out
}

func TestCameraDigitsReadable(t *testing.T) {
	ctx := testContext(t)
	for _, m := range []hal.VideoMode{mode360, mode720, mode1080} {
		d, clock := newTestDriver(t, Config{})
		s := openCamera(t, ctx, d, m)
		var f hal.VideoFrame
		for range 13 {
			f = readFrame(t, ctx, s)
			clock.Advance(frameInterval(30))
		}
		want := [2]string{"12", strconv.FormatInt(f.CapturedAt.UnixMilli(), 10)}
		got := readDigits(t, f, len(want[1]))
		if got != want {
			t.Errorf("%dx%d: digits read %q, want %q", m.Width, m.Height, got, want)
		}
		// A tenth of the frame tall: legible in a screenshot across a room.
		l, _ := layoutDigits(m.Width, m.Height, stampBandHeight(m.Height), len(want[1]))
		if l.dh < m.Height/10 {
			t.Errorf("%dx%d: digits %d px tall", m.Width, m.Height, l.dh)
		}
	}
}

// TestCameraTinyModes renders the smallest and oddly shaped frames the
// config allows without panicking.
func TestCameraTinyModes(t *testing.T) {
	ctx := testContext(t)
	for _, size := range [][2]int{{16, 16}, {16, 2160}, {3840, 16}, {34, 18}, {320, 240}} {
		d, _ := newTestDriver(t, Config{CameraWidth: size[0], CameraHeight: size[1]})
		f := readFrame(t, ctx, openCamera(t, ctx, d, d.Camera().Modes()[0]))
		if len(f.Data) != size[0]*size[1]*3/2 {
			t.Errorf("%v: %d bytes", size, len(f.Data))
		}
	}
}

func BenchmarkSimCamera720p(b *testing.B) {
	buf := make([]byte, i420Size(1280, 720))
	pc := pictureControls{brightness: 128, contrast: 128, zoom: 100}
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		renderFrame(buf, 1280, 720, uint64(i), epoch.Add(time.Duration(i)*frameInterval(30)), pc)
	}
}
