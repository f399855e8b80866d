package sim

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// captureQueue is how many captured frames the camera holds for a reader
// that falls behind, like a V4L2 driver's buffer queue; older frames are
// dropped, and the gap shows in Seq.
const captureQueue = 4

// cameraControls are the simulated camera's controls, with the ranges and
// defaults of a typical UVC webcam. Pan and tilt are in arc seconds, zoom
// in hundredths (100 = 1x), exposure in 100 µs units, white balance in
// kelvin. exposure_auto is V4L2's menu: 1 manual, 3 aperture priority.
var cameraControls = []hal.Control{
	{ID: hal.CtrlBrightness, Name: "Brightness", Type: hal.ControlInt, Min: 0, Max: 255, Step: 1, Default: 128},
	{ID: hal.CtrlContrast, Name: "Contrast", Type: hal.ControlInt, Min: 0, Max: 255, Step: 1, Default: 128},
	{ID: hal.CtrlExposureAuto, Name: "Auto Exposure", Type: hal.ControlMenu, Min: 0, Max: 3, Step: 1, Default: 3},
	{ID: hal.CtrlExposure, Name: "Exposure Time, Absolute", Type: hal.ControlInt, Min: 3, Max: 2047, Step: 1, Default: 250},
	{ID: hal.CtrlWhiteBalanceAuto, Name: "White Balance, Auto", Type: hal.ControlBool, Min: 0, Max: 1, Step: 1, Default: 1},
	{ID: hal.CtrlWhiteBalance, Name: "White Balance Temperature", Type: hal.ControlInt, Min: 2000, Max: 6500, Step: 1, Default: 4000},
	{ID: hal.CtrlFocusAuto, Name: "Focus, Automatic Continuous", Type: hal.ControlBool, Min: 0, Max: 1, Step: 1, Default: 1},
	{ID: hal.CtrlFocus, Name: "Focus, Absolute", Type: hal.ControlInt, Min: 0, Max: 250, Step: 5, Default: 0},
	{ID: hal.CtrlZoom, Name: "Zoom, Absolute", Type: hal.ControlInt, Min: 100, Max: 500, Step: 1, Default: 100},
	{ID: hal.CtrlPan, Name: "Pan, Absolute", Type: hal.ControlInt, Min: -36000, Max: 36000, Step: 3600, Default: 0},
	{ID: hal.CtrlTilt, Name: "Tilt, Absolute", Type: hal.ControlInt, Min: -36000, Max: 36000, Step: 3600, Default: 0},
}

// Camera is the simulated camera. It implements hal.Camera.
type Camera struct {
	plug  plug
	modes []hal.VideoMode
	clock Clock
	log   *slog.Logger

	mu       sync.Mutex
	controls []hal.Control
}

var _ hal.Camera = (*Camera)(nil)

func newCamera(cfg Config) *Camera {
	modes := []hal.VideoMode{{Width: cfg.CameraWidth, Height: cfg.CameraHeight, FPS: cfg.CameraFPS, Format: hal.PixelI420}}
	for _, size := range [][2]int{{640, 360}, {1920, 1080}} {
		m := hal.VideoMode{Width: size[0], Height: size[1], FPS: cfg.CameraFPS, Format: hal.PixelI420}
		if m != modes[0] {
			modes = append(modes, m)
		}
	}
	controls := slices.Clone(cameraControls)
	for i := range controls {
		controls[i].Value = controls[i].Default
	}
	return &Camera{
		plug:     newPlug(),
		modes:    modes,
		clock:    cfg.Clock,
		log:      cfg.Logger.With("device", CameraID),
		controls: controls,
	}
}

// Info implements hal.Device.
func (c *Camera) Info() hal.Info {
	return hal.Info{ID: CameraID, Kind: hal.KindCamera, Name: "Simulated camera", Driver: DriverName, Simulated: true}
}

// Modes lists the configured mode first, then 640x360 and 1920x1080 at the
// same frame rate, all I420.
func (c *Camera) Modes() []hal.VideoMode { return slices.Clone(c.modes) }

// Controls implements hal.Controller.
func (c *Camera) Controls() []hal.Control {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.controls)
}

// SetControl implements hal.Controller. Values inside the range are rounded
// to the control's step, as V4L2 does.
func (c *Camera) SetControl(ctx context.Context, id hal.ControlID, value int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set %s on %s: %w", id, CameraID, err)
	}
	if !c.plug.isPresent() {
		return fmt.Errorf("set %s on %s: %w", id, CameraID, hal.ErrUnplugged)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.controls, func(ctl hal.Control) bool { return ctl.ID == id })
	if i < 0 {
		return fmt.Errorf("set %s on %s: %w", id, CameraID, hal.ErrUnknownControl)
	}
	ctl := &c.controls[i]
	if value < ctl.Min || value > ctl.Max {
		return fmt.Errorf("set %s on %s to %d (range %d..%d): %w", id, CameraID, value, ctl.Min, ctl.Max, hal.ErrOutOfRange)
	}
	if ctl.Step > 1 {
		value = ctl.Min + (value-ctl.Min+ctl.Step/2)/ctl.Step*ctl.Step
		value = min(value, ctl.Max)
	}
	ctl.Value = value
	return nil
}

