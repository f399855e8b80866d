package v4l2

import (
	"fmt"
	"slices"
	"testing"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
)

func TestModesFromDiscreteAndStepwise(t *testing.T) {
	checkLeaks(t)
	sys := newFakeSystem(t)
	dev := newFakeDev(t, "uvcvideo", "Cam", "usb-1")
	dev.formats = []fakeFormat{
		{fourcc: uapi.PixFmtMJPEG, sizes: []fakeSize{{w: 1920, h: 1080, fps: []int{30}}}},
		// JPEG maps to MJPG too; the duplicate mode is listed once.
		{fourcc: uapi.PixFmtJPEG, sizes: []fakeSize{{w: 1920, h: 1080, fps: []int{30}}, {w: 640, h: 480, fps: []int{30}}}},
		{fourcc: uapi.PixFmtRGB24, sizes: []fakeSize{{w: 640, h: 480, fps: []int{30}}}}, // skipped
		{fourcc: uapi.PixFmtYUYV, sizes: []fakeSize{{w: 640, h: 360, ivals: &uapi.FrmIvalStepwise{
			Min: uapi.Fract{Numerator: 1, Denominator: 30}, Max: uapi.Fract{Numerator: 1, Denominator: 10}, Step: uapi.Fract{Numerator: 1, Denominator: 30},
		}}}},
		{fourcc: uapi.PixFmtNV12, stepwise: &uapi.FrmSizeStepwise{MinWidth: 320, MaxWidth: 1280, StepWidth: 16, MinHeight: 180, MaxHeight: 720, StepHeight: 4}},
		{fourcc: uapi.PixFmtH264, sizes: []fakeSize{{w: 1280, h: 720, fps: []int{30}}}},
	}
	sys.addNode("video0", "Cam", "platform/cam.0", dev)
	devs, err := newTestDriver(t, sys, nil).Enumerate(testContext(t))
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate = %v, %v", devs, err)
	}
	var got []string
	for _, m := range devs[0].(hal.Camera).Modes() {
		got = append(got, fmt.Sprintf("%s %dx%d@%d", m.Format, m.Width, m.Height, m.FPS))
	}
	want := []string{
		"MJPG 1920x1080@30",
		"MJPG 640x480@30",
		"YUYV 640x360@10", "YUYV 640x360@15", "YUYV 640x360@20", "YUYV 640x360@24", "YUYV 640x360@25", "YUYV 640x360@30",
		// 320..1280 step 16 × 180..720 step 4: 320x180, 320x240, 640x360,
		// 640x480, 960x540 (540-180=360, on the step) and 1280x720; the
		// fake offers 30 and 15 fps for them.
		"NV12 320x180@30", "NV12 320x180@15", "NV12 320x240@30", "NV12 320x240@15",
		"NV12 640x360@30", "NV12 640x360@15", "NV12 640x480@30", "NV12 640x480@15",
		"NV12 960x540@30", "NV12 960x540@15", "NV12 1280x720@30", "NV12 1280x720@15",
		"H264 1280x720@30",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Modes =\n%q\nwant\n%q", got, want)
	}
}
