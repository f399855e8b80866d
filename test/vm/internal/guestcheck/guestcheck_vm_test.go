//go:build vmguest

package guestcheck

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// v4l2Capability is struct v4l2_capability from linux/videodev2.h.
type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

// vidiocQuerycap is VIDIOC_QUERYCAP, _IOR('V', 0, struct v4l2_capability).
const vidiocQuerycap = 2<<30 | uint32(unsafe.Sizeof(v4l2Capability{}))<<16 | 'V'<<8 // nr 0

// Device capability bits from linux/videodev2.h.
const (
	capVideoCapture = 0x00000001
	capVideoOutput  = 0x00000002
	capVideoM2M     = 0x00008000
	capMetaCapture  = 0x00800000
	capStreaming    = 0x04000000
	capMetaOutput   = 0x08000000
	capTouch        = 0x10000000
)

type node struct {
	dev string // /dev/video3
	cap v4l2Capability
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// videoNodes maps each video4linux device's sysfs name to its node and the
// node's VIDIOC_QUERYCAP answer.
func videoNodes(t *testing.T) map[string]node {
	t.Helper()
	dirs, err := filepath.Glob("/sys/class/video4linux/*")
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]node{}
	for _, d := range dirs {
		name, err := os.ReadFile(filepath.Join(d, "name"))
		if err != nil {
			t.Fatalf("read sysfs name: %v", err)
		}
		dev := "/dev/" + filepath.Base(d)
		n := node{dev: dev}
		fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open %s: %v", dev, err)
		}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(vidiocQuerycap), uintptr(unsafe.Pointer(&n.cap)))
		unix.Close(fd)
		if errno != 0 {
			t.Fatalf("VIDIOC_QUERYCAP %s: %v", dev, errno)
		}
		nodes[strings.TrimSpace(string(name))] = n
	}
	return nodes
}

func TestEnvironment(t *testing.T) {
	if got := os.Getenv("ATRIUM_VM"); got != "1" {
		t.Errorf("ATRIUM_VM = %q, want 1", got)
	}
	if os.Geteuid() != 0 {
		t.Errorf("euid %d, want root", os.Geteuid())
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proc /proc proc", "sysfs /sys sysfs", "devtmpfs /dev devtmpfs", "devpts /dev/pts devpts", "tmpfs /dev/shm tmpfs", "tmpfs /tmp tmpfs", "tmpfs /run tmpfs"} {
		if !strings.Contains(string(mounts), want) {
			t.Errorf("/proc/mounts has no %q:\n%s", want, mounts)
		}
	}
	// The working directory is the package's own directory.
	wd, err := os.Getwd()
	if err != nil || wd != "/atrium/test/vm/internal/guestcheck" {
		t.Errorf("working directory %q (%v), want /atrium/test/vm/internal/guestcheck", wd, err)
	}
	if err := os.WriteFile(filepath.Join(os.TempDir(), "probe"), []byte("x"), 0o600); err != nil {
		t.Errorf("TMPDIR is not writable: %v", err)
	}
	loaded, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"vivid", "vicodec", "vim2m", "v4l2_mem2mem", "videodev", "snd_aloop", "snd_dummy"} {
		if !bytes.Contains(loaded, []byte("\n"+m+" ")) && !bytes.HasPrefix(loaded, []byte(m+" ")) {
			t.Errorf("module %s is not loaded; /proc/modules:\n%s", m, loaded)
		}
	}
}

