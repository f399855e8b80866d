// Package devsel chooses the camera, microphone and speaker a meeting uses
// from the devices the HAL lists, and finds a camera again when the one in
// a call goes away.
//
// The rules, in order: the device the configuration pins by stable ID; then
// real before simulated; for audio, the echo-cancelled pair before raw
// devices (people in the room must not hear themselves back from the far
// end); then the registry's order. A pinned device that is missing is
// replaced by the next rule's pick, with a warning, because a room that
// joins without its preferred camera serves people better than one that
// joins without video.
package devsel

import (
	"log/slog"
	"slices"

	"github.com/atriumroom/atrium/hal"
)

// Pins are the configured stable IDs; empty means no pin.
type Pins struct {
	Camera, Microphone, Speaker string
}

// Lister is the registry, as far as choosing needs it.
type Lister interface {
	Devices() []hal.Device
}

// Selector chooses devices. It keeps no state between calls, so it always
// reflects what the registry lists now.
type Selector struct {
	devs Lister
	pins Pins
	log  *slog.Logger
}

// New returns a Selector over devs; a nil logger discards.
func New(devs Lister, pins Pins, log *slog.Logger) *Selector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Selector{devs: devs, pins: pins, log: log}
}

// Choice is what one meeting uses; a nil field means there is no such device.
type Choice struct {
	Camera     hal.Camera
	Microphone hal.Microphone
	Speaker    hal.Speaker
}

// Choose picks the devices for a meeting starting now.
func (s *Selector) Choose() Choice {
	devs := s.devs.Devices()
	return Choice{
		Camera:     pick[hal.Camera](s, devs, hal.KindCamera, s.pins.Camera, nil),
		Microphone: pick[hal.Microphone](s, devs, hal.KindMicrophone, s.pins.Microphone, nil),
		Speaker:    pick[hal.Speaker](s, devs, hal.KindSpeaker, s.pins.Speaker, nil),
	}
}

// FindCamera implements rtc.CameraFinder: the same camera when it is back,
// else the pinned one, else another camera; but never a simulated camera in
// place of a real one, so an unplugged room camera shows the far end
// "camera unavailable" rather than a test pattern.
func (s *Selector) FindCamera(lost hal.Info) (hal.Camera, bool) {
	devs := s.devs.Devices()
	for _, d := range devs {
		if c, ok := d.(hal.Camera); ok && d.Info().ID == lost.ID {
			return c, true
		}
	}
	allow := func(i hal.Info) bool { return lost.Simulated || !i.Simulated }
	c := pick[hal.Camera](s, devs, hal.KindCamera, s.pins.Camera, allow)
	return c, c != nil
}

// pick returns the best device of kind that is a T, or nil. allow, when
// set, filters candidates.
func pick[T hal.Device](s *Selector, devs []hal.Device, kind hal.Kind, pin string, allow func(hal.Info) bool) T {
	var cands []T
	for _, d := range devs {
		t, ok := d.(T)
		if !ok || d.Info().Kind != kind || (allow != nil && !allow(d.Info())) {
			continue
		}
		if pin != "" && d.Info().ID == pin {
			return t
		}
		cands = append(cands, t)
	}
	var zero T
	if len(cands) == 0 {
		return zero
	}
	// SortStableFunc keeps the registry's order among equals.
	slices.SortStableFunc(cands, func(a, b T) int { return rank(a.Info()) - rank(b.Info()) })
	if pin != "" {
		s.log.Warn("pinned device is missing; using another", "kind", kind, "pinned", pin, "using", cands[0].Info().ID)
	}
	return cands[0]
}

// rank orders candidates: lower is better.
func rank(i hal.Info) int {
	r := 0
	if i.Simulated {
		r += 2
	}
	if !i.EchoCancelled {
		r++
	}
	return r
}

// AudioPair is a speaker and a microphone that hears it; either may be nil.
type AudioPair struct {
	Speaker    hal.Speaker
	Microphone hal.Microphone
}

// AudioTestPairs returns what the audio self-test measures by default: the
// room's raw speaker and microphone (real, not echo-cancelled) and the
// echo-cancelled pair, when there are such devices.
func (s *Selector) AudioTestPairs() (raw, cancelled AudioPair) {
	devs := s.devs.Devices()
	plain := func(i hal.Info) bool { return !i.EchoCancelled && !i.Simulated }
	ec := func(i hal.Info) bool { return i.EchoCancelled }
	raw.Speaker = pick[hal.Speaker](s, devs, hal.KindSpeaker, "", plain)
	raw.Microphone = pick[hal.Microphone](s, devs, hal.KindMicrophone, "", plain)
	cancelled.Speaker = pick[hal.Speaker](s, devs, hal.KindSpeaker, "", ec)
	cancelled.Microphone = pick[hal.Microphone](s, devs, hal.KindMicrophone, "", ec)
	return raw, cancelled
}
