package m2m

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/internal/v4l2"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// system builds a Config whose sysfs and device nodes are the fakes given,
// by node name (video0...).
func system(nodes map[string]*fakeNode, names map[string]string) Config {
	sysfs := fstest.MapFS{}
	for n := range nodes {
		name := names[n]
		if name == "" {
			name = n + "-name"
		}
		sysfs[n+"/name"] = &fstest.MapFile{Data: []byte(name + "\n")}
	}
	return Config{
		Sysfs:  sysfs,
		DevDir: "/dev",
		Open: func(path string) (v4l2.FD, error) {
			n, ok := nodes[strings.TrimPrefix(path, "/dev/")]
			if !ok {
				return nil, unix.ENOENT
			}
			return n.open(path)
		},
		FrameTimeout: 5 * time.Second,
	}
}

func h264Encoder() *fakeNode {
	return &fakeNode{role: "encoder", mplane: true, driver: "hantro-vpu", bus: "platform:fdea0000.video-codec", coded: v4l2.PixFmtH264,
		raw: []uint32{v4l2.PixFmtNV12M}, align: 16, maxW: 1920, maxH: 1088, flagFrames: true, forceKeyCtrl: true, bitrateCtrl: true}
}

func fwhtEncoder() *fakeNode {
	return &fakeNode{role: "encoder", driver: "vicodec", bus: "platform:vicodec", coded: v4l2.PixFmtFWHT,
		raw: []uint32{v4l2.PixFmtYUV420, v4l2.PixFmtNV12}, maxW: 4096, maxH: 2160}
}

func fwhtDecoder() *fakeNode {
	return &fakeNode{role: "decoder", driver: "vicodec", bus: "platform:vicodec", coded: v4l2.PixFmtFWHT,
		raw: []uint32{v4l2.PixFmtYUV420}, maxW: 4096, maxH: 2160, continuous: true}
}

func describe(devs []hal.Device) string {
	var lines []string
	for _, d := range devs {
		i := d.Info()
		var caps []hal.CodecCaps
		path := ""
		switch d := d.(type) {
		case *Encoder:
			caps, path = d.Codecs(), d.Path()
		case *Decoder:
			caps, path = d.Codecs(), d.Path()
		}
		lines = append(lines, fmt.Sprintf("%s %s %q %s %s %v", i.ID, i.Kind, i.Name, i.Driver, path, caps))
	}
	return strings.Join(lines, "\n")
}

func TestEnumerate(t *testing.T) {
	vp8dec := &fakeNode{role: "decoder", driver: "rkvdec", bus: "platform:rkvdec", coded: v4l2.PixFmtVP8, raw: []uint32{v4l2.PixFmtNV12}}
	nodes := map[string]*fakeNode{
		"video0":  {role: "camera", driver: "uvcvideo", bus: "usb-1", raw: []uint32{v4l2.PixFmtYUYV}},
		"video1":  h264Encoder(),
		"video2":  vp8dec,
		"video3":  {role: "converter", driver: "vim2m", bus: "platform:vim2m", raw: []uint32{v4l2.PixFmtRGB24}},
		"video4":  {openErr: unix.EACCES},
		"video5":  {role: "stateless", driver: "vicodec", bus: "platform:vicodec", coded: v4l2.PixFmtFWHTStateless, raw: []uint32{v4l2.PixFmtYUV420}},
		"video10": fwhtEncoder(),
		"video11": fwhtDecoder(),
	}
	names := map[string]string{"video10": "stateful-encoder", "video11": "stateful-decoder", "video1": "hantro-enc"}
	cfg := system(nodes, names)
	cfg.Logger = slog.New(slog.DiscardHandler)
	devs, err := New(cfg).Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`v4l2-m2m:platform:fdea0000.video-codec/hantro-enc video-encoder "hantro-vpu H264 encoder" v4l2-m2m /dev/video1 [{H264 1920 1088 4 true}]`,
		`v4l2-m2m:platform:rkvdec/video2-name video-decoder "rkvdec VP8 decoder" v4l2-m2m /dev/video2 [{VP8 0 0 4 true}]`,
		`v4l2-m2m:platform:vicodec/stateful-encoder video-encoder "vicodec FWHT encoder (kernel test codec)" v4l2-m2m /dev/video10 [{FWHT 4096 2160 4 true}]`,
		`v4l2-m2m:platform:vicodec/stateful-decoder video-decoder "vicodec FWHT decoder (kernel test codec)" v4l2-m2m /dev/video11 [{FWHT 4096 2160 4 true}]`,
	}, "\n")
	if got := describe(devs); got != want {
		t.Errorf("devices:\n%s\nwant:\n%s", got, want)
	}

	cfg.MaxSessions = 2
	devs, err = New(cfg).Enumerate(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := devs[0].(hal.VideoEncoderFactory).Codecs(); c[0].MaxSessions != 2 {
		t.Errorf("with MaxSessions 2: caps %+v", c)
	}
}

