package v4l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/hotplug"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// DriverName is the driver's name in hal.Info.Driver and Driver.Name.
const DriverName = "v4l2"

// Defaults of Options.
const (
	DefaultSysfsRoot = "/sys"
	DefaultDevRoot   = "/dev"
)

// Clock is the time source of frame timestamps. The real one reads the wall
// clock and CLOCK_MONOTONIC, the clock V4L2 stamps buffers with.
type Clock interface {
	// Now returns the wall-clock time.
	Now() time.Time
	// Monotonic returns CLOCK_MONOTONIC's reading.
	Monotonic() time.Duration
}

// Options configures New. The zero value is the real system.
type Options struct {
	// Logger receives enumeration and capture problems; nil discards.
	Logger *slog.Logger
	// Clock stamps frames; nil means the system clocks.
	Clock Clock
	// SysfsRoot is where sysfs is mounted (DefaultSysfsRoot if empty); tests
	// point it at a fake tree.
	SysfsRoot string
	// DevRoot is the device directory (DefaultDevRoot if empty).
	DevRoot string
}

// Driver finds V4L2 cameras. It implements hal.Driver and hal.Watcher; its
// methods are safe for concurrent use.
type Driver struct {
	log     *slog.Logger
	clock   Clock
	sysfs   string
	dev     string
	open    uapi.Opener
	watcher hal.Watcher

	// enumMu serialises Enumerate, so two cannot mark each other's
	// cameras gone.
	enumMu sync.Mutex
	// mu guards cams: every camera ever enumerated, by ID, so handles stay
	// valid across unplug and replug.
	mu   sync.Mutex
	cams map[string]*Camera
}

var (
	_ hal.Driver  = (*Driver)(nil)
	_ hal.Watcher = (*Driver)(nil)
)

// New returns the driver. It opens nothing until Enumerate or Watch.
func New(opts Options) *Driver { return newDriver(opts, uapi.OpenFD) }

// newDriver is New with the device-node seam, for tests.
func newDriver(opts Options, open uapi.Opener) *Driver {
	d := &Driver{
		log:   opts.Logger,
		clock: opts.Clock,
		sysfs: opts.SysfsRoot,
		dev:   opts.DevRoot,
		open:  open,
		cams:  make(map[string]*Camera),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("driver", DriverName)
	if d.clock == nil {
		d.clock = systemClock{}
	}
	if d.sysfs == "" {
		d.sysfs = DefaultSysfsRoot
	}
	if d.dev == "" {
		d.dev = DefaultDevRoot
	}
	d.watcher = hotplug.New(hotplug.Options{
		Subsystems:  []string{"video4linux"},
		DevDir:      d.dev,
		DevPrefixes: []string{"video"},
		Logger:      d.log,
	})
	return d
}

// Name returns DriverName.
func (d *Driver) Name() string { return DriverName }

// Watch calls changed when video4linux devices come and go (hal.Watcher).
func (d *Driver) Watch(ctx context.Context, changed func()) error {
	return d.watcher.Watch(ctx, changed)
}

// node is one capture node found in sysfs and confirmed by QUERYCAP.
type node struct {
	sysName string // "video0"
	name    string // sysfs name attribute: "vivid-000-vid-cap", "HD Pro Webcam C920"
	path    string // /dev/video0
	cap     uapi.Capability
	bufType uint32
	usb     *usbInfo
	id      string
}

// usbInfo is what sysfs says about a node's USB device.
type usbInfo struct {
	vendor, product, serial string
	port                    string // the USB device's sysfs name: "1-1.2"
	iface                   string // bInterfaceNumber of the node's interface: "00"
}

// Enumerate lists the capture devices present now (hal.Driver).
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	d.enumMu.Lock()
	defer d.enumMu.Unlock()
	classDir := filepath.Join(d.sysfs, "class", "video4linux")
	entries, err := os.ReadDir(classDir)
	if errors.Is(err, os.ErrNotExist) {
		// No videodev module loaded: no cameras, not an error.
		entries = nil
	} else if err != nil {
		return nil, fmt.Errorf("v4l2: enumerate: %w", err)
	}
	var nodes []*node
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(e.Name(), "video") {
			continue // vbi, radio, swradio, v4l-touch, v4l-subdev
		}
		n, ok := d.probe(filepath.Join(classDir, e.Name()), e.Name())
		if ok {
			nodes = append(nodes, n)
		}
	}
	assignIDs(nodes)

	d.mu.Lock()
	cams := make([]*Camera, len(nodes))
	for i, n := range nodes {
		cam := d.cams[n.id]
		if cam == nil {
			cam = newCamera(d, n.id)
			d.cams[n.id] = cam
		}
		cams[i] = cam
	}
	d.mu.Unlock()

	var out []hal.Device
	present := make(map[*Camera]bool)
	for i, n := range nodes {
		if err := cams[i].refresh(n); err != nil {
			d.log.Warn("camera skipped: cannot list its modes", "node", n.path, "id", n.id, "err", err)
			continue
		}
		present[cams[i]] = true
		out = append(out, cams[i])
	}
	d.mu.Lock()
	for _, cam := range d.cams {
		if !present[cam] {
			cam.markGone()
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b hal.Device) int { return strings.Compare(a.Info().ID, b.Info().ID) })
	return out, nil
}

