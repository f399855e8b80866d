//go:build vmguest

package v4l2

// Guest tests: run as root inside the QEMU guest of test/vm, against the
// kernel's vivid driver loaded with the options test/vm/doc.go documents
// (two instances: "vivid-000" with capture, output and metadata nodes,
// "vivid-001" with capture, metadata and touch nodes), and vicodec and vim2m,
// whose mem2mem nodes must not be taken for cameras.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
)

var vividIDs = []string{"v4l2:vivid/platform:vivid-000/vivid", "v4l2:vivid/platform:vivid-001/vivid"}

func vmContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func vmDriver(t *testing.T) *Driver {
	return New(Options{Logger: testLogger(t)})
}

// vmCameras enumerates and checks that exactly the two vivid cameras are
// there.
func vmCameras(t *testing.T, d *Driver) []*Camera {
	t.Helper()
	devs, err := d.Enumerate(vmContext(t))
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	if got := ids(devs); !slices.Equal(got, vividIDs) {
		t.Fatalf("Enumerate IDs = %q, want %q", got, vividIDs)
	}
	var out []*Camera
	for _, d := range devs {
		out = append(out, d.(*Camera))
	}
	return out
}

// sysNames maps the sysfs name of every video4linux node to its /dev path.
func sysNames(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/sys/class/video4linux")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, e := range entries {
		name := readAttr(filepath.Join("/sys/class/video4linux", e.Name()), "name")
		out[name] = "/dev/" + e.Name()
	}
	return out
}

func TestVMEnumerate(t *testing.T) {
	cams := vmCameras(t, vmDriver(t))
	nodes := sysNames(t)
	t.Logf("video4linux nodes: %v", nodes)

	// The nodes enumeration must skip are really there, so skipping them is
	// proven rather than assumed.
	for _, name := range []string{
		"vivid-000-vid-out", "vivid-000-meta-cap", "vivid-000-meta-out", "vivid-001-meta-cap",
		"stateful-encoder", "stateful-decoder", "stateless-decoder", "vim2m",
	} {
		if _, ok := nodes[name]; !ok {
			t.Errorf("node %q is missing from the guest; the test cannot prove it is skipped", name)
		}
	}
	// And the cameras are the vid-cap nodes.
	for i, c := range cams {
		want := nodes[fmt.Sprintf("vivid-%03d-vid-cap", i)]
		if c.Node() != want {
			t.Errorf("%s is at %s, want the vid-cap node %s", c.Info().ID, c.Node(), want)
		}
		info := c.Info()
		if info.Name != "vivid" || info.Kind != hal.KindCamera || info.Driver != DriverName {
			t.Errorf("Info = %+v", info)
		}
	}
}

func TestVMModes(t *testing.T) {
	cams := vmCameras(t, vmDriver(t))
	for _, c := range cams {
		modes := c.Modes()
		byFormat := make(map[hal.PixelFormat]int)
		for _, m := range modes {
			byFormat[m.Format]++
		}
		t.Logf("%s: %d modes %v", c.Info().ID, len(modes), byFormat)
		for _, want := range []hal.VideoMode{
			{Width: 640, Height: 360, FPS: 30, Format: hal.PixelYUYV},
			{Width: 1280, Height: 720, Format: hal.PixelYUYV},
			{Width: 640, Height: 360, Format: hal.PixelNV12},
			{Width: 320, Height: 180, Format: hal.PixelI420},
		} {
			if !slices.ContainsFunc(modes, func(m hal.VideoMode) bool {
				return m.Width == want.Width && m.Height == want.Height && m.Format == want.Format && (want.FPS == 0 || m.FPS == want.FPS)
			}) {
				t.Errorf("%s: no mode like %+v", c.Info().ID, want)
			}
		}
		best, ok := hal.BestMode(modes, hal.VideoMode{Width: 1280, Height: 720, FPS: 30, Format: hal.PixelI420})
		t.Logf("%s: best for 720p30 I420: %+v %v", c.Info().ID, best, ok)
		if !ok || best.Width != 1280 || best.Height != 720 {
			t.Errorf("BestMode for 720p = %+v, %v", best, ok)
		}
	}
}

// fastest returns the mode of format at w×h with the highest rate.
func fastest(t *testing.T, c *Camera, f hal.PixelFormat, w, h int) hal.VideoMode {
	t.Helper()
	var best hal.VideoMode
	for _, m := range c.Modes() {
		if m.Format == f && m.Width == w && m.Height == h && m.FPS > best.FPS {
			best = m
		}
	}
	if best.FPS == 0 {
		t.Fatalf("%s has no %s %dx%d mode", c.Info().ID, f, w, h)
	}
	return best
}

