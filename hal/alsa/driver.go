package alsa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/hotplug"
)

// DriverName is the name the driver registers under, and Info.Driver.
const DriverName = "alsa"

// Defaults for Options.
const (
	// DefaultPeriodTime is the period asked for: 10 ms is what WebRTC's
	// audio pipeline moves per step, so a period is one frame of work.
	DefaultPeriodTime = 10 * time.Millisecond
	// DefaultPeriods is the buffer length in periods: four give a writer
	// 30 ms of slack before an underrun, for 40 ms of latency at most.
	DefaultPeriods = 4
)

// Options configures New.
type Options struct {
	// DevDir is the device directory holding snd/; "" means "/dev".
	DevDir string
	// SysDir is where sysfs is mounted; "" means "/sys".
	SysDir string
	// PeriodTime and Periods shape the hardware buffer of the streams the
	// driver opens; 0 means DefaultPeriodTime and DefaultPeriods. The
	// device may round them.
	PeriodTime time.Duration
	Periods    int
	// Debounce is the hotplug quiet period; 0 means hotplug's default.
	Debounce time.Duration
	// Logger receives xruns, hotplug and enumeration problems; nil
	// discards.
	Logger *slog.Logger
}

// Driver enumerates ALSA PCM devices and follows sound hotplug. It
// implements hal.Driver and hal.Watcher; its methods are safe for concurrent
// use.
type Driver struct {
	devDir, sysDir string
	periodTime     time.Duration
	periods        int
	log            *slog.Logger

	// Seams, replaced by tests.
	sys     system
	now     func() time.Time
	watcher hal.Watcher

	// scanMu serialises enumerations; mu guards devices.
	scanMu sync.Mutex
	mu     sync.Mutex
	// devices holds every device ever seen, by ID, present or not, so a
	// device that comes back keeps its handle.
	devices map[string]*device
}

// New returns a driver for opts. It touches nothing until Enumerate or
// Watch.
func New(opts Options) *Driver {
	d := &Driver{
		devDir:     opts.DevDir,
		sysDir:     opts.SysDir,
		periodTime: opts.PeriodTime,
		periods:    opts.Periods,
		log:        opts.Logger,
		sys:        osSystem{},
		now:        time.Now,
		devices:    make(map[string]*device),
	}
	if d.devDir == "" {
		d.devDir = "/dev"
	}
	if d.sysDir == "" {
		d.sysDir = "/sys"
	}
	if d.periodTime <= 0 {
		d.periodTime = DefaultPeriodTime
	}
	if d.periods <= 0 {
		d.periods = DefaultPeriods
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.watcher = hotplug.New(hotplug.Options{
		Subsystems:  []string{"sound"},
		DevDir:      d.devDir,
		DevPrefixes: []string{"snd/"},
		Debounce:    opts.Debounce,
		Logger:      d.log,
	})
	return d
}

// Name implements hal.Driver.
func (d *Driver) Name() string { return DriverName }

// Watch implements hal.Watcher through a hotplug.Monitor on the "sound"
// subsystem.
func (d *Driver) Watch(ctx context.Context, changed func()) error {
	return d.watcher.Watch(ctx, changed)
}

// Enumerate implements hal.Driver: every playback PCM device is a *Speaker
// and every capture one a *Microphone. A device seen before keeps its
// handle; one that went away reports hal.ErrUnplugged from Open until it
// comes back. A card that cannot be read is logged and skipped, so one
// broken card does not hide the others.
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	d.scanMu.Lock()
	defer d.scanMu.Unlock()

	indices, err := d.listCards()
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var out []hal.Device
	for _, idx := range indices {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("alsa: enumerate: %w", err)
		}
		c, err := d.readCard(idx)
		if err != nil {
			if isGone(err) {
				d.log.Debug("alsa: card went away during enumeration", "card", idx, "err", err)
			} else {
				d.log.Warn("alsa: skipping card", "card", idx, "err", fmt.Errorf("alsa: %w", err))
			}
			continue
		}
		for _, p := range c.pcms {
			id := deviceID(c, p)
			if seen[id] {
				d.log.Warn("alsa: duplicate device ID; keeping the first", "id", id, "card", idx)
				continue
			}
			seen[id] = true
			dev := d.device(id, p.capture)
			formats, err := d.probe(idx, p)
			if err != nil {
				// Busy (another program has it): keep what an earlier
				// probe found.
				d.log.Debug("alsa: cannot probe formats", "id", id, "err", err)
				formats = nil
			}
			dev.update(c, p, formats)
			out = append(out, dev.handle())
		}
	}
	d.mu.Lock()
	for id, dev := range d.devices {
		if !seen[id] {
			dev.setAbsent()
		}
	}
	d.mu.Unlock()
	return out, nil
}

