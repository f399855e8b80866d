package v4l2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// Camera is one V4L2 capture device. It implements hal.Camera (and so
// hal.Controller). The handle outlives unplugs: see the package doc.
type Camera struct {
	drv *Driver
	id  string

	mu      sync.Mutex
	info    hal.Info
	node    *node // the node it was last seen at
	gone    bool
	modes   []modeInfo
	opening bool    // an Open is setting up a stream
	stream  *stream // the open stream, if any
}

var _ hal.Camera = (*Camera)(nil)

func newCamera(d *Driver, id string) *Camera {
	return &Camera{drv: d, id: id, gone: true}
}

// refresh updates the camera from an enumeration that found it at n. It
// lists the modes again when the camera is new, came back, or moved to
// another node.
func (c *Camera) refresh(n *node) error {
	c.mu.Lock()
	same := !c.gone && c.node != nil && c.node.path == n.path && c.node.bufType == n.bufType
	c.mu.Unlock()
	var modes []modeInfo
	if !same {
		dev, err := uapi.OpenWith(c.drv.open, n.path)
		if err != nil {
			return err
		}
		modes, err = listModes(dev, n.bufType)
		dev.Close()
		if err != nil {
			return err
		}
		if len(modes) == 0 {
			return errors.New("no mode in a pixel format the HAL handles")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !same {
		c.modes = modes
		if c.gone {
			c.drv.log.Info("camera present", "id", c.id, "node", n.path, "name", n.cap.CardName(), "modes", len(modes))
		}
	}
	c.node = n
	c.gone = false
	c.info = hal.Info{ID: c.id, Kind: hal.KindCamera, Name: n.cap.CardName(), Driver: DriverName}
	return nil
}

// markGone records that an enumeration no longer found the camera.
func (c *Camera) markGone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gone {
		c.drv.log.Info("camera gone", "id", c.id)
	}
	c.gone = true
}

// Info returns the camera's identity (hal.Device).
func (c *Camera) Info() hal.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Node returns the device node the camera was last seen at ("/dev/video0"),
// for diagnostics.
func (c *Camera) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		return ""
	}
	return c.node.path
}

// Modes returns the camera's modes (hal.Camera).
func (c *Camera) Modes() []hal.VideoMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]hal.VideoMode, len(c.modes))
	for i, m := range c.modes {
		out[i] = m.mode
	}
	return out
}

// openNode opens the camera's current node for a short control operation.
func (c *Camera) openNode() (*uapi.Device, error) {
	c.mu.Lock()
	n, gone := c.node, c.gone
	c.mu.Unlock()
	if gone || n == nil {
		return nil, fmt.Errorf("v4l2: %s: %w", c.id, hal.ErrUnplugged)
	}
	dev, err := uapi.OpenWith(c.drv.open, n.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || uapi.Gone(err) {
			return nil, fmt.Errorf("v4l2: %s: %w: %w", c.id, hal.ErrUnplugged, err)
		}
		return nil, fmt.Errorf("v4l2: %s: %w", c.id, err)
	}
	return dev, nil
}

// Controls returns the camera's mapped controls with their current values
// (hal.Controller). They are read from the device on every call, since
// values and the inactive state change (auto exposure); a camera that
// cannot be read returns none, and the failure is logged.
func (c *Camera) Controls() []hal.Control {
	dev, err := c.openNode()
	if err != nil {
		c.drv.log.Debug("controls unavailable", "id", c.id, "err", err)
		return nil
	}
	defer dev.Close()
	ctrls, err := readControls(dev)
	if err != nil {
		c.drv.log.Warn("cannot read controls", "id", c.id, "err", err)
		return nil
	}
	return ctrls
}

// SetControl range-checks value against the control's current range, step
// and menu items, applies it, and reads it back (hal.Controller).
func (c *Camera) SetControl(ctx context.Context, id hal.ControlID, value int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dev, err := c.openNode()
	if err != nil {
		return fmt.Errorf("set %s: %w", id, err)
	}
	defer dev.Close()
	got, err := setControl(ctx, dev, id, value)
	if err != nil {
		if uapi.Gone(err) {
			return fmt.Errorf("v4l2: set %s on %s: %w: %w", id, c.id, hal.ErrUnplugged, err)
		}
		return fmt.Errorf("v4l2: set %s on %s: %w", id, c.id, err)
	}
	if got != value {
		c.drv.log.Info("driver applied another value than asked", "id", c.id, "control", id, "asked", value, "applied", got)
	}
	return nil
}

// Open starts capture in mode, one of Modes (hal.Camera). Only one stream
// per camera can be open: a second Open returns hal.ErrBusy.
func (c *Camera) Open(ctx context.Context, mode hal.VideoMode) (hal.VideoStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	n, gone := c.node, c.gone
	var mi *modeInfo
	for i := range c.modes {
		if c.modes[i].mode == mode {
			mi = &c.modes[i]
			break
		}
	}
	switch {
	case gone || n == nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("v4l2: open %s: %w", c.id, hal.ErrUnplugged)
	case mi == nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("v4l2: open %s in %dx%d@%d %s: %w", c.id, mode.Width, mode.Height, mode.FPS, mode.Format, hal.ErrUnsupportedMode)
	case c.opening || c.stream != nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("v4l2: open %s: a stream is already open: %w", c.id, hal.ErrBusy)
	}
	c.opening = true
	want := *mi
	c.mu.Unlock()

	s, err := openStream(ctx, c, n, want)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.opening = false
	if err != nil {
		return nil, fmt.Errorf("v4l2: open %s (%s) in %s: %w", c.id, n.path, want, err)
	}
	c.stream = s
	return s, nil
}

// streamClosed forgets s once it has released the device.
func (c *Camera) streamClosed(s *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == s {
		c.stream = nil
	}
}

// classify turns an errno of a device that went away into hal.ErrUnplugged
// and of one that is in use into hal.ErrBusy, keeping the original.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case uapi.Gone(err) || errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: %w", hal.ErrBusy, err)
	}
	return err
}