func TestVMCapture(t *testing.T) {
	cams := vmCameras(t, vmDriver(t))
	for _, c := range []struct {
		cam  *Camera
		mode hal.VideoMode
		size int
	}{
		{cams[0], fastest(t, cams[0], hal.PixelYUYV, 640, 360), 640 * 360 * 2},
		{cams[1], fastest(t, cams[1], hal.PixelNV12, 1280, 720), 1280*720 + 2*640*360},
		{cams[0], fastest(t, cams[0], hal.PixelI420, 320, 180), 320*180 + 2*160*90},
	} {
		t.Run(fmt.Sprintf("%s %dx%d@%d %s", c.cam.Info().ID, c.mode.Width, c.mode.Height, c.mode.FPS, c.mode.Format), func(t *testing.T) {
			ctx := vmContext(t)
			s, err := c.cam.Open(ctx, c.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			start := time.Now()
			var last hal.VideoFrame
			const n = 30
			for i := range n {
				f, err := s.ReadFrame(ctx)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.Width != c.mode.Width || f.Height != c.mode.Height || f.Format != c.mode.Format || len(f.Data) != c.size {
					t.Fatalf("frame %d: %dx%d %s, %d bytes; want %d", i, f.Width, f.Height, f.Format, len(f.Data), c.size)
				}
				if i > 0 && f.Seq <= last.Seq {
					t.Errorf("frame %d: seq %d after %d", i, f.Seq, last.Seq)
				}
				if age := time.Since(f.CapturedAt); age < 0 || age > time.Second {
					t.Errorf("frame %d: CapturedAt %v is %v before now", i, f.CapturedAt, age)
				}
				if !slices.ContainsFunc(f.Data, func(b byte) bool { return b != 0 }) {
					t.Errorf("frame %d is all zero", i)
				}
				last = f
			}
			el := time.Since(start)
			t.Logf("%d frames in %v (%.1f fps), last seq %d (gaps: %d)", n, el, float64(n)/el.Seconds(), last.Seq, int(last.Seq)+1-n)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ReadFrame(ctx); !errors.Is(err, hal.ErrClosed) {
				t.Errorf("ReadFrame after Close: %v", err)
			}
		})
	}
}

func controlValue(t *testing.T, c *Camera, id hal.ControlID) hal.Control {
	t.Helper()
	for _, ctl := range c.Controls() {
		if ctl.ID == id {
			return ctl
		}
	}
	t.Fatalf("%s has no control %s", c.Info().ID, id)
	return hal.Control{}
}

func TestVMControls(t *testing.T) {
	ctx := vmContext(t)
	cam := vmCameras(t, vmDriver(t))[0]
	for _, ctl := range cam.Controls() {
		t.Logf("control %+v", ctl)
	}
	for _, id := range []hal.ControlID{hal.CtrlBrightness, hal.CtrlContrast} {
		c := controlValue(t, cam, id)
		target := c.Min + (c.Max-c.Min)/4
		if target == c.Value {
			target++
		}
		if err := cam.SetControl(ctx, id, target); err != nil {
			t.Fatalf("SetControl(%s, %d): %v", id, target, err)
		}
		if got := controlValue(t, cam, id).Value; got != target {
			t.Errorf("%s reads %d after setting %d", id, got, target)
		}
		if err := cam.SetControl(ctx, id, c.Max+1); !errors.Is(err, hal.ErrOutOfRange) {
			t.Errorf("SetControl(%s, max+1): %v, want ErrOutOfRange", id, err)
		}
		if err := cam.SetControl(ctx, id, c.Min-1); !errors.Is(err, hal.ErrOutOfRange) {
			t.Errorf("SetControl(%s, min-1): %v, want ErrOutOfRange", id, err)
		}
		if got := controlValue(t, cam, id).Value; got != target {
			t.Errorf("%s reads %d after refused sets, want %d", id, got, target)
		}
		if err := cam.SetControl(ctx, id, c.Default); err != nil {
			t.Errorf("restoring %s: %v", id, err)
		}
	}
	// vivid has no camera-class controls.
	if err := cam.SetControl(ctx, hal.CtrlExposure, 100); !errors.Is(err, hal.ErrUnknownControl) {
		t.Errorf("SetControl(exposure) on vivid: %v, want ErrUnknownControl", err)
	}
	// Controls can be set while streaming, through another handle.
	s, err := cam.Open(ctx, fastest(t, cam, hal.PixelYUYV, 320, 180))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cam.SetControl(ctx, hal.CtrlBrightness, 200); err != nil {
		t.Errorf("SetControl while streaming: %v", err)
	}
	if got := controlValue(t, cam, hal.CtrlBrightness).Value; got != 200 {
		t.Errorf("brightness reads %d while streaming, want 200", got)
	}
	_ = cam.SetControl(ctx, hal.CtrlBrightness, controlValue(t, cam, hal.CtrlBrightness).Default)
}

// changes counts a Watch's notifications.
type changes struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func (c *changes) changed() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// waitFor waits for the watcher to notify and then for cond to hold on a
// fresh enumeration.
func waitFor(t *testing.T, c *changes, d *Driver, what string, cond func([]string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-c.ch:
			devs, err := d.Enumerate(vmContext(t))
			if err != nil {
				t.Fatalf("Enumerate: %v", err)
			}
			if cond(ids(devs)) {
				return time.Since(start)
			}
		case <-deadline:
			devs, _ := d.Enumerate(vmContext(t))
			t.Fatalf("no hotplug notification led to %s within 10s; Enumerate says %q", what, ids(devs))
		}
	}
}

