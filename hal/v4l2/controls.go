package v4l2

import (
	"context"
	"errors"
	"fmt"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// ctrlMapping ties a HAL control to the V4L2 controls that implement it.
type ctrlMapping struct {
	id hal.ControlID
	// cids are the V4L2 controls, preferred first.
	cids []uint32
	// emulateOn is the absolute control a relative one is emulated on
	// when the camera has none of cids.
	emulateOn uint32
}

// ctrlMappings is the table of the package doc's Controls section, in the
// order Controls lists them.
func ctrlMappings() []ctrlMapping {
	return []ctrlMapping{
		{id: hal.CtrlBrightness, cids: []uint32{uapi.CIDBrightness}},
		{id: hal.CtrlContrast, cids: []uint32{uapi.CIDContrast}},
		{id: hal.CtrlExposureAuto, cids: []uint32{uapi.CIDExposureAuto}},
		{id: hal.CtrlExposure, cids: []uint32{uapi.CIDExposureAbsolute, uapi.CIDExposure}},
		{id: hal.CtrlWhiteBalanceAuto, cids: []uint32{uapi.CIDAutoWhiteBalance}},
		{id: hal.CtrlWhiteBalance, cids: []uint32{uapi.CIDWhiteBalanceTemperature}},
		{id: hal.CtrlFocusAuto, cids: []uint32{uapi.CIDFocusAuto}},
		{id: hal.CtrlFocus, cids: []uint32{uapi.CIDFocusAbsolute}},
		{id: hal.CtrlZoom, cids: []uint32{uapi.CIDZoomAbsolute}},
		{id: hal.CtrlPan, cids: []uint32{uapi.CIDPanAbsolute}},
		{id: hal.CtrlTilt, cids: []uint32{uapi.CIDTiltAbsolute}},
		{id: hal.CtrlZoomRelative, cids: []uint32{uapi.CIDZoomRelative}, emulateOn: uapi.CIDZoomAbsolute},
		{id: hal.CtrlPanRelative, cids: []uint32{uapi.CIDPanRelative}, emulateOn: uapi.CIDPanAbsolute},
		{id: hal.CtrlTiltRelative, cids: []uint32{uapi.CIDTiltRelative}, emulateOn: uapi.CIDTiltAbsolute},
	}
}

// resolved is a HAL control bound to a V4L2 control of one device.
type resolved struct {
	ctrl     hal.Control
	q        uapi.QueryExtCtrl // the V4L2 control (the absolute one when emulated)
	emulated bool              // a relative move on q, in steps of q.Step
}

// usable reports whether a V4L2 control can back a HAL control: present,
// not disabled or read-only, and of a type hal.Control can describe.
func usable(q uapi.QueryExtCtrl) bool {
	if q.Flags&(uapi.CtrlFlagDisabled|uapi.CtrlFlagReadOnly) != 0 {
		return false
	}
	switch q.Type {
	case uapi.CtrlTypeInteger, uapi.CtrlTypeBoolean, uapi.CtrlTypeMenu, uapi.CtrlTypeInteger64:
		return true
	}
	return false
}

// resolve binds one mapping on a device, given a way to query a control;
// ok is false when the device has nothing for it.
func resolve(m ctrlMapping, query func(cid uint32) (uapi.QueryExtCtrl, bool)) (resolved, bool) {
	for _, cid := range m.cids {
		if q, ok := query(cid); ok && usable(q) {
			return resolved{ctrl: describe(m.id, q), q: q}, true
		}
	}
	if m.emulateOn == 0 {
		return resolved{}, false
	}
	q, ok := query(m.emulateOn)
	if !ok || !usable(q) || q.Type != uapi.CtrlTypeInteger {
		return resolved{}, false
	}
	step := max(int64(q.Step), 1)
	span := (q.Maximum - q.Minimum) / step
	return resolved{
		ctrl: hal.Control{
			ID: m.id, Name: q.CtrlName() + " (relative)", Type: hal.ControlInt,
			Min: -span, Max: span, Step: 1,
		},
		q:        q,
		emulated: true,
	}, true
}

func describe(id hal.ControlID, q uapi.QueryExtCtrl) hal.Control {
	c := hal.Control{
		ID: id, Name: q.CtrlName(), Type: hal.ControlInt,
		Min: q.Minimum, Max: q.Maximum, Step: int64(q.Step), Default: q.DefaultValue,
	}
	switch q.Type {
	case uapi.CtrlTypeBoolean:
		c.Type = hal.ControlBool
	case uapi.CtrlTypeMenu:
		c.Type = hal.ControlMenu
	}
	return c
}

// readControls lists the mapped controls of an open device with their
// current values.
func readControls(dev *uapi.Device) ([]hal.Control, error) {
	all, err := dev.EnumControls()
	if err != nil {
		return nil, err
	}
	byID := make(map[uint32]uapi.QueryExtCtrl, len(all))
	for _, q := range all {
		byID[q.ID] = q
	}
	query := func(cid uint32) (uapi.QueryExtCtrl, bool) { q, ok := byID[cid]; return q, ok }
	var out []hal.Control
	for _, m := range ctrlMappings() {
		r, ok := resolve(m, query)
		if !ok {
			continue
		}
		if !r.emulated && r.q.Flags&uapi.CtrlFlagWriteOnly == 0 {
			v, err := getValue(dev, r.q)
			if err != nil {
				if uapi.Gone(err) {
					return nil, err
				}
				// A control the driver will not read now (a UVC camera that
				// refuses GET_CUR) still shows, with its default.
				v = r.q.DefaultValue
			}
			r.ctrl.Value = v
		}
		out = append(out, r.ctrl)
	}
	return out, nil
}

func getValue(dev *uapi.Device, q uapi.QueryExtCtrl) (int64, error) {
	c := []uapi.ExtControl{{ID: q.ID}}
	if err := dev.GetExtCtrls(uapi.CtrlWhichCurVal, c); err != nil {
		return 0, err
	}
	if q.Type == uapi.CtrlTypeInteger64 {
		return c[0].Int64(), nil
	}
	return int64(c[0].Int32()), nil
}

func setValue(dev *uapi.Device, q uapi.QueryExtCtrl, v int64) error {
	c := []uapi.ExtControl{{ID: q.ID}}
	if q.Type == uapi.CtrlTypeInteger64 {
		c[0].SetInt64(v)
	} else {
		c[0].SetInt32(int32(v))
	}
	return dev.SetExtCtrls(uapi.CtrlWhichCurVal, c)
}

// setControl range-checks and applies one control on an open device,
// returning the value read back (the requested one for write-only and
// emulated controls).
func setControl(ctx context.Context, dev *uapi.Device, id hal.ControlID, value int64) (int64, error) {
	var m *ctrlMapping
	for _, cm := range ctrlMappings() {
		if cm.id == id {
			m = &cm
			break
		}
	}
	if m == nil {
		return 0, hal.ErrUnknownControl
	}
	var qerr error
	r, ok := resolve(*m, func(cid uint32) (uapi.QueryExtCtrl, bool) {
		q, err := dev.QueryExtCtrl(cid)
		if err != nil {
			if !errors.Is(err, unix.EINVAL) && qerr == nil {
				qerr = err
			}
			return q, false
		}
		return q, true
	})
	if qerr != nil {
		return 0, qerr
	}
	if !ok {
		return 0, hal.ErrUnknownControl
	}
	c := r.ctrl
	if value < c.Min || value > c.Max {
		return 0, fmt.Errorf("%d not in %d..%d: %w", value, c.Min, c.Max, hal.ErrOutOfRange)
	}
	if c.Step > 1 && (value-c.Min)%c.Step != 0 {
		return 0, fmt.Errorf("%d not on the step %d from %d: %w", value, c.Step, c.Min, hal.ErrOutOfRange)
	}
	if c.Type == hal.ControlMenu {
		if _, err := dev.QueryMenu(r.q.ID, uint32(value)); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return 0, fmt.Errorf("menu has no item %d: %w", value, hal.ErrOutOfRange)
			}
			return 0, err
		}
	}
	if r.q.Flags&uapi.CtrlFlagGrabbed != 0 {
		return 0, fmt.Errorf("control is grabbed while streaming: %w", hal.ErrBusy)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	target := value
	if r.emulated {
		cur, err := getValue(dev, r.q)
		if err != nil {
			return 0, err
		}
		step := max(int64(r.q.Step), 1)
		target = min(max(cur+value*step, r.q.Minimum), r.q.Maximum)
	}
	if err := setValue(dev, r.q, target); err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			return 0, fmt.Errorf("%w: %w", hal.ErrBusy, err)
		case errors.Is(err, unix.ERANGE):
			return 0, fmt.Errorf("%w: %w", hal.ErrOutOfRange, err)
		}
		return 0, err
	}
	if r.emulated || r.q.Flags&uapi.CtrlFlagWriteOnly != 0 {
		return value, nil
	}
	got, err := getValue(dev, r.q)
	if err != nil {
		return target, nil // applied; reading back is a courtesy
	}
	return got, nil
}
