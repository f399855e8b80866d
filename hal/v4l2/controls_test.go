package v4l2

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
)

func ctrl(id uint32, typ uint32, name string, lo, hi int64, step uint64, def, value int64, flags uint32) *fakeCtrl {
	q := uapi.QueryExtCtrl{ID: id, Type: typ, Minimum: lo, Maximum: hi, Step: step, DefaultValue: def, Flags: flags}
	copy(q.Name[:], name)
	return &fakeCtrl{q: q, value: value}
}

// ptzCamera is a UVC PTZ camera as the kernel's uvcvideo presents one.
func ptzCamera(t *testing.T) *fakeDev {
	d := yuyvCamera(t, "uvcvideo", "PTZ Pro 2", "usb-1")
	add := func(c *fakeCtrl) { d.ctrls[c.q.ID] = c }
	add(ctrl(uapi.CIDBrightness, uapi.CtrlTypeInteger, "Brightness", 0, 255, 1, 128, 140, 0))
	contrast := ctrl(uapi.CIDContrast, uapi.CtrlTypeInteger, "Contrast", 0, 255, 5, 30, 30, 0)
	contrast.apply = func(v int64) int64 { return v / 10 * 10 } // a driver that rounds further
	add(contrast)
	add(ctrl(uapi.CIDSaturation, uapi.CtrlTypeInteger, "Saturation", 0, 255, 1, 128, 128, 0)) // not mapped
	exp := ctrl(uapi.CIDExposureAuto, uapi.CtrlTypeMenu, "Auto Exposure", 0, 3, 1, 3, 3, 0)
	exp.menu = map[uint32]string{1: "Manual Mode", 3: "Aperture Priority Mode"} // UVC offers no 0 and 2
	add(exp)
	add(ctrl(uapi.CIDExposureAbsolute, uapi.CtrlTypeInteger, "Exposure Time, Absolute", 3, 2047, 1, 250, 250, uapi.CtrlFlagInactive))
	add(ctrl(uapi.CIDExposure, uapi.CtrlTypeInteger, "Exposure", 0, 10, 1, 5, 5, 0)) // absolute wins
	add(ctrl(uapi.CIDAutoWhiteBalance, uapi.CtrlTypeBoolean, "White Balance, Automatic", 0, 1, 1, 1, 1, 0))
	add(ctrl(uapi.CIDWhiteBalanceTemperature, uapi.CtrlTypeInteger, "White Balance Temperature", 2000, 6500, 1, 4000, 4000, uapi.CtrlFlagInactive))
	add(ctrl(uapi.CIDFocusAbsolute, uapi.CtrlTypeInteger, "Focus, Absolute", 0, 255, 5, 0, 0, uapi.CtrlFlagReadOnly)) // not settable: skipped
	add(ctrl(uapi.CIDFocusAuto, uapi.CtrlTypeBoolean, "Focus, Automatic", 0, 1, 1, 1, 1, uapi.CtrlFlagDisabled))      // skipped
	add(ctrl(uapi.CIDZoomAbsolute, uapi.CtrlTypeInteger, "Zoom, Absolute", 100, 500, 1, 100, 100, 0))
	add(ctrl(uapi.CIDPanAbsolute, uapi.CtrlTypeInteger, "Pan, Absolute", -36000, 36000, 3600, 0, 0, 0))
	add(ctrl(uapi.CIDTiltAbsolute, uapi.CtrlTypeInteger, "Tilt, Absolute", -36000, 36000, 3600, 0, 0, 0))
	add(ctrl(uapi.CIDTiltRelative, uapi.CtrlTypeInteger, "Tilt, Relative", -10, 10, 1, 0, 0, uapi.CtrlFlagWriteOnly))
	return d
}