func modprobe(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("/sbin/modprobe", args...).CombinedOutput()
	if err != nil {
		mods, _ := os.ReadFile("/proc/modules")
		_, serr := os.Stat("/sys/module/vivid")
		t.Fatalf("modprobe %s: %v\n%s\n/sys/module/vivid: %v\n/proc/modules:\n%s", strings.Join(args, " "), err, out, serr, mods)
	}
}

// unloadVivid runs modprobe -r vivid. Busybox's modprobe then also tries
// to remove vivid's dependencies, fails on those vicodec and vim2m share
// (videodev, videobuf2-*), and exits 1 although vivid itself is gone; so
// success is judged by /sys/module/vivid.
func unloadVivid(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/sbin/modprobe", "-r", "vivid").CombinedOutput()
	if _, serr := os.Stat("/sys/module/vivid"); serr == nil {
		t.Fatalf("modprobe -r vivid left the module loaded: %v\n%s", err, out)
	}
	if err != nil {
		t.Logf("modprobe -r vivid: %v (vivid is unloaded; a shared dependency stayed)", err)
	}
}

// unbind detaches vivid's platform device from its driver, which is what a
// USB unplug does to a UVC camera: the nodes are unregistered while they are
// open.
func unbind(t *testing.T, dev string) {
	t.Helper()
	if err := os.WriteFile("/sys/bus/platform/drivers/vivid/unbind", []byte(dev), 0); err != nil {
		t.Fatalf("unbind %s: %v", dev, err)
	}
}

