package halbench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/pixconv"
)

// Path is one way from a camera to coded frames.
type Path struct {
	// Name labels the path's result line: "x264/yuyv".
	Name    string
	Camera  hal.Camera
	Mode    hal.VideoMode // one of Camera's modes
	Encoder hal.VideoEncoderFactory
	Codec   hal.Codec
	// FPS is the rate the encoder is set up for; 0 is Mode.FPS. A slower
	// camera than the call's rate still gives the call's bits per frame.
	FPS int
}

// Options configures Run. Frames must be positive; the zero value of the
// rest is usable.
type Options struct {
	// Frames is how many frames are measured, after Warmup frames that are
	// captured and encoded but not counted.
	Frames, Warmup int
	// BitrateBps is the encoder's target rate; 0 is DefaultBitrate.
	BitrateBps int
	// Now reads the clock; nil is time.Now.
	Now func() time.Time
	// CPU reads the CPU time used so far; nil is SystemCPU.
	CPU func() (CPUTimes, error)
}

// DefaultBitrate is a 720p call's rate, the one hal/swcodec's benchmarks use.
const DefaultBitrate = 1_500_000

// CPUTimes is CPU time used since some fixed point: by this process (all
// its threads), in user space and in the kernel on its behalf, and by the
// whole machine (all CPUs, the kernel's own threads included).
type CPUTimes struct {
	User, System, Machine time.Duration
}

// ErrNoOutput is returned by Run when the encoder returned nothing for
// every measured frame, which leaves no latency to report.
var ErrNoOutput = errors.New("halbench: the encoder produced no frame")

// Result is one path's measurement. Durations and sizes are means per
// measured frame; Latency and CodedBytes are over the frames the encoder
// returned (Coded), the others over all of them (Frames).
type Result struct {
	Path          string
	Mode          hal.VideoMode
	Frames, Coded int
	// Latency runs from the capture timestamp to the encoder's return; Wait
	// from the capture timestamp to ReadFrame's return.
	Latency, Wait   time.Duration
	Convert, Encode time.Duration
	// CPU is the process's, SysCPU the part of it spent in the kernel.
	CPU, SysCPU, MachineCPU time.Duration
	CodedBytes              float64
	AllocBytes, Allocs      float64
}

// Run measures p: it opens the encoder and then the camera in p.Mode,
// captures, converts to I420 when p.Mode is not, and encodes
// opts.Warmup+opts.Frames frames one at a time, then closes both.
func Run(ctx context.Context, p Path, opts Options) (res Result, err error) {
	op := fmt.Sprintf("halbench: %s", p.Name)
	if opts.Frames <= 0 || opts.Warmup < 0 {
		return Result{}, fmt.Errorf("%s: %d frames after %d warm-up ones: need at least one frame", op, opts.Frames, opts.Warmup)
	}
	if opts.BitrateBps == 0 {
		opts.BitrateBps = DefaultBitrate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CPU == nil {
		opts.CPU = SystemCPU
	}
	convert, err := converter(p.Mode.Format)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	fps := p.FPS
	if fps == 0 {
		fps = p.Mode.FPS
	}
	enc, err := p.Encoder.NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: p.Codec, Width: p.Mode.Width, Height: p.Mode.Height, FPS: fps, BitrateBps: opts.BitrateBps,
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	defer func() {
		if cerr := enc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close encoder: %w", op, cerr)
		}
	}()
	stream, err := p.Camera.Open(ctx, p.Mode)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open camera %s: %w", op, p.Camera.Info().ID, err)
	}
	defer func() {
		if cerr := stream.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close camera: %w", op, cerr)
		}
	}()

	res = Result{Path: p.Name, Mode: p.Mode, Frames: opts.Frames}
	var (
		i420          []byte // the conversion's output, reused for every frame
		latency, wait time.Duration
		conv, encode  time.Duration
		coded         int
		cpu0          CPUTimes
		mem0, mem1    runtime.MemStats
	)
	for i := range opts.Warmup + opts.Frames {
		if i == opts.Warmup {
			// Measurement starts here: the warm-up frames are behind.
			if cpu0, err = opts.CPU(); err != nil {
				return Result{}, fmt.Errorf("%s: %w", op, err)
			}
			runtime.ReadMemStats(&mem0)
		}
		frame, err := stream.ReadFrame(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("%s: frame %d: %w", op, i, err)
		}
		read := opts.Now()
		converted := read
		if convert != nil {
			if i420 == nil {
				i420 = make([]byte, pixconv.I420Size(frame.Width, frame.Height))
			}
			if err := convert(i420, frame.Data, frame.Width, frame.Height); err != nil {
				return Result{}, fmt.Errorf("%s: frame %d: convert %s to I420: %w", op, i, frame.Format, err)
			}
			frame.Data, frame.Format = i420, hal.PixelI420
			converted = opts.Now()
		}
		out, err := enc.Encode(ctx, frame)
		if err != nil {
			return Result{}, fmt.Errorf("%s: frame %d: %w", op, i, err)
		}
		done := opts.Now()
		if i < opts.Warmup {
			continue
		}
		wait += read.Sub(frame.CapturedAt)
		conv += converted.Sub(read)
		encode += done.Sub(converted)
		if len(out) > 0 {
			coded++
			latency += done.Sub(out[0].CapturedAt)
			for _, o := range out {
				res.CodedBytes += float64(len(o.Data))
			}
		}
	}
	cpu1, err := opts.CPU()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", op, err)
	}
	runtime.ReadMemStats(&mem1)
	if coded == 0 {
		return Result{}, fmt.Errorf("%s: %w", op, ErrNoOutput)
	}
	n := time.Duration(opts.Frames)
	res.Coded = coded
	res.Latency = latency / time.Duration(coded)
	res.CodedBytes /= float64(coded)
	res.Wait, res.Convert, res.Encode = wait/n, conv/n, encode/n
	res.CPU = (cpu1.User + cpu1.System - cpu0.User - cpu0.System) / n
	res.SysCPU = (cpu1.System - cpu0.System) / n
	res.MachineCPU = (cpu1.Machine - cpu0.Machine) / n
	res.AllocBytes = float64(mem1.TotalAlloc-mem0.TotalAlloc) / float64(opts.Frames)
	res.Allocs = float64(mem1.Mallocs-mem0.Mallocs) / float64(opts.Frames)
	return res, nil
}

// converter returns the conversion of format to I420, nil for I420 itself.
func converter(f hal.PixelFormat) (func(dst, src []byte, w, h int) error, error) {
	switch f {
	case hal.PixelI420:
		return nil, nil
	case hal.PixelYUYV:
		return pixconv.YUYVToI420, nil
	case hal.PixelNV12:
		return pixconv.NV12ToI420, nil
	case hal.PixelMJPG:
		return pixconv.MJPEGToI420, nil
	}
	return nil, fmt.Errorf("no conversion from %s to I420: %w", f, pixconv.ErrFormat)
}
