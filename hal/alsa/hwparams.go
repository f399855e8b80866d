package alsa

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/atriumroom/atrium/hal"
)

// probeRates and probeChannels are the formats Formats lists when the
// device accepts them: the rates meeting audio uses (Opus at 48 kHz, CD-rate
// hardware, wideband speech) in mono and stereo.
var (
	probeRates    = []int{48000, 44100, 16000}
	probeChannels = []int{1, 2}
)

// anyParams returns hardware parameters that allow everything, the starting
// point of every refinement (what snd_pcm_hw_params_any does in libasound).
func anyParams() *hwParams {
	p := &hwParams{Rmask: math.MaxUint32}
	for i := range p.Masks {
		for j := range p.Masks[i].Bits {
			p.Masks[i].Bits[j] = math.MaxUint32
		}
	}
	for i := range p.Intervals {
		p.Intervals[i] = interval{Min: 0, Max: math.MaxUint32}
	}
	return p
}

// setMask restricts mask param to the single value v.
func (p *hwParams) setMask(param, v int) {
	m := &p.Masks[param]
	*m = mask{}
	m.Bits[v/32] = 1 << (v % 32)
}

// setInterval restricts interval param to the integer range [lo, hi].
func (p *hwParams) setInterval(param int, lo, hi uint32) {
	p.Intervals[param-firstInterval] = interval{Min: lo, Max: hi, Flags: intervalInteger}
}

// interval returns interval param's integer bounds, with open ends closed.
func (p *hwParams) interval(param int) (lo, hi uint32) {
	iv := p.Intervals[param-firstInterval]
	lo, hi = iv.Min, iv.Max
	if iv.Flags&intervalOpenMin != 0 && lo < math.MaxUint32 {
		lo++
	}
	if iv.Flags&intervalOpenMax != 0 && hi > 0 {
		hi--
	}
	return lo, hi
}

// refine asks the kernel to narrow p to what the device supports; it fails
// (EINVAL) when nothing fits.
func refine(sys system, fd int, p *hwParams) error {
	p.Rmask = math.MaxUint32
	p.Cmask = 0
	return sys.Ioctl(fd, pcmIoctlHWRefine, unsafe.Pointer(p))
}

// baseParams returns parameters for interleaved S16_LE in format f.
func baseParams(f hal.AudioFormat) *hwParams {
	p := anyParams()
	p.setMask(paramAccess, accessRWInterleaved)
	p.setMask(paramFormat, formatS16LE)
	p.setMask(paramSubformat, subformatStd)
	p.setInterval(paramChannels, uint32(f.Channels), uint32(f.Channels))
	p.setInterval(paramRate, uint32(f.SampleRate), uint32(f.SampleRate))
	return p
}

// probeFormats returns which of the usual formats the open PCM accepts.
func probeFormats(sys system, fd int) []hal.AudioFormat {
	var out []hal.AudioFormat
	for _, rate := range probeRates {
		for _, ch := range probeChannels {
			f := hal.AudioFormat{SampleRate: rate, Channels: ch}
			if refine(sys, fd, baseParams(f)) == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// bufferConfig is what HW_PARAMS settled on, in frames.
type bufferConfig struct {
	period, buffer int
}

// errNoFit is returned (wrapped) when the device accepts the format but no
// period and buffer size near the target.
var errNoFit = errors.New("no period and buffer size fits")

// configure sets the hardware parameters for f with periods of about
// periodTime and about periods of them in the buffer. The kernel can only
// narrow ranges, so "near" is done here: try the target, then the nearest
// values the device allows, keeping the first the kernel accepts.
func configure(sys system, fd int, f hal.AudioFormat, periodTime time.Duration, periods int) (bufferConfig, error) {
	p := baseParams(f)
	if err := refine(sys, fd, p); err != nil {
		return bufferConfig{}, fmt.Errorf("%d Hz × %d: %w (%w)", f.SampleRate, f.Channels, hal.ErrUnsupportedMode, err)
	}

	want := uint32(max(int64(f.SampleRate)*int64(periodTime)/int64(time.Second), 1))
	lo, hi := p.interval(paramPeriodSize)
	if !tryInterval(sys, fd, p, paramPeriodSize, candidates(want, lo, hi)) {
		return bufferConfig{}, fmt.Errorf("period near %d frames (device allows %d..%d): %w", want, lo, hi, errNoFit)
	}
	lo, hi = p.interval(paramPeriods)
	if !tryInterval(sys, fd, p, paramPeriods, candidates(uint32(periods), lo, hi)) {
		return bufferConfig{}, fmt.Errorf("%d periods (device allows %d..%d): %w", periods, lo, hi, errNoFit)
	}

	p.Rmask = math.MaxUint32
	if err := sys.Ioctl(fd, pcmIoctlHWParams, unsafe.Pointer(p)); err != nil {
		return bufferConfig{}, fmt.Errorf("hw_params: %w", err)
	}
	period, _ := p.interval(paramPeriodSize)
	buffer, _ := p.interval(paramBufferSize)
	return bufferConfig{period: int(period), buffer: int(buffer)}, nil
}

// tryInterval fixes param of p to the first value in vals the device
// accepts; p is left refined with it.
func tryInterval(sys system, fd int, p *hwParams, param int, vals []uint32) bool {
	for _, v := range vals {
		q := *p
		q.setInterval(param, v, v)
		if refine(sys, fd, &q) == nil {
			*p = q
			return true
		}
	}
	return false
}

// candidates lists values to try for a target within [lo, hi]: the target
// (clamped), then powers of two and multiples of the target's neighbours
// that some hardware insists on, nearest first.
func candidates(want, lo, hi uint32) []uint32 {
	if lo > hi {
		return nil
	}
	var out []uint32
	seen := make(map[uint32]bool)
	add := func(v uint32) {
		v = min(max(v, lo), hi)
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	add(want)
	for _, d := range []uint32{1, 2, 3, 4, 6, 8} {
		add(want + d)
		if want > d {
			add(want - d)
		}
	}
	for p := uint32(1); p != 0 && p <= hi; p <<= 1 {
		if p >= want/2 && p <= want*2 {
			add(p)
		}
	}
	add(lo)
	add(hi)
	return out
}
