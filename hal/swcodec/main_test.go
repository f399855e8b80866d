package swcodec

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

// TestMain fails the package if anything leaves a goroutine behind; every
// test also checks on its own with checkLeaks.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks fails the test or benchmark if it leaves goroutines behind. It
// runs as the last cleanup, after the sessions it opened are closed, and
// ignores the goroutines that were there before (benchmarks run in
// goroutines of their own).
func checkLeaks(t testing.TB) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// testContext bounds a test: encoding a few hundred small frames takes
// seconds, so a minute means something hangs.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// epoch is mid-second, away from the simulated microphone's beeps.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 500_000_000, time.UTC)

// camera is the simulated camera driven by a fake clock.
type camera struct {
	ctx    context.Context
	clock  *sim.FakeClock
	stream hal.VideoStream
	period time.Duration
	n      int
}

// openCamera opens the simulated camera at w×h, 30 fps.
func openCamera(t testing.TB, w, h int) *camera { return openCameraFPS(t, w, h, 30) }

// openCameraFPS opens the simulated camera at w×h and fps.
func openCameraFPS(t testing.TB, w, h, fps int) *camera {
	t.Helper()
	clock := sim.NewFakeClock(epoch)
	d, err := sim.New(sim.Config{CameraWidth: w, CameraHeight: h, CameraFPS: fps, Clock: clock})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	mode := hal.VideoMode{Width: w, Height: h, FPS: fps, Format: hal.PixelI420}
	s, err := d.Camera().Open(context.Background(), mode)
	if err != nil {
		t.Fatalf("open camera: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &camera{ctx: testContext(t), clock: clock, stream: s, period: time.Second / time.Duration(fps)}
}

// next returns the camera's next frame, moving the fake clock on by one
// frame period so that it is there without waiting.
func (c *camera) next(t testing.TB) hal.VideoFrame {
	t.Helper()
	if c.n > 0 {
		c.clock.Advance(c.period)
	}
	c.n++
	f, err := c.stream.ReadFrame(c.ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// addTexture overwrites the scene below the stamp band with a noise texture
// that pans two pixels per frame, so that the encoders are limited by the
// bitrate rather than by the sim camera's flat colour bars, which take few
// bits at any quality, while motion search still finds the picture in the
// previous frame, as in real video. The stamp band (the top eighth) stays.
func addTexture(f hal.VideoFrame, n int) {
	w, h := f.Width, f.Height
	for y := h / 8; y < h; y++ {
		row := f.Data[y*w : (y+1)*w]
		for x := range row {
			// A hash of the scene coordinate: the same texel moves with the pan.
			v := uint32(x+2*n)*2654435761 ^ uint32(y)*2246822519
			v ^= v >> 15
			v *= 2654435761
			v ^= v >> 13
			row[x] = byte(64 + v%128)
		}
	}
}