// picture returns the controls that change the rendered picture.
func (c *Camera) picture() pictureControls {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := func(id hal.ControlID) int64 {
		return c.controls[slices.IndexFunc(c.controls, func(ctl hal.Control) bool { return ctl.ID == id })].Value
	}
	return pictureControls{
		brightness: int(v(hal.CtrlBrightness)),
		contrast:   int(v(hal.CtrlContrast)),
		zoom:       int(v(hal.CtrlZoom)),
		pan:        int(v(hal.CtrlPan)),
		tilt:       int(v(hal.CtrlTilt)),
	}
}

// Open implements hal.Camera. Any number of streams may be open at once;
// each numbers its frames from 0 and starts capturing at Open.
func (c *Camera) Open(ctx context.Context, mode hal.VideoMode) (hal.VideoStream, error) {
	op := fmt.Sprintf("open %s %dx%d@%d %s", CameraID, mode.Width, mode.Height, mode.FPS, mode.Format)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !slices.Contains(c.modes, mode) {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnsupportedMode)
	}
	gone, ok := c.plug.current()
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, hal.ErrUnplugged)
	}
	return &videoStream{
		cam:    c,
		mode:   mode,
		start:  c.clock.Now(),
		gone:   gone,
		closed: make(chan struct{}),
	}, nil
}

// videoStream is an open camera stream. Frames are rendered when read, at
// the capture time the mode's frame grid assigns them.
type videoStream struct {
	cam   *Camera
	mode  hal.VideoMode
	start time.Time
	gone  <-chan struct{}

	closeOnce sync.Once
	closed    chan struct{}

	mu   sync.Mutex // serialises readers, so each frame is delivered once
	next uint64     // index of the next frame to deliver
}

func (s *videoStream) Mode() hal.VideoMode { return s.mode }

// period is the frame interval, truncated to the nanosecond. Frames are
// exactly one period apart (30 fps runs under a millisecond a day fast), so
// a test advancing a fake clock by time.Second/fps per frame never falls
// behind.
func (s *videoStream) period() time.Duration { return time.Second / time.Duration(s.mode.FPS) }

// frameTime is when frame n is captured.
func (s *videoStream) frameTime(n uint64) time.Time {
	return s.start.Add(time.Duration(n) * s.period())
}

// ReadFrame implements hal.VideoStream.
func (s *videoStream) ReadFrame(ctx context.Context) (hal.VideoFrame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if err := s.ended(); err != nil {
			return hal.VideoFrame{}, fmt.Errorf("read frame from %s: %w", CameraID, err)
		}
		if err := ctx.Err(); err != nil {
			return hal.VideoFrame{}, fmt.Errorf("read frame from %s: %w", CameraID, err)
		}
		now := s.cam.clock.Now()
		if elapsed := now.Sub(s.start); elapsed >= 0 {
			latest := uint64(elapsed / s.period())
			if s.next+captureQueue <= latest {
				dropped := latest - captureQueue + 1 - s.next
				s.cam.log.Debug("reader fell behind; dropped frames", "dropped", dropped)
				s.next += dropped
			}
			if s.next <= latest {
				n := s.next
				s.next++
				return s.render(n), nil
			}
		}
		if err := wait(ctx, s.cam.clock, s.frameTime(s.next), s.closed, s.gone); err != nil {
			return hal.VideoFrame{}, fmt.Errorf("read frame from %s: %w", CameraID, err)
		}
	}
}

// ended reports why the stream can deliver no more frames, if it cannot.
// Close wins over unplug: the caller asked for it.
func (s *videoStream) ended() error {
	select {
	case <-s.closed:
		return hal.ErrClosed
	default:
	}
	select {
	case <-s.gone:
		return hal.ErrUnplugged
	default:
	}
	return nil
}

func (s *videoStream) render(n uint64) hal.VideoFrame {
	at := s.frameTime(n)
	data := make([]byte, i420Size(s.mode.Width, s.mode.Height))
	renderFrame(data, s.mode.Width, s.mode.Height, n, at, s.cam.picture())
	return hal.VideoFrame{
		Width: s.mode.Width, Height: s.mode.Height, Format: hal.PixelI420,
		Data: data, Seq: n, CapturedAt: at,
	}
}

// Close implements hal.VideoStream. It is idempotent and wakes a blocked
// ReadFrame.
func (s *videoStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}
