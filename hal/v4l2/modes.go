package v4l2

import (
	"errors"
	"fmt"
	"math"

	"github.com/atriumroom/atrium/hal"
	uapi "github.com/atriumroom/atrium/hal/internal/v4l2"
	"golang.org/x/sys/unix"
)

// StandardSizes are the frame sizes offered when a driver reports a
// stepwise or continuous range rather than a list: those inside the range
// and on its step.
func StandardSizes() [][2]int {
	return [][2]int{
		{320, 180}, {320, 240}, {640, 360}, {640, 480}, {960, 540},
		{1280, 720}, {1920, 1080}, {2560, 1440}, {3840, 2160},
	}
}

// StandardFrameRates are the rates offered when a driver reports a stepwise
// or continuous range of frame intervals: those inside the range.
func StandardFrameRates() []int { return []int{5, 10, 15, 20, 24, 25, 30, 50, 60} }

// pixelFormat maps a V4L2 FourCC to the HAL's pixel format; ok is false for
// formats the HAL does not handle.
func pixelFormat(fourcc uint32) (hal.PixelFormat, bool) {
	switch fourcc {
	case uapi.PixFmtYUYV:
		return hal.PixelYUYV, true
	case uapi.PixFmtNV12, uapi.PixFmtNV12M:
		return hal.PixelNV12, true
	case uapi.PixFmtYUV420, uapi.PixFmtYUV420M:
		return hal.PixelI420, true
	case uapi.PixFmtMJPEG, uapi.PixFmtJPEG:
		return hal.PixelMJPG, true
	case uapi.PixFmtH264:
		return hal.PixelH264, true
	}
	return "", false
}

// modeInfo is a mode with what it takes to ask the driver for it.
type modeInfo struct {
	mode     hal.VideoMode
	fourcc   uint32
	interval uapi.Fract // zero when the driver cannot set intervals
}

// listModes enumerates a node's modes: formats × sizes × intervals. When two
// V4L2 formats map to one HAL format (MJPG and JPEG, NV12 and NM12), the
// first the driver lists wins; so does the first interval that rounds to a
// given FPS.
func listModes(dev *uapi.Device, bufType uint32) ([]modeInfo, error) {
	fmts, err := dev.EnumFormats(bufType)
	if err != nil {
		return nil, err
	}
	var out []modeInfo
	seen := make(map[hal.VideoMode]bool)
	add := func(m modeInfo) {
		if m.mode.FPS <= 0 || seen[m.mode] {
			return
		}
		seen[m.mode] = true
		out = append(out, m)
	}
	for _, f := range fmts {
		pf, ok := pixelFormat(f.PixelFormat)
		if !ok || f.Flags&uapi.FmtFlagEmulated != 0 {
			continue
		}
		sizes, err := frameSizes(dev, f.PixelFormat)
		if err != nil {
			return nil, err
		}
		for _, sz := range sizes {
			ivals, err := frameIntervals(dev, bufType, f.PixelFormat, sz[0], sz[1])
			if err != nil {
				return nil, err
			}
			for _, iv := range ivals {
				add(modeInfo{
					mode:     hal.VideoMode{Width: sz[0], Height: sz[1], FPS: fpsOf(iv), Format: pf},
					fourcc:   f.PixelFormat,
					interval: iv,
				})
			}
		}
	}
	return out, nil
}

// frameSizes lists a format's sizes, expanding ranges to StandardSizes.
func frameSizes(dev *uapi.Device, fourcc uint32) ([][2]int, error) {
	list, err := dev.EnumFrameSizes(fourcc)
	if err != nil && !errors.Is(err, unix.ENOTTY) {
		return nil, err
	}
	var out [][2]int
	for _, e := range list {
		if e.Type == uapi.FrmSizeTypeDiscrete {
			d := e.Discrete()
			out = append(out, [2]int{int(d.Width), int(d.Height)})
			continue
		}
		sw := e.Stepwise
		if e.Type == uapi.FrmSizeTypeContinuous {
			sw.StepWidth, sw.StepHeight = 1, 1
		}
		for _, s := range StandardSizes() {
			if onStep(s[0], sw.MinWidth, sw.MaxWidth, sw.StepWidth) && onStep(s[1], sw.MinHeight, sw.MaxHeight, sw.StepHeight) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func onStep(v int, lo, hi, step uint32) bool {
	if v < int(lo) || v > int(hi) {
		return false
	}
	return step <= 1 || (v-int(lo))%int(step) == 0
}

// frameIntervals lists a size's intervals, expanding ranges to
// StandardFrameRates. A driver that cannot enumerate intervals gets its
// current one (VIDIOC_G_PARM), and failing that a nominal 30 fps with a zero
// interval, which Open then leaves alone.
func frameIntervals(dev *uapi.Device, bufType uint32, fourcc uint32, w, h int) ([]uapi.Fract, error) {
	list, err := dev.EnumFrameIntervals(fourcc, uint32(w), uint32(h))
	if err != nil && !errors.Is(err, unix.ENOTTY) {
		return nil, err
	}
	var out []uapi.Fract
	for _, e := range list {
		if e.Type == uapi.FrmIvalTypeDiscrete {
			out = append(out, e.Discrete())
			continue
		}
		lo, hi := rate(e.Stepwise.Max), rate(e.Stepwise.Min) // the longest interval is the lowest rate
		for _, fps := range StandardFrameRates() {
			if float64(fps) >= lo-0.01 && float64(fps) <= hi+0.01 {
				out = append(out, uapi.Fract{Numerator: 1, Denominator: uint32(fps)})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if p, err := dev.GetParm(bufType); err == nil && p.Parm.TimePerFrame.Numerator != 0 && p.Parm.TimePerFrame.Denominator != 0 {
		return []uapi.Fract{p.Parm.TimePerFrame}, nil
	}
	return []uapi.Fract{{}}, nil
}

// rate is the frame rate of an interval.
func rate(f uapi.Fract) float64 {
	if f.Numerator == 0 {
		return 0
	}
	return float64(f.Denominator) / float64(f.Numerator)
}

// fpsOf rounds an interval's rate; a zero interval is the nominal 30 fps.
func fpsOf(f uapi.Fract) int {
	if f.Numerator == 0 && f.Denominator == 0 {
		return 30
	}
	return int(math.Round(rate(f)))
}

// String describes a mode for logs.
func (m modeInfo) String() string {
	return fmt.Sprintf("%dx%d@%d %s (%s %d/%d)", m.mode.Width, m.mode.Height, m.mode.FPS, m.mode.Format,
		uapi.FourCCString(m.fourcc), m.interval.Numerator, m.interval.Denominator)
}