// device returns the handle for id, creating it on first sight.
func (d *Driver) device(id string, capture bool) *device {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev, ok := d.devices[id]
	if !ok {
		dev = &device{drv: d, id: id, capture: capture}
		d.devices[id] = dev
	}
	return dev
}

// probe opens a PCM device to learn its formats.
func (d *Driver) probe(cardIndex int, p pcmEntry) ([]hal.AudioFormat, error) {
	path := pcmPath(d.devDir, cardIndex, p.device, p.capture)
	fd, err := d.sys.Open(path, unix.O_RDWR|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = d.sys.Close(fd) }()
	return probeFormats(d.sys, fd), nil
}

// location is where a device is now: card index, the card's id (to notice
// another card taking a freed index) and PCM device number.
type location struct {
	card   int
	cardID string
	pcm    int
}

// openPCM opens a PCM device node, on the given subdevice when sub >= 0.
// It first checks, through the control device, that the card at the index
// is still the one enumerated.
func (d *Driver) openPCM(loc location, capture bool, sub int) (fd, subdevice int, err error) {
	// The preferred subdevice is recorded per control file and looked up
	// by the opening thread: keep both opens on this thread.
	unlock := d.sys.LockThread()
	defer unlock()

	ctl, err := d.openCtl(loc.card)
	if err != nil {
		return -1, 0, mapOpenErr(err)
	}
	defer func() { _ = d.sys.Close(ctl) }()
	var ci ctlCardInfo
	if err := d.sys.Ioctl(ctl, ctlIoctlCardInfo, unsafe.Pointer(&ci)); err != nil {
		return -1, 0, fmt.Errorf("card info: %w", mapIOErr(err))
	}
	if got := cstr(ci.ID[:]); got != loc.cardID {
		return -1, 0, fmt.Errorf("card %d is now %q: %w", loc.card, got, hal.ErrUnplugged)
	}
	if sub >= 0 {
		pref := int32(sub)
		if err := d.sys.Ioctl(ctl, ctlIoctlPCMPreferSubdev, unsafe.Pointer(&pref)); err != nil {
			return -1, 0, fmt.Errorf("prefer subdevice %d: %w", sub, mapIOErr(err))
		}
	}
	path := pcmPath(d.devDir, loc.card, loc.pcm, capture)
	fd, err = d.sys.Open(path, unix.O_RDWR|unix.O_NONBLOCK)
	if err != nil {
		return -1, 0, fmt.Errorf("open %s: %w", path, mapOpenErr(err))
	}
	var info pcmInfo
	if err := d.sys.Ioctl(fd, pcmIoctlInfo, unsafe.Pointer(&info)); err != nil {
		_ = d.sys.Close(fd)
		return -1, 0, fmt.Errorf("pcm info: %w", mapIOErr(err))
	}
	if sub >= 0 && int(info.Subdevice) != sub {
		_ = d.sys.Close(fd)
		return -1, 0, fmt.Errorf("asked for subdevice %d, got %d: %w", sub, info.Subdevice, hal.ErrBusy)
	}
	return fd, int(info.Subdevice), nil
}