// probe reads one video4linux class entry and asks its node for its
// capabilities; ok is false for nodes that are not cameras.
func (d *Driver) probe(dir, sysName string) (*node, bool) {
	n := &node{sysName: sysName, name: readAttr(dir, "name")}
	devName := sysName
	if v, ok := ueventVar(dir, "DEVNAME"); ok {
		devName = v
	}
	n.path = filepath.Join(d.dev, devName)
	dev, err := uapi.OpenWith(d.open, n.path)
	if err != nil {
		// Gone between readdir and open, or not ours to open (yet).
		d.log.Warn("video node skipped: cannot open it", "node", n.path, "err", err)
		return nil, false
	}
	defer dev.Close()
	n.cap, err = dev.QueryCap()
	if err != nil {
		d.log.Warn("video node skipped: VIDIOC_QUERYCAP failed", "node", n.path, "err", err)
		return nil, false
	}
	caps := n.cap.NodeCaps()
	switch {
	case caps&(uapi.CapVideoM2M|uapi.CapVideoM2MMPlane) != 0:
		return nil, false // a codec or converter
	case caps&(uapi.CapVideoOutput|uapi.CapVideoOutputMPlane) != 0 && caps&(uapi.CapVideoCapture|uapi.CapVideoCaptureMPlane) != 0:
		return nil, false // an old-style mem2mem device without the M2M flag
	case caps&uapi.CapStreaming == 0:
		return nil, false // read() only: not supported
	case caps&uapi.CapVideoCapture != 0:
		n.bufType = uapi.BufTypeVideoCapture
	case caps&uapi.CapVideoCaptureMPlane != 0:
		n.bufType = uapi.BufTypeVideoCaptureMPlane
	default:
		return nil, false // output, metadata, touch, VBI, radio, SDR
	}
	n.usb = findUSB(d.sysfs, dir)
	return n, true
}

// assignIDs gives every node its stable ID (see the package doc).
func assignIDs(nodes []*node) {
	for _, n := range nodes {
		n.id = baseID(n)
	}
	// Disambiguate collisions, in steps that are each stable for a given
	// set of plugged devices: the USB port, then the USB interface or the
	// sysfs name, and as a last resort (unstable, logged by the caller) the
	// node's name.
	for _, suffix := range []func(*node) string{
		func(n *node) string {
			if n.usb != nil && n.usb.serial != "" {
				return "@" + clean(n.usb.port)
			}
			return ""
		},
		func(n *node) string {
			if n.usb != nil && n.usb.iface != "" {
				return "#if" + clean(n.usb.iface)
			}
			return "#" + clean(n.name)
		},
		func(n *node) string { return "#" + n.sysName },
	} {
		count := make(map[string]int)
		for _, n := range nodes {
			count[n.id]++
		}
		for _, n := range nodes {
			if count[n.id] > 1 {
				n.id += suffix(n)
			}
		}
	}
}

func baseID(n *node) string {
	if u := n.usb; u != nil {
		if u.serial != "" {
			return fmt.Sprintf("%s:usb-%s:%s-%s", DriverName, clean(u.vendor), clean(u.product), clean(u.serial))
		}
		return fmt.Sprintf("%s:usb-%s:%s@%s", DriverName, clean(u.vendor), clean(u.product), clean(u.port))
	}
	return fmt.Sprintf("%s:%s/%s/%s", DriverName, clean(n.cap.DriverName()), clean(n.cap.Bus()), clean(n.cap.CardName()))
}

// clean keeps an ID readable and free of separators config files or shells
// would trip on.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// findUSB walks up from a video4linux entry's device to the USB device that
// holds it, if any: the first ancestor with idVendor and idProduct.
func findUSB(sysfs, classEntry string) *usbInfo {
	dir, err := filepath.EvalSymlinks(filepath.Join(classEntry, "device"))
	if err != nil {
		return nil
	}
	top := filepath.Clean(filepath.Join(sysfs, "devices"))
	if t, err := filepath.EvalSymlinks(top); err == nil {
		top = t
	}
	iface := ""
	for strings.HasPrefix(dir, top+string(filepath.Separator)) {
		vendor, product := readAttr(dir, "idVendor"), readAttr(dir, "idProduct")
		if vendor != "" && product != "" {
			return &usbInfo{vendor: vendor, product: product, serial: readAttr(dir, "serial"), port: filepath.Base(dir), iface: iface}
		}
		if iface == "" {
			iface = readAttr(dir, "bInterfaceNumber")
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// readAttr returns a sysfs attribute's first line, or "" when it is missing.
func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// ueventVar returns a variable of a sysfs uevent file.
func ueventVar(dir, key string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "uevent"))
	if err != nil {
		return "", false
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key && v != "" {
			return v, true
		}
	}
	return "", false
}

// systemClock is the real Clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