func TestEnumerateNothing(t *testing.T) {
	devs, err := New(Config{Sysfs: fstest.MapFS{"other": &fstest.MapFile{Mode: fs.ModeDir}}}).Enumerate(testContext(t))
	if err != nil || len(devs) != 0 {
		t.Errorf("no video nodes: %v, %v", devs, err)
	}
	devs, err = New(Config{Sysfs: missingFS{}}).Enumerate(testContext(t))
	if err != nil || len(devs) != 0 {
		t.Errorf("no video4linux directory: %v, %v", devs, err)
	}
}

// missingFS is a directory that does not exist.
type missingFS struct{}

func (missingFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func TestEnumerateBothRoles(t *testing.T) {
	// A node that encodes and decodes gets two IDs.
	n := fwhtEncoder()
	cfg := system(map[string]*fakeNode{"video0": n}, map[string]string{"video0": "codec"})
	p, err := New(cfg).probe("video0")
	if err != nil || p == nil {
		t.Fatalf("probe: %v, %v", p, err)
	}
	p.decodes = p.encodes
	var ids []string
	for _, d := range p.devices(cfg.withDefaults()) {
		ids = append(ids, d.Info().ID)
	}
	if got, want := strings.Join(ids, " "), "v4l2-m2m:platform:vicodec/codec#encoder v4l2-m2m:platform:vicodec/codec#decoder"; got != want {
		t.Errorf("IDs %q, want %q", got, want)
	}
}

// openEncoder enumerates a single encoder node and opens a session on it.
func openEncoder(t *testing.T, n *fakeNode, cfg hal.VideoEncoderConfig, mod func(*Config)) (*Encoder, hal.VideoEncoder) {
	t.Helper()
	c := system(map[string]*fakeNode{"video0": n}, nil)
	if mod != nil {
		mod(&c)
	}
	devs, err := New(c).Enumerate(testContext(t))
	if err != nil || len(devs) != 1 {
		t.Fatalf("Enumerate: %v, %v", devs, err)
	}
	f := devs[0].(*Encoder)
	n.Trace() // only the session's ioctls from here
	e, err := f.NewVideoEncoder(testContext(t), cfg)
	if err != nil {
		t.Fatalf("NewVideoEncoder: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return f, e
}

func TestProbeErrorsAreBusyOrGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(n *fakeNode)
		want error
	}{
		{"open EBUSY", func(n *fakeNode) { n.openErr = unix.EBUSY }, hal.ErrBusy},
		{"REQBUFS ENOMEM", func(n *fakeNode) { n.reqbufsErr = unix.ENOMEM }, hal.ErrBusy},
		{"STREAMON EBUSY", func(n *fakeNode) { n.ioctlErr = map[uint32]error{v4l2.IoctlStreamOn: unix.EBUSY} }, hal.ErrBusy},
		{"S_FMT ENODEV", func(n *fakeNode) { n.ioctlErr = map[uint32]error{v4l2.IoctlSFmt: unix.ENODEV} }, hal.ErrUnplugged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := h264Encoder()
			devs, err := New(system(map[string]*fakeNode{"video0": n}, nil)).Enumerate(testContext(t))
			if err != nil || len(devs) != 1 {
				t.Fatal(devs, err)
			}
			tc.mod(n)
			_, err = devs[0].(*Encoder).NewVideoEncoder(testContext(t), hal.VideoEncoderConfig{Codec: hal.CodecH264, Width: 640, Height: 480, FPS: 30})
			if !errors.Is(err, tc.want) {
				t.Errorf("NewVideoEncoder: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOpenChecksTheNodeIsStillTheDevice(t *testing.T) {
	nodes := map[string]*fakeNode{"video0": h264Encoder()}
	devs, err := New(system(nodes, nil)).Enumerate(testContext(t))
	if err != nil || len(devs) != 1 {
		t.Fatal(devs, err)
	}
	// After a module reload the same number names another device.
	other := h264Encoder()
	other.bus = "platform:other"
	nodes["video0"] = other
	_, err = devs[0].(*Encoder).NewVideoEncoder(testContext(t), hal.VideoEncoderConfig{Codec: hal.CodecH264, Width: 640, Height: 480, FPS: 30})
	if !errors.Is(err, hal.ErrUnplugged) {
		t.Errorf("NewVideoEncoder on a renumbered node: %v, want ErrUnplugged", err)
	}
}
