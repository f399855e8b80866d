// Package sim is Atrium's simulated driver: a camera, a microphone and a
// speaker that behave like real ones (real-time pacing, modes, controls,
// unplug) without hardware, so the daemon, the demo and every end-to-end
// test run anywhere.
//
// The devices are built to be measured. Each camera frame carries its
// sequence number and capture time twice: as large digits for people and
// screenshots, and as a block code that survives lossy compression, read
// back with DecodeStamp. The microphone plays a steady tone with a louder
// beep at every BeepInterval boundary of the clock's wall time, so a
// receiver can measure delay; the speaker measures what it played
// (Speaker.Stats).
//
// Nothing here starts a goroutine: frames and samples are computed when
// read, from the clock, so a FakeClock makes tests fast and deterministic.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// DriverName is the driver's name in hal.Info.Driver.
const DriverName = "sim"

// Device IDs.
const (
	CameraID     = "sim:camera0"
	MicrophoneID = "sim:mic0"
	SpeakerID    = "sim:speaker0"
)

// Config configures the simulated devices. Zero fields take the defaults.
type Config struct {
	// CameraWidth, CameraHeight and CameraFPS are the camera's preferred
	// mode (default 1280x720 at 30 fps). The camera also offers 640x360 and
	// 1920x1080 at the same rate.
	CameraWidth, CameraHeight, CameraFPS int
	// ToneHz is the microphone's steady tone (default 440 Hz).
	ToneHz float64
	// BeepInterval is the spacing of the microphone's beeps (default 1s).
	// Beeps start at whole multiples of it since the Unix epoch.
	BeepInterval time.Duration
	// SampleRate is the microphone's and speaker's rate (default 48000).
	SampleRate int
	// Channels is the preferred channel count, listed first in Formats
	// (default 1). Mono and stereo are always both offered.
	Channels int
	// SpeakerBuffer is the speaker's device buffer: Write blocks while it is
	// full, and it is the speaker's contribution to latency (default 100ms).
	SpeakerBuffer time.Duration
	// Clock paces the devices; nil means the system clock.
	Clock Clock
	// Logger receives overruns, drops and unplug notices; nil discards.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultCameraWidth   = 1280
	DefaultCameraHeight  = 720
	DefaultCameraFPS     = 30
	DefaultToneHz        = 440.0
	DefaultBeepInterval  = time.Second
	DefaultSampleRate    = 48000
	DefaultChannels      = 1
	DefaultSpeakerBuffer = 100 * time.Millisecond
)

// Limits checked by New.
const (
	maxCameraWidth  = 7680
	maxCameraHeight = 4320
	maxCameraFPS    = 240
)

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.CameraWidth, DefaultCameraWidth)
	def(&c.CameraHeight, DefaultCameraHeight)
	def(&c.CameraFPS, DefaultCameraFPS)
	def(&c.SampleRate, DefaultSampleRate)
	def(&c.Channels, DefaultChannels)
	if c.ToneHz == 0 {
		c.ToneHz = DefaultToneHz
	}
	if c.BeepInterval == 0 {
		c.BeepInterval = DefaultBeepInterval
	}
	if c.SpeakerBuffer == 0 {
		c.SpeakerBuffer = DefaultSpeakerBuffer
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sim config: %s %s", field, fmt.Sprintf(format, args...)))
	}
	// I420 halves both dimensions for chroma, hence even sizes.
	if c.CameraWidth < 16 || c.CameraWidth > maxCameraWidth || c.CameraWidth%2 != 0 {
		bad("CameraWidth", "must be an even number from 16 to %d; got %d", maxCameraWidth, c.CameraWidth)
	}
	if c.CameraHeight < 16 || c.CameraHeight > maxCameraHeight || c.CameraHeight%2 != 0 {
		bad("CameraHeight", "must be an even number from 16 to %d; got %d", maxCameraHeight, c.CameraHeight)
	}
	if c.CameraFPS < 1 || c.CameraFPS > maxCameraFPS {
		bad("CameraFPS", "must be from 1 to %d; got %d", maxCameraFPS, c.CameraFPS)
	}
	if c.SampleRate < 8000 || c.SampleRate > 192000 {
		bad("SampleRate", "must be from 8000 to 192000; got %d", c.SampleRate)
	}
	if c.Channels != 1 && c.Channels != 2 {
		bad("Channels", "must be 1 or 2; got %d", c.Channels)
	}
	if !(c.ToneHz > 0 && c.ToneHz < float64(c.SampleRate)/2) { // also rejects NaN
		bad("ToneHz", "must be above 0 and below half the sample rate (%d Hz); got %g", c.SampleRate/2, c.ToneHz)
	}
	if c.BeepInterval < 2*beepLength || c.BeepInterval > time.Hour {
		bad("BeepInterval", "must be from %s to 1h; got %s", 2*beepLength, c.BeepInterval)
	}
	if c.SpeakerBuffer < time.Millisecond || c.SpeakerBuffer > 10*time.Second {
		bad("SpeakerBuffer", "must be from 1ms to 10s; got %s", c.SpeakerBuffer)
	}
	return errors.Join(errs...)
}

