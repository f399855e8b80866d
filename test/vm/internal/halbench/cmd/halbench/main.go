// Command halbench measures capture-to-encoded latency and CPU per frame
// for every encoder path the machine has (software x264 and libvpx VP8,
// V4L2 mem2mem encoders such as vicodec), each fed from the camera's YUYV
// mode through hal/pixconv and from its I420 (or NV12) mode, in one run.
// It prints Go benchmark lines and ratio comments; see package
// test/vm/internal/halbench for what they mean.
//
//	halbench [-frames 60] [-warmup 5] [-fps 30] [-camera-fps N] [-camera ID] [-paths x264/yuyv,m2m-fwht/i420]
//
// The encoders are set up for -fps; the camera runs at its highest rate up
// to -camera-fps (default -fps). A machine that cannot encode in real time
// (QEMU's emulation) should be given a camera rate it keeps up with:
// otherwise frames queue in the capture buffers and the latency measures
// that queue rather than the path.
//
// It exits 1 when a path fails (the others still run) and 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/m2m"
	"github.com/atriumroom/atrium/hal/swcodec"
	"github.com/atriumroom/atrium/hal/v4l2"
	"github.com/atriumroom/atrium/test/vm/internal/halbench"
)

func main() {
	var (
		opts    halbench.Options
		camera  = flag.String("camera", "", "camera ID (default: the first with a YUYV mode of the size)")
		paths   = flag.String("paths", "", "comma-separated paths to run (default: all there are)")
		width   = flag.Int("width", 1280, "capture width")
		height  = flag.Int("height", 720, "capture height")
		fps     = flag.Int("fps", 30, "frame rate the encoders are set up for")
		camFPS  = flag.Int("camera-fps", 0, "highest capture rate to use (default: -fps)")
		verbose = flag.Bool("v", false, "log the drivers' debug messages")
	)
	flag.IntVar(&opts.Frames, "frames", 60, "measured frames per path")
	flag.IntVar(&opts.Warmup, "warmup", 5, "frames per path captured and encoded before measuring")
	flag.IntVar(&opts.BitrateBps, "bitrate", halbench.DefaultBitrate, "encoder target bitrate, bps")
	flag.Parse()
	if *camFPS == 0 {
		*camFPS = *fps
	}
	if flag.NArg() > 0 || opts.Frames <= 0 || opts.Warmup < 0 || *fps <= 0 || *camFPS < 0 {
		flag.Usage()
		os.Exit(2)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, log, config{
		opts: opts, camera: *camera, width: *width, height: *height, fps: *fps, cameraFPS: *camFPS,
		only: splitList(*paths),
	})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "halbench:", err)
		os.Exit(1)
	}
}

