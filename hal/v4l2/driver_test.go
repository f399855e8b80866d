package v4l2

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
)

func yuyvCamera(t *testing.T, driver, card, bus string) *fakeDev {
	d := newFakeDev(t, driver, card, bus)
	d.formats = []fakeFormat{{fourcc: uapi.PixFmtYUYV, sizes: []fakeSize{{w: 640, h: 360, fps: []int{30, 15}}, {w: 1280, h: 720, fps: []int{10}}}}}
	return d
}

// newTestDriver returns a driver on sys, logging to the test.
func newTestDriver(t *testing.T, sys *fakeSystem, clock Clock) *Driver {
	return newDriver(Options{Logger: testLogger(t), SysfsRoot: sys.sysfs, DevRoot: "/dev", Clock: clock}, sys.opener)
}

func ids(devs []hal.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.Info().ID)
	}
	return out
}

func TestEnumerateSkipsNonCamerasAndBuildsStableIDs(t *testing.T) {
	checkLeaks(t)
	sys := newFakeSystem(t)

	// vivid-like: a capture node, and output and metadata nodes of the same
	// device, which QUERYCAP's device_caps tells apart.
	sys.addNode("video0", "vivid-000-vid-cap", "platform/vivid.0", yuyvCamera(t, "vivid", "vivid", "platform:vivid-000"))
	out := yuyvCamera(t, "vivid", "vivid", "platform:vivid-000")
	out.cap.DeviceCaps = uapi.CapVideoOutput | uapi.CapStreaming
	sys.addNode("video1", "vivid-000-vid-out", "platform/vivid.0", out)
	meta := yuyvCamera(t, "vivid", "vivid", "platform:vivid-000")
	meta.cap.DeviceCaps = uapi.CapMetaCapture | uapi.CapStreaming
	sys.addNode("video2", "vivid-000-meta-cap", "platform/vivid.0", meta)
	// A mem2mem codec.
	m2m := yuyvCamera(t, "vicodec", "vicodec", "platform:vicodec")
	m2m.cap.DeviceCaps = uapi.CapVideoM2M | uapi.CapStreaming
	sys.addNode("video3", "stateful-encoder", "platform/vicodec.0", m2m)
	// An old-style mem2mem device without the M2M flag.
	old := yuyvCamera(t, "oldm2m", "oldm2m", "platform:oldm2m")
	old.cap.DeviceCaps = uapi.CapVideoCapture | uapi.CapVideoOutput | uapi.CapStreaming
	sys.addNode("video4", "oldm2m", "platform/oldm2m.0", old)
	// A USB camera with a serial, and its UVC metadata node.
	iface := sys.addUSB("1-2", "046d", "0825", "2A3F 1B2C")
	sys.addNode("video5", "UVC Camera (046d:0825)", iface, yuyvCamera(t, "uvcvideo", "UVC Camera (046d:0825)", "usb-0000:00:14.0-2"))
	uvcMeta := yuyvCamera(t, "uvcvideo", "UVC Camera (046d:0825)", "usb-0000:00:14.0-2")
	uvcMeta.cap.DeviceCaps = uapi.CapMetaCapture | uapi.CapStreaming
	sys.addNode("video6", "UVC Camera (046d:0825)", iface, uvcMeta)
	// A USB camera without one.
	iface2 := sys.addUSB("1-1.3", "1bcf", "2c99", "")
	sys.addNode("video7", "HD Webcam", iface2, yuyvCamera(t, "uvcvideo", "HD Webcam: HD Webcam", "usb-0000:00:14.0-1.3"))
	// A node whose driver only offers formats the HAL does not handle.
	rgb := yuyvCamera(t, "rgbcam", "rgbcam", "platform:rgbcam")
	rgb.formats[0].fourcc = uapi.PixFmtRGB24
	sys.addNode("video8", "rgbcam", "platform/rgbcam.0", rgb)
	// A node that vanished between readdir and open.
	sys.addNode("video9", "ghost", "platform/ghost.0", nil)
	sys.removeNodeDev("video9")

	d := newTestDriver(t, sys, nil)
	devs, err := d.Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"v4l2:usb-046d:0825-2A3F_1B2C",
		"v4l2:usb-1bcf:2c99@1-1.3",
		"v4l2:vivid/platform:vivid-000/vivid",
	}
	if got := ids(devs); !slices.Equal(got, want) {
		t.Fatalf("Enumerate IDs = %q, want %q", got, want)
	}
	for _, dev := range devs {
		info := dev.Info()
		if info.Kind != hal.KindCamera || info.Driver != "v4l2" || info.Simulated {
			t.Errorf("%s: Info %+v", info.ID, info)
		}
		if _, ok := dev.(hal.Camera); !ok {
			t.Errorf("%s is not a hal.Camera", info.ID)
		}
	}
	if got := devs[1].Info().Name; got != "HD Webcam: HD Webcam" {
		t.Errorf("Name = %q, want the card name", got)
	}
	// Nothing stays open after enumeration.
	for path, dev := range sys.devs {
		if dev != nil && dev.openCount != 0 {
			t.Errorf("%s left open: %s", path, dev)
		}
	}
}