// Driver is the simulated driver. It implements hal.Driver and hal.Watcher.
type Driver struct {
	cfg     Config
	clock   Clock
	log     *slog.Logger
	camera  *Camera
	mic     *Microphone
	speaker *Speaker

	mu       sync.Mutex
	watchers map[*func()]struct{}
}

var (
	_ hal.Driver  = (*Driver)(nil)
	_ hal.Watcher = (*Driver)(nil)
)

// New validates cfg and returns the driver with all three devices present.
func New(cfg Config) (*Driver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		watchers: make(map[*func()]struct{}),
	}
	d.camera = newCamera(cfg)
	d.mic = newMicrophone(cfg)
	d.speaker = newSpeaker(cfg)
	return d, nil
}

// Name implements hal.Driver.
func (d *Driver) Name() string { return DriverName }

// Enumerate implements hal.Driver: the devices currently present, in the
// order camera, microphone, speaker.
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("enumerate simulated devices: %w", err)
	}
	var out []hal.Device
	if d.camera.plug.isPresent() {
		out = append(out, d.camera)
	}
	if d.mic.plug.isPresent() {
		out = append(out, d.mic)
	}
	if d.speaker.plug.isPresent() {
		out = append(out, d.speaker)
	}
	return out, nil
}

// Watch implements hal.Watcher: it calls changed after every SetPresent that
// changed something, until ctx is done. It also calls it once as soon as it
// is registered, because a SetPresent between the caller's enumeration and
// that moment would otherwise go unnoticed.
func (d *Driver) Watch(ctx context.Context, changed func()) error {
	key := &changed
	d.mu.Lock()
	d.watchers[key] = struct{}{}
	d.mu.Unlock()
	changed()
	<-ctx.Done()
	d.mu.Lock()
	delete(d.watchers, key)
	d.mu.Unlock()
	return nil
}

// Camera returns the simulated camera, present or not.
func (d *Driver) Camera() *Camera { return d.camera }

// Microphone returns the simulated microphone, present or not.
func (d *Driver) Microphone() *Microphone { return d.mic }

// Speaker returns the simulated speaker, present or not.
func (d *Driver) Speaker() *Speaker { return d.speaker }

// SetPresent plugs (true) or unplugs (false) the simulated device of the
// given kind. Unplugging ends its open streams with hal.ErrUnplugged and
// makes Open fail until it is plugged back; either way Enumerate reflects
// it and watchers are told. The device keeps its identity and controls
// across a replug, like a USB camera with a serial number.
func (d *Driver) SetPresent(kind hal.Kind, present bool) error {
	var p *plug
	switch kind {
	case hal.KindCamera:
		p = &d.camera.plug
	case hal.KindMicrophone:
		p = &d.mic.plug
	case hal.KindSpeaker:
		p = &d.speaker.plug
	default:
		return fmt.Errorf("set simulated %s present: no such simulated device", kind)
	}
	if !p.set(present) {
		return nil
	}
	if kind == hal.KindSpeaker && !present {
		d.speaker.unplugged()
	}
	d.log.Info("simulated device "+map[bool]string{true: "plugged in", false: "unplugged"}[present], "kind", kind)
	// Callbacks run outside d.mu so a watcher that enumerates in its
	// callback cannot deadlock with us.
	d.mu.Lock()
	cbs := make([]*func(), 0, len(d.watchers))
	for cb := range d.watchers {
		cbs = append(cbs, cb)
	}
	d.mu.Unlock()
	for _, cb := range cbs {
		(*cb)()
	}
	return nil
}

// plug tracks whether a device is present. gone is closed on unplug and
// replaced on replug, so each stream captures the channel of its own plug
// cycle at Open and is not revived by a later replug.
type plug struct {
	mu      sync.Mutex
	present bool
	gone    chan struct{}
}

func newPlug() plug { return plug{present: true, gone: make(chan struct{})} }

func (p *plug) isPresent() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present
}

// current returns the gone channel for a stream opening now, or false if
// the device is unplugged.
func (p *plug) current() (<-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gone, p.present
}

// set reports whether the state changed.
func (p *plug) set(present bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.present == present {
		return false
	}
	p.present = present
	if present {
		p.gone = make(chan struct{})
	} else {
		close(p.gone)
	}
	return true
}

// audioFormats lists the preferred channel count first.
func audioFormats(cfg Config) []hal.AudioFormat {
	f := []hal.AudioFormat{{SampleRate: cfg.SampleRate, Channels: 1}, {SampleRate: cfg.SampleRate, Channels: 2}}
	if cfg.Channels == 2 {
		slices.Reverse(f)
	}
	return f
}