func TestVMHotplug(t *testing.T) {
	d := vmDriver(t)
	cams := vmCameras(t, d)
	ctx, cancel := context.WithCancel(vmContext(t))
	c := &changes{ch: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	var watchErr error
	wg.Go(func() { watchErr = d.Watch(ctx, c.changed) })
	defer func() {
		cancel()
		wg.Wait()
		if watchErr != nil {
			t.Errorf("Watch: %v", watchErr)
		}
	}()
	// Watch calls changed once as soon as it is watching.
	select {
	case <-c.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not report that it is watching")
	}
	// Whatever happens below, leave vivid as the next package expects it.
	defer func() {
		_ = exec.Command("/sbin/modprobe", "-r", "vivid").Run()
		if err := exec.Command("/sbin/modprobe", "vivid").Run(); err != nil {
			t.Errorf("reloading vivid: %v", err)
		}
		if _, err := os.Stat("/sys/module/vivid"); err != nil {
			t.Errorf("vivid is not loaded at the end: %v", err)
		}
	}()

	// 1. vivid's "Disconnect" button makes camera 1 behave as unplugged while
	// its stream is open.
	s1, err := cams[1].Open(ctx, fastest(t, cams[1], hal.PixelYUYV, 640, 360))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	pressDisconnect(t, cams[1].Node())
	if _, err := readUntilError(ctx, s1); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("ReadFrame after Disconnect: %v, want ErrUnplugged", err)
	}
	s1.Close()

	// 2. Unbinding vivid.0 under an open stream: the real unplug path. Both
	// vivid instances hang off the one platform device vivid.0, so both
	// cameras go.
	s0, err := cams[0].Open(ctx, fastest(t, cams[0], hal.PixelYUYV, 640, 360))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s0.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	unbind(t, "vivid.0")
	_, err = readUntilError(ctx, s0)
	if !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("ReadFrame after unbind: %v, want ErrUnplugged", err)
	}
	t.Logf("ReadFrame noticed the unbind after %v: %v", time.Since(start), err)
	took := waitFor(t, c, d, "no cameras", func(ids []string) bool { return len(ids) == 0 })
	t.Logf("Watcher + Enumerate dropped both cameras %v after the unbind", took)
	if _, err := cams[0].Open(ctx, cams[0].Modes()[0]); !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("Open of the unplugged camera: %v, want ErrUnplugged", err)
	}
	if err := s0.Close(); err != nil {
		t.Errorf("Close after unplug: %v", err)
	}

	// 3. Rebinding brings both back with the same IDs.
	if err := os.WriteFile("/sys/bus/platform/drivers/vivid/bind", []byte("vivid.0"), 0); err != nil {
		t.Fatalf("bind vivid.0: %v", err)
	}
	took = waitFor(t, c, d, "both cameras back", func(ids []string) bool { return slices.Equal(ids, vividIDs) })
	t.Logf("after rebinding vivid.0: both cameras back after %v", took)

	// 4. modprobe -r: everything goes (no node of ours is open, so the
	// module can be unloaded; an open node would pin it).
	unloadVivid(t)
	took = waitFor(t, c, d, "no cameras", func(ids []string) bool { return len(ids) == 0 })
	t.Logf("after modprobe -r vivid: no cameras after %v", took)

	// 5. modprobe: both come back with the same IDs, and the old handles
	// work again.
	start = time.Now()
	modprobe(t, "vivid")
	took = waitFor(t, c, d, "both cameras back", func(ids []string) bool { return slices.Equal(ids, vividIDs) })
	t.Logf("after modprobe vivid: both cameras back after %v (load took part of %v)", took, time.Since(start))
	for _, cam := range cams {
		s, err := cam.Open(ctx, fastest(t, cam, hal.PixelYUYV, 320, 180))
		if err != nil {
			t.Errorf("Open of %s after reload: %v", cam.Info().ID, err)
			continue
		}
		if _, err := s.ReadFrame(ctx); err != nil {
			t.Errorf("ReadFrame of %s after reload: %v", cam.Info().ID, err)
		}
		s.Close()
	}
	c.mu.Lock()
	t.Logf("watcher notified %d times", c.n)
	c.mu.Unlock()
}

// readUntilError reads frames (which may still be queued) until an error.
func readUntilError(ctx context.Context, s hal.VideoStream) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for n := 0; ; n++ {
		if _, err := s.ReadFrame(ctx); err != nil {
			return n, err
		}
	}
}

// pressDisconnect sets vivid's "Disconnect" button control.
func pressDisconnect(t *testing.T, node string) {
	t.Helper()
	dev, err := uapi.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ctrls, err := dev.EnumControls()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range ctrls {
		if q.CtrlName() == "Disconnect" {
			if _, err := dev.SetCtrl(q.ID, 1); err != nil {
				t.Fatalf("press Disconnect: %v", err)
			}
			return
		}
	}
	t.Fatal("vivid has no Disconnect control")
}

// BenchmarkVMCapture720p measures, per frame at 1280x720 YUYV, the time from
// the driver's buffer timestamp to ReadFrame's return (the driver's part of
// capture-to-encode latency: waiting for the reader, dequeue and the one
// copy) and the copy alone.
func BenchmarkVMCapture720p(b *testing.B) {
	d := New(Options{})
	devs, err := d.Enumerate(context.Background())
	if err != nil || len(devs) == 0 {
		b.Fatalf("Enumerate = %v, %v", devs, err)
	}
	cam := devs[0].(*Camera)
	var mode hal.VideoMode
	for _, m := range cam.Modes() {
		if m.Format == hal.PixelYUYV && m.Width == 1280 && m.Height == 720 && m.FPS > mode.FPS {
			mode = m
		}
	}
	if mode.FPS == 0 {
		b.Fatal("no 1280x720 YUYV mode")
	}
	ctx := context.Background()
	s, err := cam.Open(ctx, mode)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ReadFrame(ctx); err != nil { // the first frame includes start-up
		b.Fatal(err)
	}
	var lat time.Duration
	n := 0
	b.SetBytes(int64(1280 * 720 * 2))
	for b.Loop() {
		f, err := s.ReadFrame(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat += time.Since(f.CapturedAt)
		n++
	}
	b.ReportMetric(float64(lat.Microseconds())/float64(n)/1000, "ms-latency/frame")
	b.ReportMetric(float64(mode.FPS), "mode-fps")
}
