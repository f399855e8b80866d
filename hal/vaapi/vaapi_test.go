package vaapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/atriumroom/atrium/hal"
)

func TestCapabilities(t *testing.T) {
	configs := []Config{
		{ProfileH264ConstrainedBaseline, EntrypointVLD, 4096, 2304},
		{ProfileH264Main, EntrypointVLD, 4096, 4096},
		{ProfileH264High, EntrypointEncSlice, 4096, 4096},
		{ProfileH264ConstrainedBaseline, EntrypointEncSliceLP, 1920, 1088},
		{ProfileVP8Version0_3, EntrypointVLD, 0, 0}, // size not said
		{ProfileVP9Profile0, EntrypointVLD, 8192, 8192},
		{ProfileVP9Profile2, EntrypointEncSliceLP, 8192, 8192},
		{17, EntrypointVLD, 8192, 8192},                   // HEVC: not a HAL codec
		{ProfileH264Main, 10, 4096, 4096},                 // video processing: neither
		{ProfileVP8Version0_3, Entrypoint(7), 4096, 4096}, // EncPicture: not a slice encoder
	}
	enc, dec := Capabilities(configs)
	if got, want := fmt.Sprint(enc), "[{H264 4096 4096 0 true} {VP9 8192 8192 0 true}]"; got != want {
		t.Errorf("encode caps %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(dec), "[{H264 4096 4096 0 true} {VP8 0 0 0 true} {VP9 8192 8192 0 true}]"; got != want {
		t.Errorf("decode caps %s, want %s", got, want)
	}
	if enc, dec := Capabilities(nil); enc != nil || dec != nil {
		t.Errorf("no configs: %v %v", enc, dec)
	}
}

// fakeProber answers by node path.
type fakeProber map[string]Display

func (f fakeProber) Probe(_ context.Context, path string) (Display, error) {
	d, ok := f[path]
	if !ok {
		return Display{}, errors.New("vaInitialize: unknown libva error")
	}
	return d, nil
}

func TestEnumerate(t *testing.T) {
	sysfs := fstest.MapFS{
		"card0/dev":         {Data: []byte("226:0\n")},
		"renderD128/device": {Mode: fs.ModeSymlink, Data: []byte("../../../0000:00:02.0")},
		"renderD129/device": {Mode: fs.ModeSymlink, Data: []byte("../../../0000:03:00.0")},
		"renderD130/dev":    {Data: []byte("226:130\n")}, // no device link
	}
	prober := fakeProber{
		"/dev/dri/renderD128": {Vendor: "Intel iHD driver", Version: "1.17", Configs: []Config{
			{ProfileH264Main, EntrypointVLD, 4096, 4096},
			{ProfileH264ConstrainedBaseline, EntrypointEncSliceLP, 4096, 4096},
		}},
		// renderD129 has no VA-API driver.
		"/dev/dri/renderD130": {Vendor: "Mesa Gallium", Configs: []Config{{ProfileVP9Profile0, EntrypointVLD, 8192, 4352}}},
	}
	d := New(Options{Sysfs: sysfs, Prober: prober, Logger: slog.New(slog.DiscardHandler)})
	if d.Name() != "vaapi" {
		t.Errorf("Name = %q", d.Name())
	}
	devs, err := d.Enumerate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, dev := range devs {
		i := dev.Info()
		v := dev.(*Device)
		got = append(got, fmt.Sprintf("%s %s %q %s %s %v", i.ID, i.Kind, i.Name, i.Driver, v.Node(), v.Codecs()))
		// Listed, never offered: the media layer and codecsel take
		// factories only.
		if _, ok := dev.(hal.VideoEncoderFactory); ok {
			t.Errorf("%s is an encoder factory; VA-API cannot encode yet", i.ID)
		}
		if _, ok := dev.(hal.VideoDecoderFactory); ok {
			t.Errorf("%s is a decoder factory; VA-API cannot decode yet", i.ID)
		}
	}
	want := strings.Join([]string{
		`vaapi:pci-0000:00:02.0:encoder video-encoder "Intel iHD driver (VA-API encoder, listed only)" vaapi /dev/dri/renderD128 [{H264 4096 4096 0 true}]`,
		`vaapi:pci-0000:00:02.0:decoder video-decoder "Intel iHD driver (VA-API decoder, listed only)" vaapi /dev/dri/renderD128 [{H264 4096 4096 0 true}]`,
		`vaapi:renderD130:decoder video-decoder "Mesa Gallium (VA-API decoder, listed only)" vaapi /dev/dri/renderD130 [{VP9 8192 4352 0 true}]`,
	}, "\n")
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("devices:\n%s\nwant:\n%s", g, want)
	}
	if disp := devs[0].(*Device).Display(); disp.Version != "1.17" || len(disp.Configs) != 2 {
		t.Errorf("Display = %+v", disp)
	}
}

