package m2m

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

// DriverName is the driver's name, in hal.Info.Driver too.
const DriverName = "v4l2-m2m"

// DefaultMaxSessions is the session limit the codecs report in
// hal.CodecCaps when Config.MaxSessions is 0. V4L2 has no way to ask a
// mem2mem driver how many contexts it can run at once and drivers rarely
// document it; embedded decoders commonly manage 3 or 4 streams in real
// time, so 4 is the conservative guess. A device that cannot open one more
// session says so at open (EBUSY or ENOMEM, returned as hal.ErrBusy), which
// is how the real limit is found when it is lower.
const DefaultMaxSessions = 4

// DefaultFrameTimeout is how long Encode and Decode wait for the device
// when Config.FrameTimeout is 0. It is long for hardware (a frame takes
// milliseconds) and for vicodec under QEMU's CPU emulation (about 100 ms
// per 720p frame), and short enough that a stall is noticed. hal/codecsel
// gives up on a stalled call sooner (its StallTimeout, 1 s by default).
const DefaultFrameTimeout = 2 * time.Second

// DefaultKeyframeInterval is the keyframe spacing when
// VideoEncoderConfig.KeyframeInterval is 0, the same as the software
// encoders'. Drivers cap it to their GOP size control's range (vicodec: 16
// frames).
const DefaultKeyframeInterval = 3 * time.Second

// Config configures the driver. The zero value probes the real system.
type Config struct {
	// Logger receives probe results (debug) and session events; nil
	// discards.
	Logger *slog.Logger
	// Sysfs is the video4linux class directory (its entries are video0,
	// video1, ... each with a "name" file); nil is
	// /sys/class/video4linux. A missing directory means no devices.
	Sysfs fs.FS
	// DevDir is where the device nodes are; empty is /dev.
	DevDir string
	// Open opens a device node; nil is v4l2.OpenFD.
	Open v4l2.Opener
	// MaxSessions is the session limit reported in hal.CodecCaps; 0 is
	// DefaultMaxSessions.
	MaxSessions int
	// FrameTimeout bounds each wait for the device in Encode and Decode;
	// 0 is DefaultFrameTimeout.
	FrameTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Sysfs == nil {
		c.Sysfs = os.DirFS("/sys/class/video4linux")
	}
	if c.DevDir == "" {
		c.DevDir = "/dev"
	}
	if c.Open == nil {
		c.Open = v4l2.OpenFD
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = DefaultFrameTimeout
	}
	return c
}

// Driver finds V4L2 mem2mem stateful encoders and decoders. It implements
// hal.Driver; mem2mem codecs are part of the SoC (or, for vicodec, a
// module), not hotplugged, so it does not watch.
type Driver struct {
	cfg Config
	log *slog.Logger
}

var _ hal.Driver = (*Driver)(nil)

// New returns a driver.
func New(cfg Config) *Driver {
	cfg = cfg.withDefaults()
	return &Driver{cfg: cfg, log: cfg.Logger}
}

// Name implements hal.Driver.
func (d *Driver) Name() string { return DriverName }

// Enumerate implements hal.Driver: one *Encoder per stateful encoder
// node and one *Decoder per stateful decoder node, in node order. Nodes
// that are not mem2mem, that convert raw to raw (vim2m), or that are
// stateless decoders (they need the request API) are left out. A node that
// cannot be opened or queried is logged and skipped, so one broken node
// does not hide the others.
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	entries, err := fs.ReadDir(d.cfg.Sysfs, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("v4l2-m2m: list video4linux devices: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "video") {
			names = append(names, e.Name())
		}
	}
	// video2 before video10.
	slices.SortFunc(names, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	var out []hal.Device
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		node, err := d.probe(n)
		if err != nil {
			d.log.Warn("skip video node", "node", n, "err", err)
			continue
		}
		if node == nil {
			continue
		}
		out = append(out, node.devices(d.cfg)...)
	}
	return out, nil
}

// codecFormats maps the coded V4L2 formats of stateful codecs to HAL codecs.
var codecFormats = map[uint32]hal.Codec{
	v4l2.PixFmtH264: hal.CodecH264,
	v4l2.PixFmtVP8:  hal.CodecVP8,
	v4l2.PixFmtVP9:  hal.CodecVP9,
	v4l2.PixFmtFWHT: hal.CodecFWHT,
}

