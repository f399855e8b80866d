package vaapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/atriumroom/atrium/hal"
)

// DriverName is the driver's name, in hal.Info.Driver too.
const DriverName = "vaapi"

// Profile is a VAProfile value (va/va.h).
type Profile int

// The profiles that map to HAL codecs.
const (
	ProfileH264Main                Profile = 6
	ProfileH264High                Profile = 7
	ProfileH264ConstrainedBaseline Profile = 13
	ProfileVP8Version0_3           Profile = 14
	ProfileVP9Profile0             Profile = 19
	ProfileVP9Profile1             Profile = 20
	ProfileVP9Profile2             Profile = 21
	ProfileVP9Profile3             Profile = 22
)

// Entrypoint is a VAEntrypoint value (va/va.h).
type Entrypoint int

// The entrypoints that mean decoding or encoding.
const (
	EntrypointVLD        Entrypoint = 1 // decode
	EntrypointEncSlice   Entrypoint = 6 // encode
	EntrypointEncSliceLP Entrypoint = 8 // encode, low power (fixed function)
)

// Config is one profile and entrypoint a driver supports, with the largest
// picture it takes (0 when the driver does not say).
type Config struct {
	Profile             Profile
	Entrypoint          Entrypoint
	MaxWidth, MaxHeight int
}

// Display is what a driver reports for one render node.
type Display struct {
	Vendor  string // vaQueryVendorString
	Version string // VA-API version, "1.17"
	Configs []Config
}

// Prober is the libva seam: Probe opens the render node at path,
// initialises VA-API on it and lists its configs.
type Prober interface {
	Probe(ctx context.Context, path string) (Display, error)
}

// Options configures New. The zero value probes the real system through
// libva (when built with cgo).
type Options struct {
	// Logger receives probe failures (a node without a VA-API driver is
	// not an error); nil discards.
	Logger *slog.Logger
	// Sysfs is the drm class directory (entries renderD128... whose
	// "device" link names the GPU); nil is /sys/class/drm. Missing means
	// no devices.
	Sysfs fs.FS
	// DevDir holds the render nodes; empty is /dev/dri.
	DevDir string
	// Prober queries a node; nil is libva (or, without cgo, a prober that
	// always fails).
	Prober Prober
}

// Driver lists VA-API codecs. It implements hal.Driver.
type Driver struct {
	log    *slog.Logger
	sysfs  fs.FS
	devDir string
	prober Prober
}

var _ hal.Driver = (*Driver)(nil)

// New returns a driver.
func New(opts Options) *Driver {
	d := &Driver{log: opts.Logger, sysfs: opts.Sysfs, devDir: opts.DevDir, prober: opts.Prober}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.sysfs == nil {
		d.sysfs = os.DirFS("/sys/class/drm")
	}
	if d.devDir == "" {
		d.devDir = "/dev/dri"
	}
	if d.prober == nil {
		d.prober = libvaProber{}
	}
	return d
}

// Name implements hal.Driver.
func (d *Driver) Name() string { return DriverName }

// Enumerate implements hal.Driver: for each render node whose driver
// answers, a *Device of kind video-encoder if it encodes one of the HAL's
// codecs and one of kind video-decoder if it decodes one. A node that fails
// to probe is logged and skipped.
func (d *Driver) Enumerate(ctx context.Context) ([]hal.Device, error) {
	entries, err := fs.ReadDir(d.sysfs, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vaapi: list render nodes: %w", err)
	}
	var nodes []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "renderD") {
			nodes = append(nodes, e.Name())
		}
	}
	slices.Sort(nodes) // renderD128..renderD191: same length
	var out []hal.Device
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		p := path.Join(d.devDir, n)
		disp, err := d.prober.Probe(ctx, p)
		if err != nil {
			d.log.Info("render node without a usable VA-API driver", "node", p, "err", err)
			continue
		}
		out = append(out, devices(d.stableID(n), p, disp)...)
	}
	return out, nil
}

