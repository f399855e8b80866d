// Package devctl changes device settings for roomd's API: control values,
// relative moves, and camera presets (named pan/tilt/zoom/focus positions
// kept in roomd's state directory so they survive reboots and updates).
//
// It works on whatever the HAL lists now, so a setting reaches a camera
// replugged a moment ago, and it checks every value against the control's
// range before the driver sees it.
package devctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/atriumroom/atrium/hal"
)

// Errors, matched with errors.Is.
var (
	// ErrNoPreset: the camera has no preset of that name.
	ErrNoPreset = errors.New("no such preset")
	// ErrNotPTZ: the device has none of the absolute pan, tilt, zoom and
	// focus controls a preset is made of.
	ErrNotPTZ = errors.New("device has no pan, tilt, zoom or focus position to save")
	// ErrInvalidPreset: the preset name is not acceptable, or too many.
	ErrInvalidPreset = errors.New("invalid preset")
	// ErrNotControllable: the device has no controls at all.
	ErrNotControllable = errors.New("device has no controls")
)

// presetControls are what a preset remembers, in the order recall applies
// them: zoom before pan and tilt, because on some cameras the pan range
// depends on the zoom.
var presetControls = []hal.ControlID{hal.CtrlZoom, hal.CtrlPan, hal.CtrlTilt, hal.CtrlFocus}

// MaxPresets is how many presets one camera keeps; remotes and touch panels
// show a handful, and the state file stays small.
const MaxPresets = 32

// Lister is the registry, as far as devctl needs it.
type Lister interface {
	Lookup(id string) (hal.Device, bool)
}

// Controller applies settings to the devices of a Lister.
type Controller struct {
	devs  Lister
	store *Store
	log   *slog.Logger
	// mu serialises preset changes so the file never loses a concurrent save.
	mu sync.Mutex
}

// New returns a Controller. store may be nil: presets are then refused.
func New(devs Lister, store *Store, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{devs: devs, store: store, log: log}
}

func (c *Controller) controller(id string) (hal.Device, hal.Controller, error) {
	d, ok := c.devs.Lookup(id)
	if !ok {
		return nil, nil, fmt.Errorf("device %q: %w", id, hal.ErrNotFound)
	}
	ctl, ok := d.(hal.Controller)
	if !ok {
		return nil, nil, fmt.Errorf("device %q: %w", id, ErrNotControllable)
	}
	return d, ctl, nil
}

func find(ctls []hal.Control, id hal.ControlID) (hal.Control, bool) {
	i := slices.IndexFunc(ctls, func(c hal.Control) bool { return c.ID == id })
	if i < 0 {
		return hal.Control{}, false
	}
	return ctls[i], true
}

// Set sets control id of device devID to value, after checking the range.
func (c *Controller) Set(ctx context.Context, devID string, id hal.ControlID, value int64) (hal.Device, error) {
	d, ctl, err := c.controller(devID)
	if err != nil {
		return nil, err
	}
	cur, ok := find(ctl.Controls(), id)
	if !ok {
		return nil, fmt.Errorf("device %q: control %q: %w", devID, id, hal.ErrUnknownControl)
	}
	if err := checkRange(cur, value); err != nil {
		return nil, fmt.Errorf("device %q: control %q: %w", devID, id, err)
	}
	if err := ctl.SetControl(ctx, id, value); err != nil {
		return nil, fmt.Errorf("device %q: set %s to %d: %w", devID, id, value, err)
	}
	c.log.Info("control set", "device", devID, "control", id, "value", value)
	return d, nil
}