// codecFormat is one coded format of a node.
type codecFormat struct {
	caps   hal.CodecCaps
	fourcc uint32
	flags  uint32 // of the V4L2 format description
}

// node is what probing found about one mem2mem node.
type node struct {
	path, sysName     string
	driver, card, bus string
	outType, capType  uint32
	encodes           []codecFormat // coded formats on CAPTURE, raw on OUTPUT
	rawIn             []uint32      // raw OUTPUT formats an encoder takes
	decodes           []codecFormat // coded formats on OUTPUT
}

// probe opens one node and classifies it; nil, nil means "not a codec".
func (d *Driver) probe(name string) (*node, error) {
	sysName := ""
	if b, err := fs.ReadFile(d.cfg.Sysfs, path.Join(name, "name")); err == nil {
		sysName = strings.TrimSpace(string(b))
	}
	devPath := path.Join(d.cfg.DevDir, name)
	dev, err := v4l2.OpenWith(d.cfg.Open, devPath)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	capab, err := dev.QueryCap()
	if err != nil {
		return nil, err
	}
	caps := capab.NodeCaps()
	n := &node{path: devPath, sysName: sysName, driver: capab.DriverName(), card: capab.CardName(), bus: capab.Bus()}
	switch {
	case caps&v4l2.CapVideoM2MMPlane != 0,
		// Some older drivers say capture and output instead of M2M.
		caps&v4l2.CapVideoCaptureMPlane != 0 && caps&v4l2.CapVideoOutputMPlane != 0:
		n.outType, n.capType = v4l2.BufTypeVideoOutputMPlane, v4l2.BufTypeVideoCaptureMPlane
	case caps&v4l2.CapVideoM2M != 0,
		caps&v4l2.CapVideoCapture != 0 && caps&v4l2.CapVideoOutput != 0:
		n.outType, n.capType = v4l2.BufTypeVideoOutput, v4l2.BufTypeVideoCapture
	default:
		return nil, nil
	}
	if caps&v4l2.CapStreaming == 0 {
		return nil, nil
	}
	outFmts, err := dev.EnumFormats(n.outType)
	if err != nil {
		return nil, err
	}
	capFmts, err := dev.EnumFormats(n.capType)
	if err != nil {
		return nil, err
	}
	maxSize := func(f uint32) (int, int) {
		sizes, err := dev.EnumFrameSizes(f)
		if err != nil || len(sizes) == 0 {
			return 0, 0 // unknown: no stated limit
		}
		w, h := 0, 0
		for _, s := range sizes {
			if s.Type == v4l2.FrmSizeTypeDiscrete {
				ds := s.Discrete()
				w, h = max(w, int(ds.Width)), max(h, int(ds.Height))
			} else {
				w, h = max(w, int(s.Stepwise.MaxWidth)), max(h, int(s.Stepwise.MaxHeight))
			}
		}
		return w, h
	}
	coded := func(fmts []v4l2.FmtDesc) []codecFormat {
		var out []codecFormat
		for _, f := range fmts {
			c, ok := codecFormats[f.PixelFormat]
			if !ok {
				continue
			}
			w, h := maxSize(f.PixelFormat)
			out = append(out, codecFormat{
				caps:   hal.CodecCaps{Codec: c, MaxWidth: w, MaxHeight: h, MaxSessions: d.cfg.MaxSessions, Hardware: true},
				fourcc: f.PixelFormat,
				flags:  f.Flags,
			})
		}
		return out
	}
	var rawOut, rawCap []uint32
	for _, f := range outFmts {
		if rawSupported(f.PixelFormat) {
			rawOut = append(rawOut, f.PixelFormat)
		}
	}
	for _, f := range capFmts {
		if f.Flags&v4l2.FmtFlagCompressed == 0 {
			rawCap = append(rawCap, f.PixelFormat)
		}
	}
	if enc := coded(capFmts); len(enc) > 0 && len(rawOut) > 0 {
		n.encodes, n.rawIn = enc, rawOut
	}
	// A decoder's raw formats are known for sure only once a stream has
	// started, so any raw CAPTURE format will do here; Decode checks.
	if dec := coded(outFmts); len(dec) > 0 && len(rawCap) > 0 {
		n.decodes = dec
	}
	if n.encodes == nil && n.decodes == nil {
		d.log.Debug("video node is not a stateful codec", "node", devPath, "driver", n.driver, "name", sysName,
			"output", fourccs(outFmts), "capture", fourccs(capFmts))
		return nil, nil
	}
	d.log.Debug("found mem2mem codec", "node", devPath, "driver", n.driver, "name", sysName,
		"encodes", len(n.encodes), "decodes", len(n.decodes))
	return n, nil
}