func TestControlsListAndMap(t *testing.T) {
	checkLeaks(t)
	sys := newFakeSystem(t)
	dev := ptzCamera(t)
	sys.addNode("video0", "PTZ Pro 2", "platform/ptz.0", dev)
	_, cam := openTestCamera(t, sys, nil)

	var got []string
	for _, c := range cam.Controls() {
		got = append(got, fmt.Sprintf("%s %s %d..%d/%d def %d = %d", c.ID, c.Type, c.Min, c.Max, c.Step, c.Default, c.Value))
	}
	want := []string{
		"brightness int 0..255/1 def 128 = 140",
		"contrast int 0..255/5 def 30 = 30",
		"exposure_auto menu 0..3/1 def 3 = 3",
		"exposure int 3..2047/1 def 250 = 250",
		"white_balance_auto bool 0..1/1 def 1 = 1",
		"white_balance int 2000..6500/1 def 4000 = 4000",
		"zoom int 100..500/1 def 100 = 100",
		"pan int -36000..36000/3600 def 0 = 0",
		"tilt int -36000..36000/3600 def 0 = 0",
		"zoom_relative int -400..400/1 def 0 = 0",
		"pan_relative int -20..20/1 def 0 = 0",
		"tilt_relative int -10..10/1 def 0 = 0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Controls =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if dev.openCount != 0 {
		t.Errorf("Controls left the node open: %s", dev)
	}
}

func TestSetControl(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	sys := newFakeSystem(t)
	dev := ptzCamera(t)
	sys.addNode("video0", "PTZ Pro 2", "platform/ptz.0", dev)
	_, cam := openTestCamera(t, sys, nil)

	for _, c := range []struct {
		id    hal.ControlID
		value int64
		err   error
	}{
		{hal.CtrlBrightness, 200, nil},
		{hal.CtrlBrightness, 256, hal.ErrOutOfRange},
		{hal.CtrlBrightness, -1, hal.ErrOutOfRange},
		{hal.CtrlContrast, 7, hal.ErrOutOfRange}, // off the step of 5
		{hal.CtrlContrast, 45, nil},              // the driver stores 40
		{hal.CtrlExposureAuto, 2, hal.ErrOutOfRange},
		{hal.CtrlExposureAuto, 1, nil},
		{hal.CtrlExposure, 1000, nil}, // inactive controls may be set
		{hal.CtrlWhiteBalanceAuto, 2, hal.ErrOutOfRange},
		{hal.CtrlFocus, 10, hal.ErrUnknownControl},    // read-only
		{hal.CtrlFocusAuto, 0, hal.ErrUnknownControl}, // disabled
		{"saturation", 10, hal.ErrUnknownControl},     // not a HAL control
		{hal.CtrlPan, 7200, nil},                      // two steps right
		{hal.CtrlPanRelative, 3, nil},                 // emulated: three more steps
		{hal.CtrlPanRelative, 21, hal.ErrOutOfRange},  // beyond the whole span
		{hal.CtrlZoomRelative, -5, nil},               // emulated, stops at the end
		{hal.CtrlTiltRelative, 4, nil},                // the camera's own (write-only)
		{hal.CtrlTiltRelative, 11, hal.ErrOutOfRange},
		{hal.CtrlZoom, 99, hal.ErrOutOfRange},
		{hal.CtrlVolume, 50, hal.ErrUnknownControl}, // an audio control
		{hal.CtrlWhiteBalance, 6500, nil},
		{hal.CtrlWhiteBalance, 6501, hal.ErrOutOfRange},
	} {
		err := cam.SetControl(ctx, c.id, c.value)
		if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("SetControl(%s, %d) = %v, want %v", c.id, c.value, err, c.err)
		}
	}
	// Only the valid sets reached the driver, with what it stored.
	wantSets := []string{
		fmt.Sprintf("%#x=200", uapi.CIDBrightness),
		fmt.Sprintf("%#x=40", uapi.CIDContrast),
		fmt.Sprintf("%#x=1", uapi.CIDExposureAuto),
		fmt.Sprintf("%#x=1000", uapi.CIDExposureAbsolute),
		fmt.Sprintf("%#x=7200", uapi.CIDPanAbsolute),
		fmt.Sprintf("%#x=18000", uapi.CIDPanAbsolute),
		fmt.Sprintf("%#x=100", uapi.CIDZoomAbsolute),
		fmt.Sprintf("%#x=4", uapi.CIDTiltRelative),
		fmt.Sprintf("%#x=6500", uapi.CIDWhiteBalanceTemperature),
	}
	if got := strings.Join(dev.setLog, " "); got != strings.Join(wantSets, " ") {
		t.Errorf("driver saw sets\n%s\nwant\n%s", got, strings.Join(wantSets, " "))
	}
	for _, c := range cam.Controls() {
		if c.ID == hal.CtrlContrast && c.Value != 40 {
			t.Errorf("contrast reads %d after the driver stored 40", c.Value)
		}
	}
	if dev.openCount != 0 {
		t.Errorf("SetControl left the node open: %s", dev)
	}
}