// mapOpenErr turns an open's errno into the HAL's sentinels, keeping it.
func mapOpenErr(err error) error {
	switch {
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("%w: %w", hal.ErrBusy, err)
	case isGone(err):
		return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
	}
	return err
}

// mapIOErr marks errors that mean the device went away.
func mapIOErr(err error) error {
	if isGone(err) {
		return fmt.Errorf("%w: %w", hal.ErrUnplugged, err)
	}
	return err
}

// isGone reports whether err means the device is no longer there: its node
// vanished (ENOENT, ENXIO), or ALSA disconnected the card under an open
// file, whose calls then fail with ENODEV.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) ||
		errors.Is(err, hal.ErrUnplugged)
}

// device is the state shared by a Speaker or Microphone handle.
type device struct {
	drv     *Driver
	id      string
	capture bool

	mu         sync.Mutex
	info       hal.Info
	loc        location
	subdevices int
	formats    []hal.AudioFormat
	mixer      mixerBinding
	present    bool
}

// update records what the latest enumeration found.
func (dev *device) update(c *card, p pcmEntry, formats []hal.AudioFormat) {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	dev.info = hal.Info{ID: dev.id, Kind: kind(p.capture), Name: deviceName(c, p), Driver: DriverName}
	dev.loc = location{card: c.index, cardID: c.id, pcm: p.device}
	dev.subdevices = p.subdevices
	if formats != nil || !dev.present {
		dev.formats = formats
	}
	dev.mixer = bindMixer(c.mixer, p.capture)
	dev.present = true
}

func (dev *device) setAbsent() {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	dev.present = false
}

func (dev *device) handle() hal.Device {
	if dev.capture {
		return &Microphone{dev}
	}
	return &Speaker{dev}
}

// Info implements hal.Device.
func (dev *device) Info() hal.Info {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	return dev.info
}

// Formats lists the usual formats (48, 44.1 and 16 kHz; mono and stereo)
// that the device accepted when last enumerated. It is empty when the
// device was busy every time it was probed.
func (dev *device) Formats() []hal.AudioFormat {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	return slices.Clone(dev.formats)
}

// ALSAName returns the device's hw: name for its current card, as
// libasound programs (aplay -D, PipeWire's api.alsa.path) spell it, e.g.
// "hw:CARD=Loopback,DEV=0".
func (dev *device) ALSAName() string {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	return fmt.Sprintf("hw:CARD=%s,DEV=%d", dev.loc.cardID, dev.loc.pcm)
}

// Subdevices returns how many substreams the device has (8 for each
// snd-aloop device, usually 1).
func (dev *device) Subdevices() int {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	return dev.subdevices
}

// snapshot returns where the device is, or ErrUnplugged.
func (dev *device) snapshot(op string) (location, []hal.AudioFormat, mixerBinding, error) {
	dev.mu.Lock()
	defer dev.mu.Unlock()
	if !dev.present {
		return location{}, nil, mixerBinding{}, fmt.Errorf("alsa: %s %s: %w", op, dev.id, hal.ErrUnplugged)
	}
	return dev.loc, dev.formats, dev.mixer, nil
}

// Controls implements hal.Controller: volume (percent of the element's
// range) and mute, where the card has mixer elements for the device's
// direction; none otherwise, or when the card cannot be read.
func (dev *device) Controls() []hal.Control {
	loc, _, mixer, err := dev.snapshot("controls")
	if err != nil || (mixer.volume == nil && mixer.sw == nil) {
		return nil
	}
	fd, err := dev.drv.openCtl(loc.card)
	if err != nil {
		dev.drv.log.Debug("alsa: cannot read controls", "id", dev.id, "err", err)
		return nil
	}
	defer func() { _ = dev.drv.sys.Close(fd) }()
	ctrls, err := mixer.controls(dev.drv.sys, fd)
	if err != nil {
		dev.drv.log.Debug("alsa: cannot read controls", "id", dev.id, "err", err)
	}
	return ctrls
}