func fourccs(fmts []v4l2.FmtDesc) string {
	var s []string
	for _, f := range fmts {
		s = append(s, v4l2.FourCCString(f.PixelFormat))
	}
	return strings.Join(s, ",")
}

// devices returns the node's factories.
func (n *node) devices(cfg Config) []hal.Device {
	both := n.encodes != nil && n.decodes != nil
	id := func(role string) string {
		id := DriverName + ":" + n.bus
		if n.sysName != "" {
			id += "/" + n.sysName
		}
		if both {
			id += "#" + role
		}
		return id
	}
	var out []hal.Device
	if n.encodes != nil {
		out = append(out, &Encoder{n: n, cfg: cfg, info: hal.Info{
			ID: id("encoder"), Kind: hal.KindVideoEncoder, Name: n.displayName("encoder"), Driver: DriverName,
		}})
	}
	if n.decodes != nil {
		out = append(out, &Decoder{n: n, cfg: cfg, info: hal.Info{
			ID: id("decoder"), Kind: hal.KindVideoDecoder, Name: n.displayName("decoder"), Driver: DriverName,
		}})
	}
	return out
}

// displayName names a codec for people. vicodec is a software codec in
// the kernel, reached through exactly the hardware API: the name says so,
// since its caps say Hardware.
func (n *node) displayName(role string) string {
	name := n.card
	if name == "" {
		name = n.driver
	}
	var codecs []string
	list := n.encodes
	if role == "decoder" {
		list = n.decodes
	}
	for _, c := range list {
		codecs = append(codecs, string(c.caps.Codec))
	}
	name += " " + strings.Join(codecs, "/") + " " + role
	if n.driver == "vicodec" {
		name += " (kernel test codec)"
	}
	return name
}

func capsOf(list []codecFormat) []hal.CodecCaps {
	out := make([]hal.CodecCaps, len(list))
	for i, c := range list {
		out[i] = c.caps
	}
	return out
}

func find(list []codecFormat, c hal.Codec) (codecFormat, bool) {
	for _, f := range list {
		if f.caps.Codec == c {
			return f, true
		}
	}
	return codecFormat{}, false
}

// Encoder is a stateful mem2mem encoder node. It implements
// hal.VideoEncoderFactory.
type Encoder struct {
	n    *node
	cfg  Config
	info hal.Info
}

var _ hal.VideoEncoderFactory = (*Encoder)(nil)

// Info implements hal.Device.
func (e *Encoder) Info() hal.Info { return e.info }

// Path returns the device node.
func (e *Encoder) Path() string { return e.n.path }

// Codecs implements hal.VideoEncoderFactory.
func (e *Encoder) Codecs() []hal.CodecCaps { return capsOf(e.n.encodes) }

// Decoder is a stateful mem2mem decoder node. It implements
// hal.VideoDecoderFactory.
type Decoder struct {
	n    *node
	cfg  Config
	info hal.Info
}

var _ hal.VideoDecoderFactory = (*Decoder)(nil)

// Info implements hal.Device.
func (d *Decoder) Info() hal.Info { return d.info }

// Path returns the device node.
func (d *Decoder) Path() string { return d.n.path }

// Codecs implements hal.VideoDecoderFactory.
func (d *Decoder) Codecs() []hal.CodecCaps { return capsOf(d.n.decodes) }

// openNode opens the node for a session and checks it is still the device
// that was probed: video node numbers follow load order, so after a module
// reload the path may name another device.
func openNode(cfg Config, n *node) (*v4l2.Device, error) {
	dev, err := v4l2.OpenWith(cfg.Open, n.path)
	if err != nil {
		return nil, classify(err)
	}
	c, err := dev.QueryCap()
	if err != nil {
		dev.Close()
		return nil, classify(err)
	}
	if c.Bus() != n.bus || c.DriverName() != n.driver {
		dev.Close()
		return nil, fmt.Errorf("%s is now %s on %s, not %s on %s: %w", n.path, c.DriverName(), c.Bus(), n.driver, n.bus, hal.ErrUnplugged)
	}
	return dev, nil
}