// wantNodes are the video4linux devices doc.go promises, by sysfs name,
// with the driver and the device capabilities each must have and must not.
var wantNodes = []struct {
	name, driver, bus string
	have, lack        uint32
}{
	{"vivid-000-vid-cap", "vivid", "platform:vivid-000", capVideoCapture | capStreaming, capVideoM2M | capMetaCapture},
	{"vivid-000-vid-out", "vivid", "platform:vivid-000", capVideoOutput, capVideoCapture},
	{"vivid-000-meta-cap", "vivid", "platform:vivid-000", capMetaCapture, capVideoCapture},
	{"vivid-000-meta-out", "vivid", "platform:vivid-000", capMetaOutput, capVideoCapture},
	{"vivid-001-vid-cap", "vivid", "platform:vivid-001", capVideoCapture | capStreaming, capVideoM2M | capMetaCapture},
	{"vivid-001-meta-cap", "vivid", "platform:vivid-001", capMetaCapture, capVideoCapture},
	// A touch node also says V4L2_CAP_VIDEO_CAPTURE: only V4L2_CAP_TOUCH
	// tells it from a camera.
	{"vivid-001-touch-cap", "vivid", "platform:vivid-001", capTouch | capVideoCapture, capVideoM2M},
	{"stateful-encoder", "vicodec", "platform:vicodec", capVideoM2M | capStreaming, capVideoCapture},
	{"stateful-decoder", "vicodec", "platform:vicodec", capVideoM2M | capStreaming, capVideoCapture},
	{"stateless-decoder", "vicodec", "platform:vicodec", capVideoM2M | capStreaming, capVideoCapture},
	{"vim2m", "vim2m", "platform:vim2m", capVideoM2M | capStreaming, capVideoCapture},
}

func checkNodes(t *testing.T, nodes map[string]node) {
	t.Helper()
	for _, w := range wantNodes {
		n, ok := nodes[w.name]
		if !ok {
			t.Errorf("no video4linux device named %q; have %v", w.name, slices.Sorted(maps.Keys(nodes)))
			continue
		}
		c := n.cap
		if got := cstr(c.Driver[:]); got != w.driver {
			t.Errorf("%s (%s): driver %q, want %q", w.name, n.dev, got, w.driver)
		}
		if got := cstr(c.BusInfo[:]); got != w.bus {
			t.Errorf("%s (%s): bus_info %q, want %q", w.name, n.dev, got, w.bus)
		}
		if c.DeviceCaps&w.have != w.have || c.DeviceCaps&w.lack != 0 {
			t.Errorf("%s (%s): device caps %#x, want %#x set and %#x clear", w.name, n.dev, c.DeviceCaps, w.have, w.lack)
		}
	}
	// Exactly two cameras: capture nodes that are neither mem2mem nor touch.
	var cams []string
	for name, n := range nodes {
		if n.cap.DeviceCaps&capVideoCapture != 0 && n.cap.DeviceCaps&(capVideoM2M|capTouch) == 0 {
			cams = append(cams, name)
		}
	}
	slices.Sort(cams)
	if !slices.Equal(cams, []string{"vivid-000-vid-cap", "vivid-001-vid-cap"}) {
		t.Errorf("capture devices %v, want the two vivid ones", cams)
	}
}

func TestVideoNodes(t *testing.T) {
	nodes := videoNodes(t)
	checkNodes(t, nodes)
	for name, n := range nodes {
		t.Logf("%-20s %-14s driver=%s card=%q bus=%s caps=%#x", name, n.dev, cstr(n.cap.Driver[:]), cstr(n.cap.Card[:]), cstr(n.cap.BusInfo[:]), n.cap.DeviceCaps)
	}
}

func TestSound(t *testing.T) {
	for card, id := range map[string]string{"card0": "Loopback", "card1": "Dummy"} {
		b, err := os.ReadFile("/proc/asound/" + card + "/id")
		if err != nil {
			t.Errorf("sound %s: %v", card, err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != id {
			t.Errorf("sound %s: id %q, want %q", card, got, id)
		}
	}
	for _, n := range []string{"controlC0", "pcmC0D0p", "pcmC0D0c", "pcmC0D1p", "pcmC0D1c", "controlC1", "pcmC1D0p", "pcmC1D0c", "timer"} {
		st, err := os.Stat("/dev/snd/" + n)
		if err != nil {
			t.Errorf("sound node: %v", err)
			continue
		}
		if st.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("/dev/snd/%s is not a character device (%v)", n, st.Mode())
		}
	}
}

// uevents reads kernel uevents (NETLINK_KOBJECT_UEVENT) into a channel
// until the test's cleanup stops the reader.
func uevents(t *testing.T) <-chan string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		t.Fatalf("uevent socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		t.Fatalf("uevent bind: %v", err)
	}
	// Netlink sockets cannot be shut down to wake a blocked read: a
	// receive timeout lets the reader notice stop.
	tv := unix.Timeval{Usec: 100_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		t.Fatalf("uevent SO_RCVTIMEO: %v", err)
	}
	ch := make(chan string, 256)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				t.Errorf("uevent read: %v", err)
				return
			}
			// "ACTION@DEVPATH\0KEY=VALUE\0...": keep it printable.
			select {
			case ch <- strings.ReplaceAll(string(buf[:n]), "\x00", " "):
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		unix.Close(fd)
	})
	return ch
}

