package devctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/atriumroom/atrium/hal"
)

// ErrNotMicrophone: only microphones can be metered on demand; what the
// speaker plays is in the call statistics.
var ErrNotMicrophone = errors.New("device is not a microphone")

// Level is a microphone's level over a short window, in dB relative to full
// scale: 0 is the loudest a sample can be, silence is about -90.
type Level struct {
	RMS, Peak float64
	Window    time.Duration
}

// silenceDB stands for digital silence, which has no logarithm.
const silenceDB = -120

// MaxLevelWindow bounds how long one meter request holds a microphone.
const MaxLevelWindow = 2 * time.Second

// MeasureLevel opens a microphone for window and measures what it hears, so
// an admin can check that the room's microphone works before a call. A
// microphone the call holds exclusively answers hal.ErrBusy.
func (c *Controller) MeasureLevel(ctx context.Context, devID string, window time.Duration) (Level, error) {
	if window <= 0 || window > MaxLevelWindow {
		return Level{}, fmt.Errorf("%w: window %s is not within (0, %s]", hal.ErrOutOfRange, window, MaxLevelWindow)
	}
	d, ok := c.devs.Lookup(devID)
	if !ok {
		return Level{}, fmt.Errorf("device %q: %w", devID, hal.ErrNotFound)
	}
	mic, ok := d.(hal.Microphone)
	if !ok {
		return Level{}, fmt.Errorf("device %q: %w", devID, ErrNotMicrophone)
	}
	formats := mic.Formats()
	if len(formats) == 0 {
		return Level{}, fmt.Errorf("device %q: no formats", devID)
	}
	// Mono at the highest rate: a meter needs no more, and most cards have it.
	f := slices.MaxFunc(formats, func(a, b hal.AudioFormat) int {
		if (a.Channels == 1) != (b.Channels == 1) {
			if a.Channels == 1 {
				return 1
			}
			return -1
		}
		return a.SampleRate - b.SampleRate
	})
	ctx, cancel := context.WithTimeout(ctx, window+2*time.Second)
	defer cancel()
	capture, err := mic.Open(ctx, f)
	if err != nil {
		return Level{}, fmt.Errorf("device %q: open: %w", devID, err)
	}
	defer capture.Close()
	want := int(int64(f.SampleRate)*int64(window)/int64(time.Second)) * f.Channels
	buf := make([]int16, f.SampleRate/50*f.Channels) // 20 ms reads
	var sum float64
	var peak, n int
	for n < want {
		got, _, err := capture.Read(ctx, buf[:min(len(buf), want-n)])
		if err != nil {
			return Level{}, fmt.Errorf("device %q: read: %w", devID, err)
		}
		for _, s := range buf[:got] {
			v := int(s)
			sum += float64(v * v)
			peak = max(peak, v, -v)
		}
		n += got
	}
	return Level{RMS: dBFS(math.Sqrt(sum / float64(n))), Peak: dBFS(float64(peak)), Window: window}, nil
}

func dBFS(amplitude float64) float64 {
	if amplitude <= 0 {
		return silenceDB
	}
	return max(20*math.Log10(amplitude/32768), silenceDB)
}