// SetControl implements hal.Controller for hal.CtrlVolume (0–100) and
// hal.CtrlMute (0 or 1). A stereo element has its channels set alike.
func (dev *device) SetControl(ctx context.Context, id hal.ControlID, value int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("alsa: set %s on %s: %w", id, dev.id, err)
	}
	loc, _, mixer, err := dev.snapshot("set " + string(id) + " on")
	if err != nil {
		return err
	}
	if !mixer.has(id) {
		return fmt.Errorf("alsa: set %s on %s: %w", id, dev.id, hal.ErrUnknownControl)
	}
	fd, err := dev.drv.openCtl(loc.card)
	if err != nil {
		return fmt.Errorf("alsa: set %s on %s: %w", id, dev.id, mapOpenErr(err))
	}
	defer func() { _ = dev.drv.sys.Close(fd) }()
	if err := mixer.set(dev.drv.sys, fd, id, value); err != nil {
		return fmt.Errorf("alsa: set %s on %s: %w", id, dev.id, mapIOErr(err))
	}
	return nil
}

// Speaker is a playback PCM device. It implements hal.Speaker and
// hal.Controller.
type Speaker struct{ *device }

// Microphone is a capture PCM device. It implements hal.Microphone and
// hal.Controller.
type Microphone struct{ *device }

// Open implements hal.Speaker on whichever subdevice the kernel picks (the
// first free one).
func (s *Speaker) Open(ctx context.Context, f hal.AudioFormat) (hal.AudioPlayback, error) {
	p, err := s.OpenSubdevice(ctx, f, -1)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// OpenSubdevice opens substream sub (or any free one when sub < 0). It
// matters for snd-aloop, where playback subdevice N of device 0 loops back
// to capture subdevice N of device 1.
func (s *Speaker) OpenSubdevice(ctx context.Context, f hal.AudioFormat, sub int) (*Playback, error) {
	st, err := s.open(ctx, f, sub)
	if err != nil {
		return nil, err
	}
	return &Playback{st}, nil
}

// Open implements hal.Microphone on whichever subdevice the kernel picks.
func (m *Microphone) Open(ctx context.Context, f hal.AudioFormat) (hal.AudioCapture, error) {
	c, err := m.OpenSubdevice(ctx, f, -1)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// OpenSubdevice opens substream sub (or any free one when sub < 0).
func (m *Microphone) OpenSubdevice(ctx context.Context, f hal.AudioFormat, sub int) (*Capture, error) {
	st, err := m.open(ctx, f, sub)
	if err != nil {
		return nil, err
	}
	return &Capture{st}, nil
}

// open opens and configures a stream.
func (dev *device) open(ctx context.Context, f hal.AudioFormat, sub int) (*stream, error) {
	fail := func(err error) (*stream, error) {
		return nil, fmt.Errorf("alsa: open %s: %w", dev.id, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	loc, formats, _, err := dev.snapshot("open")
	if err != nil {
		return nil, err
	}
	if f.SampleRate <= 0 || f.Channels <= 0 || (len(formats) > 0 && !slices.Contains(formats, f)) {
		return fail(fmt.Errorf("%d Hz × %d: %w", f.SampleRate, f.Channels, hal.ErrUnsupportedMode))
	}
	d := dev.drv
	fd, subdevice, err := d.openPCM(loc, dev.capture, sub)
	if err != nil {
		return fail(err)
	}
	st := &stream{
		sys:       d.sys,
		log:       d.log.With("id", dev.id, "subdevice", subdevice),
		now:       d.now,
		id:        dev.id,
		fd:        fd,
		capture:   dev.capture,
		format:    f,
		subdevice: subdevice,
	}
	if err := st.setup(d.periodTime, d.periods); err != nil {
		st.closeFD()
		return fail(err)
	}
	return st, nil
}