// waitEvent returns the first event containing every part, within 5 s.
func waitEvent(t *testing.T, ch <-chan string, parts ...string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-ch:
			match := true
			for _, p := range parts {
				match = match && strings.Contains(ev, p)
			}
			if match {
				return
			}
		case <-timeout:
			t.Fatalf("no uevent with %q within 5s", parts)
		}
	}
}

func command(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestModprobeReload unloads vivid and loads it again without options: the
// nodes must go and come back as at boot (the options come from
// /etc/modprobe.d), with uevents for both.
func TestModprobeReload(t *testing.T) {
	events := uevents(t)
	// rmmod, not modprobe -r: busybox's modprobe -r also tries to unload
	// vivid's dependencies and exits 1 when one is in use (videodev is,
	// by vicodec), although vivid itself is gone.
	command(t, "rmmod", "vivid")
	// Whatever happens next, later packages need vivid back.
	t.Cleanup(func() {
		if _, err := os.Stat("/sys/module/vivid"); err != nil {
			if out, err := exec.Command("modprobe", "vivid").CombinedOutput(); err != nil {
				t.Errorf("modprobe vivid at cleanup: %v\n%s", err, out)
			}
		}
	})
	waitEvent(t, events, "remove@", "SUBSYSTEM=video4linux")
	for name := range videoNodes(t) {
		if strings.HasPrefix(name, "vivid-") {
			t.Errorf("%s still there after modprobe -r vivid", name)
		}
	}
	if _, err := os.Stat("/sys/module/vivid"); err == nil {
		t.Error("/sys/module/vivid still there after modprobe -r vivid")
	}

	command(t, "modprobe", "vivid")
	waitEvent(t, events, "add@", "SUBSYSTEM=video4linux")
	checkNodes(t, videoNodes(t))
}

// pin locks the calling goroutine to its thread and the thread to cpu.
func pin(t *testing.T, cpu int) {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Errorf("pin to CPU %d: %v", cpu, err)
	}
}

// TestClock checks the guest's clock: the TSC clocksource the harness asks
// for, two CPUs, and a monotonic clock that never runs backwards when a
// reading on one CPU is compared with a later one on the other.
func TestClock(t *testing.T) {
	b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "tsc" {
		t.Errorf("clocksource %q, want tsc", got)
	}
	if n := runtime.NumCPU(); n != 2 {
		t.Fatalf("%d CPUs, want 2", n)
	}
	// Each side stamps a time and hands it over; the other side's own
	// stamp, taken after receiving, must not be earlier.
	const rounds = 5000
	toB, toA := make(chan time.Time), make(chan time.Time)
	var worstAB time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer runtime.UnlockOSThread()
		pin(t, 1)
		for sent := range toB {
			now := time.Now()
			worstAB = max(worstAB, sent.Sub(now))
			toA <- now
		}
	}()
	pin(t, 0)
	defer runtime.UnlockOSThread()
	var worstBA time.Duration
	start := time.Now()
	for range rounds {
		toB <- time.Now()
		sent := <-toA
		worstBA = max(worstBA, time.Until(sent))
	}
	close(toB)
	<-done
	t.Logf("%d round trips between CPU 0 and 1 in %s", rounds, time.Since(start))
	if worstAB > 0 || worstBA > 0 {
		t.Errorf("time ran backwards across CPUs: by %s from CPU 0 to 1, by %s from 1 to 0", worstAB, worstBA)
	}
}