// removeNodeDev makes a node's device file vanish but keeps its sysfs entry.
func (s *fakeSystem) removeNodeDev(sysName string) {
	s.mu.Lock()
	delete(s.devs, "/dev/"+sysName)
	s.mu.Unlock()
}

func TestIDCollisionsAreDisambiguated(t *testing.T) {
	checkLeaks(t)
	sys := newFakeSystem(t)
	// Two identical cameras with the same (useless) serial.
	for i, port := range []string{"1-1", "1-2"} {
		iface := sys.addUSB(port, "0c45", "6366", "SN0001")
		sys.addNode("video"+string(rune('0'+2*i)), "USB Cam", iface, yuyvCamera(t, "uvcvideo", "USB Cam", "usb-x-"+port))
	}
	// Two capture nodes of one platform device.
	sys.addNode("video4", "rkisp1_mainpath", "platform/isp.0", yuyvCamera(t, "rkisp1", "rkisp1", "platform:rkisp1"))
	sys.addNode("video5", "rkisp1_selfpath", "platform/isp.0", yuyvCamera(t, "rkisp1", "rkisp1", "platform:rkisp1"))

	devs, err := newTestDriver(t, sys, nil).Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"v4l2:rkisp1/platform:rkisp1/rkisp1#rkisp1_mainpath",
		"v4l2:rkisp1/platform:rkisp1/rkisp1#rkisp1_selfpath",
		"v4l2:usb-0c45:6366-SN0001@1-1",
		"v4l2:usb-0c45:6366-SN0001@1-2",
	}
	if got := ids(devs); !slices.Equal(got, want) {
		t.Fatalf("IDs = %q, want %q", got, want)
	}
}

func TestEnumerateWithoutVideo4Linux(t *testing.T) {
	sys := newFakeSystem(t) // no class/video4linux at all
	devs, err := newTestDriver(t, sys, nil).Enumerate(testContext(t))
	if err != nil || len(devs) != 0 {
		t.Fatalf("Enumerate = %v, %v; want nothing and no error", devs, err)
	}
}

func TestHandleSurvivesUnplugAndReplug(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t)
	sys := newFakeSystem(t)
	iface := sys.addUSB("1-4", "046d", "085b", "ABC")
	sys.addNode("video0", "Logitech Webcam C925e", iface, yuyvCamera(t, "uvcvideo", "Logitech Webcam C925e", "usb-1"))
	d := newTestDriver(t, sys, nil)

	devs, err := d.Enumerate(ctx)
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate = %v, %v", devs, err)
	}
	cam := devs[0].(*Camera)

	sys.removeNode("video0")
	devs, err = d.Enumerate(ctx)
	if err != nil || len(devs) != 0 {
		t.Fatalf("Enumerate after unplug = %v, %v; want none", ids(devs), err)
	}
	if _, err := cam.Open(ctx, cam.Modes()[0]); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open while unplugged: %v, want ErrUnplugged", err)
	}
	if err := cam.SetControl(ctx, hal.CtrlBrightness, 1); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("SetControl while unplugged: %v, want ErrUnplugged", err)
	}

	// Back on another node number, as after a reload.
	dev := yuyvCamera(t, "uvcvideo", "Logitech Webcam C925e", "usb-1")
	sys.addNode("video2", "Logitech Webcam C925e", iface, dev)
	devs, err = d.Enumerate(ctx)
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate after replug = %v, %v", ids(devs), err)
	}
	if devs[0] != hal.Device(cam) {
		t.Error("replugged camera got a new handle")
	}
	if cam.Node() != "/dev/video2" {
		t.Errorf("Node = %q, want /dev/video2", cam.Node())
	}
	s, err := cam.Open(ctx, cam.Modes()[0])
	if err != nil {
		t.Fatalf("Open after replug: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if dev.openCount != 0 {
		t.Errorf("after Close: %s", dev)
	}
}

// fakeWatcher records that Watch delegates.
type fakeWatcher struct{ calls int }

func (w *fakeWatcher) Watch(ctx context.Context, changed func()) error {
	w.calls++
	changed()
	return errors.New("fake watch ended")
}

func TestWatchDelegates(t *testing.T) {
	d := newTestDriver(t, newFakeSystem(t), nil)
	if d.Name() != "v4l2" {
		t.Errorf("Name = %q", d.Name())
	}
	w := &fakeWatcher{}
	d.watcher = w
	n := 0
	err := d.Watch(testContext(t), func() { n++ })
	if w.calls != 1 || n != 1 || err == nil || err.Error() != "fake watch ended" {
		t.Errorf("Watch: calls=%d changed=%d err=%v", w.calls, n, err)
	}
}