// stableID names a render node by the GPU behind it ("pci-0000:00:02.0"),
// which survives reboots, unlike the node number; else by the node.
func (d *Driver) stableID(node string) string {
	target, err := fs.ReadLink(d.sysfs, path.Join(node, "device"))
	if err != nil {
		return node
	}
	dev := path.Base(target)
	if strings.Count(dev, ":") == 2 && strings.Contains(dev, ".") {
		return "pci-" + dev
	}
	return dev
}

// codecOf maps a profile to a HAL codec.
func codecOf(p Profile) (hal.Codec, bool) {
	switch p {
	case ProfileH264ConstrainedBaseline, ProfileH264Main, ProfileH264High:
		return hal.CodecH264, true
	case ProfileVP8Version0_3:
		return hal.CodecVP8, true
	case ProfileVP9Profile0, ProfileVP9Profile1, ProfileVP9Profile2, ProfileVP9Profile3:
		return hal.CodecVP9, true
	}
	return "", false
}

// Capabilities turns a driver's configs into hal.CodecCaps, one per codec
// for encoding and one per codec for decoding, sorted by codec: the largest
// size of any profile of that codec. MaxSessions is 0: VA-API has no way to
// ask, and GPUs run many contexts.
func Capabilities(configs []Config) (encode, decode []hal.CodecCaps) {
	add := func(list []hal.CodecCaps, c hal.Codec, w, h int) []hal.CodecCaps {
		i := slices.IndexFunc(list, func(x hal.CodecCaps) bool { return x.Codec == c })
		if i < 0 {
			return append(list, hal.CodecCaps{Codec: c, MaxWidth: w, MaxHeight: h, Hardware: true})
		}
		list[i].MaxWidth, list[i].MaxHeight = max(list[i].MaxWidth, w), max(list[i].MaxHeight, h)
		return list
	}
	for _, c := range configs {
		codec, ok := codecOf(c.Profile)
		if !ok {
			continue
		}
		switch c.Entrypoint {
		case EntrypointEncSlice, EntrypointEncSliceLP:
			encode = add(encode, codec, c.MaxWidth, c.MaxHeight)
		case EntrypointVLD:
			decode = add(decode, codec, c.MaxWidth, c.MaxHeight)
		}
	}
	byCodec := func(a, b hal.CodecCaps) int { return cmp.Compare(a.Codec, b.Codec) }
	slices.SortFunc(encode, byCodec)
	slices.SortFunc(decode, byCodec)
	return encode, decode
}

func devices(id, node string, disp Display) []hal.Device {
	enc, dec := Capabilities(disp.Configs)
	vendor := disp.Vendor
	if vendor == "" {
		vendor = "VA-API"
	}
	var out []hal.Device
	if len(enc) > 0 {
		out = append(out, &Device{node: node, display: disp, caps: enc, info: hal.Info{
			ID: DriverName + ":" + id + ":encoder", Kind: hal.KindVideoEncoder, Name: vendor + " (VA-API encoder, listed only)", Driver: DriverName,
		}})
	}
	if len(dec) > 0 {
		out = append(out, &Device{node: node, display: disp, caps: dec, info: hal.Info{
			ID: DriverName + ":" + id + ":decoder", Kind: hal.KindVideoDecoder, Name: vendor + " (VA-API decoder, listed only)", Driver: DriverName,
		}})
	}
	return out
}

// Device is the encoding or decoding side of one VA-API render node, listed
// for information: it has Codecs, as factories do, but opens no sessions.
type Device struct {
	info    hal.Info
	node    string
	display Display
	caps    []hal.CodecCaps
}

// Info implements hal.Device.
func (d *Device) Info() hal.Info { return d.info }

// Codecs lists the codecs, as hal.VideoEncoderFactory.Codecs would.
func (d *Device) Codecs() []hal.CodecCaps { return slices.Clone(d.caps) }

// Node returns the render node's path.
func (d *Device) Node() string { return d.node }

// Display returns what the driver reported, all profiles and entrypoints
// included.
func (d *Device) Display() Display { return d.display }