// Nudge moves control id by delta steps of the control. An absolute control
// is moved and clamped to its range, so holding "zoom in" on a remote stops
// at the end instead of failing; a camera that only has the relative
// control (pan_relative…) is given the delta as is.
func (c *Controller) Nudge(ctx context.Context, devID string, id hal.ControlID, delta int64) (hal.Device, error) {
	d, ctl, err := c.controller(devID)
	if err != nil {
		return nil, err
	}
	ctls := ctl.Controls()
	if cur, ok := find(ctls, id); ok && cur.Type == hal.ControlInt {
		step := max(cur.Step, 1)
		v := min(max(cur.Value+delta*step, cur.Min), cur.Max)
		v = cur.Min + (v-cur.Min)/step*step
		if err := ctl.SetControl(ctx, id, v); err != nil {
			return nil, fmt.Errorf("device %q: move %s to %d: %w", devID, id, v, err)
		}
		return d, nil
	}
	if rel, ok := relative[id]; ok {
		if cur, ok := find(ctls, rel); ok {
			v := min(max(delta*max(cur.Step, 1), cur.Min), cur.Max)
			if err := ctl.SetControl(ctx, rel, v); err != nil {
				return nil, fmt.Errorf("device %q: move %s by %d: %w", devID, rel, v, err)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("device %q: control %q cannot be moved by steps: %w", devID, id, hal.ErrUnknownControl)
}

// relative maps absolute controls to the relative ones Nudge falls back on.
var relative = map[hal.ControlID]hal.ControlID{
	hal.CtrlPan:  hal.CtrlPanRelative,
	hal.CtrlTilt: hal.CtrlTiltRelative,
	hal.CtrlZoom: hal.CtrlZoomRelative,
}

// checkRange refuses values the control cannot take, with the range in the
// message.
func checkRange(c hal.Control, v int64) error {
	switch {
	case c.Type == hal.ControlBool && v != 0 && v != 1:
		return fmt.Errorf("%w: %d is not 0 or 1", hal.ErrOutOfRange, v)
	case v < c.Min || v > c.Max:
		return fmt.Errorf("%w: %d is outside %d..%d", hal.ErrOutOfRange, v, c.Min, c.Max)
	case c.Type == hal.ControlInt && c.Step > 1 && (v-c.Min)%c.Step != 0:
		return fmt.Errorf("%w: %d is not min %d plus a multiple of step %d", hal.ErrOutOfRange, v, c.Min, c.Step)
	}
	return nil
}

// Preset is a saved camera position.
type Preset struct {
	Name   string                  `json:"name"`
	Values map[hal.ControlID]int64 `json:"values"`
}

// Presets lists devID's presets by name.
func (c *Controller) Presets(devID string) ([]Preset, error) {
	if c.store == nil {
		return nil, fmt.Errorf("presets: %w", ErrInvalidPreset)
	}
	return c.store.List(devID), nil
}

// SavePreset stores the camera's current position under name, replacing a
// preset of that name.
func (c *Controller) SavePreset(devID, name string) (Preset, error) {
	if err := validName(name); err != nil {
		return Preset{}, err
	}
	_, ctl, err := c.controller(devID)
	if err != nil {
		return Preset{}, err
	}
	p := Preset{Name: name, Values: map[hal.ControlID]int64{}}
	ctls := ctl.Controls()
	for _, id := range presetControls {
		if cur, ok := find(ctls, id); ok {
			p.Values[id] = cur.Value
		}
	}
	if len(p.Values) == 0 {
		return Preset{}, fmt.Errorf("device %q: %w", devID, ErrNotPTZ)
	}
	if c.store == nil {
		return Preset{}, fmt.Errorf("presets: no state directory: %w", ErrInvalidPreset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.store.Put(devID, p); err != nil {
		return Preset{}, err
	}
	c.log.Info("camera preset saved", "device", devID, "preset", name, "values", p.Values)
	return p, nil
}

// RecallPreset moves the camera to a saved position. Values outside the
// camera's current ranges are clamped (a replacement camera of another
// model may have a shorter zoom).
func (c *Controller) RecallPreset(ctx context.Context, devID, name string) (hal.Device, error) {
	if c.store == nil {
		return nil, fmt.Errorf("preset %q: %w", name, ErrNoPreset)
	}
	p, ok := c.store.Get(devID, name)
	if !ok {
		return nil, fmt.Errorf("device %q: preset %q: %w", devID, name, ErrNoPreset)
	}
	d, ctl, err := c.controller(devID)
	if err != nil {
		return nil, err
	}
	ctls := ctl.Controls()
	var errs []error
	for _, id := range presetControls {
		v, saved := p.Values[id]
		cur, ok := find(ctls, id)
		if !saved || !ok {
			continue
		}
		v = min(max(v, cur.Min), cur.Max)
		if err := ctl.SetControl(ctx, id, v); err != nil {
			errs = append(errs, fmt.Errorf("set %s to %d: %w", id, v, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("device %q: recall preset %q: %w", devID, name, err)
	}
	c.log.Info("camera preset recalled", "device", devID, "preset", name)
	return d, nil
}

// DeletePreset removes a preset; deleting a missing one is ErrNoPreset.
func (c *Controller) DeletePreset(devID, name string) error {
	if c.store == nil {
		return fmt.Errorf("preset %q: %w", name, ErrNoPreset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.Delete(devID, name)
}

// validName accepts what a person types on a panel: 1–40 characters,
// letters, digits, spaces and - _ . ( ).
func validName(name string) error {
	if name == "" || len(name) > 40 {
		return fmt.Errorf("%w: name must be 1 to 40 characters, got %d", ErrInvalidPreset, len(name))
	}
	for _, r := range name {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" -_.()", r)
		if !ok {
			return fmt.Errorf("%w: name %q has %q; use letters, digits, spaces, - _ . ( )", ErrInvalidPreset, name, r)
		}
	}
	return nil
}