type config struct {
	opts           halbench.Options
	camera         string
	width, height  int
	fps, cameraFPS int
	only           []string
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// encoderPath is an encoder the paths are built from.
type encoderPath struct {
	name    string // "x264"
	factory hal.VideoEncoderFactory
	codec   hal.Codec
}

// run finds the camera and the encoders, measures every path and prints
// the results to w.
func run(ctx context.Context, w io.Writer, log *slog.Logger, cfg config) error {
	cam, err := findCamera(ctx, log, cfg)
	if err != nil {
		return err
	}
	// The copying path first: YUYV, which every USB camera has and every
	// I420 encoder must convert; then the camera's I420, or NV12.
	var modes []hal.VideoMode
	for _, formats := range [][]hal.PixelFormat{{hal.PixelYUYV}, {hal.PixelI420, hal.PixelNV12}} {
		for _, f := range formats {
			if m, ok := bestMode(cam.Modes(), cfg.width, cfg.height, cfg.cameraFPS, f); ok {
				modes = append(modes, m)
				break
			}
		}
	}
	sw := swcodec.NewVideoEncoders(log)
	encoders := []encoderPath{{"x264", sw, hal.CodecH264}, {"vp8", sw, hal.CodecVP8}}
	devs, err := m2m.New(m2m.Config{Logger: log}).Enumerate(ctx)
	if err != nil {
		return fmt.Errorf("list mem2mem codecs: %w", err)
	}
	for _, d := range devs {
		enc, ok := d.(hal.VideoEncoderFactory)
		if !ok {
			continue
		}
		for _, c := range enc.Codecs() {
			fmt.Fprintf(w, "# m2m-%s: %s (%s)\n", strings.ToLower(string(c.Codec)), enc.Info().Name, enc.Info().ID)
			encoders = append(encoders, encoderPath{"m2m-" + strings.ToLower(string(c.Codec)), enc, c.Codec})
		}
	}

	var paths []halbench.Path
	for _, e := range encoders {
		for _, m := range modes {
			name := e.name + "/" + strings.ToLower(string(m.Format))
			if len(cfg.only) > 0 && !slices.Contains(cfg.only, name) {
				continue
			}
			paths = append(paths, halbench.Path{Name: name, Camera: cam, Mode: m, Encoder: e.factory, Codec: e.codec, FPS: cfg.fps})
		}
	}
	if len(paths) == 0 {
		return fmt.Errorf("no path to run (camera modes %v)", modes)
	}
	fmt.Fprintf(w, "# camera %s, %s; encoders at %d fps, %d bps; %d frames per path after %d warm-up frames\n",
		cam.Info().ID, modeList(modes), cfg.fps, cfg.opts.BitrateBps, cfg.opts.Frames, cfg.opts.Warmup)

	var results []halbench.Result
	var errs []error
	procs := runtime.GOMAXPROCS(0)
	for _, p := range paths {
		r, err := halbench.Run(ctx, p, cfg.opts)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(w, "# %s failed: %v\n", p.Name, err)
			errs = append(errs, err)
			continue
		}
		results = append(results, r)
		fmt.Fprintln(w, r.Line(procs))
	}
	if len(results) > 0 {
		for _, l := range halbench.RatioLines(results[0], results) {
			fmt.Fprintln(w, l)
		}
	}
	return errors.Join(errs...)
}

// findCamera returns the camera named cfg.camera, or the first with a YUYV
// mode of the size.
func findCamera(ctx context.Context, log *slog.Logger, cfg config) (hal.Camera, error) {
	devs, err := v4l2.New(v4l2.Options{Logger: log}).Enumerate(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cameras: %w", err)
	}
	for _, d := range devs {
		cam, ok := d.(hal.Camera)
		if !ok {
			continue
		}
		if cfg.camera != "" {
			if cam.Info().ID == cfg.camera {
				return cam, nil
			}
			continue
		}
		if _, ok := bestMode(cam.Modes(), cfg.width, cfg.height, cfg.cameraFPS, hal.PixelYUYV); ok {
			return cam, nil
		}
	}
	if cfg.camera != "" {
		return nil, fmt.Errorf("no camera %s among %d", cfg.camera, len(devs))
	}
	return nil, fmt.Errorf("no camera with a %dx%d YUYV mode at up to %d fps among %d", cfg.width, cfg.height, cfg.cameraFPS, len(devs))
}

// bestMode returns the mode of exactly w×h in format f with the highest
// rate up to maxFPS.
func bestMode(modes []hal.VideoMode, w, h, maxFPS int, f hal.PixelFormat) (hal.VideoMode, bool) {
	var best hal.VideoMode
	for _, m := range modes {
		if m.Width == w && m.Height == h && m.Format == f && m.FPS <= maxFPS && m.FPS > best.FPS {
			best = m
		}
	}
	return best, best.FPS > 0
}

func modeList(modes []hal.VideoMode) string {
	var s []string
	for _, m := range modes {
		s = append(s, fmt.Sprintf("%s %dx%d at %d fps", m.Format, m.Width, m.Height, m.FPS))
	}
	return "capture " + strings.Join(s, ", ")
}