// TestEnumerateThisMachine runs the real path: sysfs, /dev/dri and libva.
// A machine without a render node (this build machine, the QEMU guest)
// must list nothing and say nothing is wrong; one with a GPU must list
// only well-formed VA-API devices.
func TestEnumerateThisMachine(t *testing.T) {
	devs, err := New(Options{}).Enumerate(t.Context())
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	nodes, _ := fs.Glob(os.DirFS("/sys/class/drm"), "renderD*")
	t.Logf("%d render nodes, %d devices", len(nodes), len(devs))
	if len(nodes) == 0 && len(devs) != 0 {
		t.Errorf("no render node, yet %d devices", len(devs))
	}
	for _, d := range devs {
		if i := d.Info(); i.Driver != DriverName || !strings.HasPrefix(i.ID, "vaapi:") || len(d.(*Device).Codecs()) == 0 {
			t.Errorf("device %+v with codecs %v", i, d.(*Device).Codecs())
		}
	}
}

// TestLibvaProbeFailures drives the real prober into its early failures:
// a node that does not exist, and a file that is not a DRM device.
func TestLibvaProbeFailures(t *testing.T) {
	p := libvaProber{}
	if _, err := p.Probe(t.Context(), "/nonexistent/renderD128"); err == nil {
		t.Error("probing a missing node succeeded")
	}
	_, err := p.Probe(t.Context(), "/dev/null")
	if err == nil {
		t.Error("probing /dev/null succeeded")
	}
	t.Log(err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Probe(ctx, "/dev/null"); !errors.Is(err, context.Canceled) {
		t.Errorf("probing with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestHeaderConstants checks the Go mirrors of va.h's enums against the
// header itself (through cgo; without cgo there is no header to compare).
func TestHeaderConstants(t *testing.T) {
	h := headerConstants()
	if h == nil {
		t.Log("built without cgo: no header")
		return
	}
	for name, got := range map[string]int{
		"VAProfileH264Main":                int(ProfileH264Main),
		"VAProfileH264High":                int(ProfileH264High),
		"VAProfileH264ConstrainedBaseline": int(ProfileH264ConstrainedBaseline),
		"VAProfileVP8Version0_3":           int(ProfileVP8Version0_3),
		"VAProfileVP9Profile0":             int(ProfileVP9Profile0),
		"VAProfileVP9Profile1":             int(ProfileVP9Profile1),
		"VAProfileVP9Profile2":             int(ProfileVP9Profile2),
		"VAProfileVP9Profile3":             int(ProfileVP9Profile3),
		"VAEntrypointVLD":                  int(EntrypointVLD),
		"VAEntrypointEncSlice":             int(EntrypointEncSlice),
		"VAEntrypointEncSliceLP":           int(EntrypointEncSliceLP),
	} {
		if want, ok := h[name]; !ok || got != want {
			t.Errorf("%s = %d, va.h says %d", name, got, want)
		}
	}
}
