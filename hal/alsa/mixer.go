package alsa

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/atriumroom/atrium/hal"
)

// mixerElem is one control element worth mapping: an integer volume or a
// boolean switch of the card's mixer.
type mixerElem struct {
	numid    uint32
	name     string
	typ      int32
	channels int
	min, max int64
}

// Element names in order of preference, as drivers name them (the ALSA
// control-names convention, with snd-dummy's and USB audio's variants). A
// switch is "on" when sound passes, so mute is its inverse.
var (
	playbackVolumeNames = []string{
		"Master Playback Volume", "Master Volume", "PCM Playback Volume", "PCM Volume",
		"Speaker Playback Volume", "Headphone Playback Volume", "Headset Playback Volume",
	}
	playbackSwitchNames = []string{
		"Master Playback Switch", "PCM Playback Switch", "Speaker Playback Switch",
		"Headphone Playback Switch", "Headset Playback Switch",
	}
	captureVolumeNames = []string{
		"Capture Volume", "Mic Capture Volume", "Mic Volume", "Headset Capture Volume",
	}
	captureSwitchNames = []string{
		"Capture Switch", "Mic Capture Switch", "Headset Capture Switch",
	}
)

// readMixer lists the card's mixer elements and keeps the readable,
// writable, active integer and boolean ones with a known name.
func readMixer(sys system, fd int) ([]mixerElem, error) {
	var list ctlElemList
	if err := sys.Ioctl(fd, ctlIoctlElemList, unsafe.Pointer(&list)); err != nil {
		return nil, fmt.Errorf("element count: %w", err)
	}
	if list.Count == 0 {
		return nil, nil
	}
	ids := make([]ctlElemID, list.Count)
	list = ctlElemList{Space: uint32(len(ids)), Pids: unsafe.Pointer(&ids[0])}
	if err := sys.Ioctl(fd, ctlIoctlElemList, unsafe.Pointer(&list)); err != nil {
		return nil, fmt.Errorf("element list: %w", err)
	}
	ids = ids[:min(int(list.Used), len(ids))]

	known := slices.Concat(playbackVolumeNames, playbackSwitchNames, captureVolumeNames, captureSwitchNames)
	var out []mixerElem
	for _, id := range ids {
		name := cstr(id.Name[:])
		if id.Iface != elemIfaceMixer || id.Index != 0 || !slices.Contains(known, name) {
			continue
		}
		info := ctlElemInfo{ID: ctlElemID{Numid: id.Numid}}
		if err := sys.Ioctl(fd, ctlIoctlElemInfo, unsafe.Pointer(&info)); err != nil {
			return out, fmt.Errorf("element %q info: %w", name, err)
		}
		const rw = elemAccessRead | elemAccessWrite
		if info.Access&rw != rw || info.Access&elemAccessInactive != 0 || info.Count == 0 || info.Count > 128 {
			continue
		}
		e := mixerElem{numid: id.Numid, name: name, typ: info.Type, channels: int(info.Count)}
		switch info.Type {
		case elemTypeInteger:
			e.min, e.max, _ = info.intRange()
			if e.max <= e.min {
				continue
			}
		case elemTypeBoolean:
			e.min, e.max = 0, 1
		default:
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// mixerBinding is the volume and switch elements that act on one device.
type mixerBinding struct {
	volume *mixerElem
	sw     *mixerElem
}

// bindMixer picks the elements for a playback or capture device.
func bindMixer(elems []mixerElem, capture bool) mixerBinding {
	volNames, swNames := playbackVolumeNames, playbackSwitchNames
	if capture {
		volNames, swNames = captureVolumeNames, captureSwitchNames
	}
	pick := func(names []string, typ int32) *mixerElem {
		for _, n := range names {
			for i := range elems {
				if elems[i].name == n && elems[i].typ == typ {
					e := elems[i]
					return &e
				}
			}
		}
		return nil
	}
	return mixerBinding{volume: pick(volNames, elemTypeInteger), sw: pick(swNames, elemTypeBoolean)}
}

// readElem returns an element's per-channel values.
func readElem(sys system, fd int, e *mixerElem) ([]int64, error) {
	v := ctlElemValue{ID: ctlElemID{Numid: e.numid}}
	if err := sys.Ioctl(fd, ctlIoctlElemRead, unsafe.Pointer(&v)); err != nil {
		return nil, fmt.Errorf("read %q: %w", e.name, err)
	}
	vals := make([]int64, e.channels)
	for i := range vals {
		vals[i] = v.integer(i)
	}
	return vals, nil
}

// writeElem sets every channel of an element to x.
func writeElem(sys system, fd int, e *mixerElem, x int64) error {
	v := ctlElemValue{ID: ctlElemID{Numid: e.numid}}
	for i := range e.channels {
		v.setInteger(i, x)
	}
	if err := sys.Ioctl(fd, ctlIoctlElemWrite, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("write %q: %w", e.name, err)
	}
	return nil
}

// toPercent maps a raw volume linearly onto 0..100 of the element's range.
// Linear in raw steps is what "percent of the card's range" means here;
// most cards' steps are dB-spaced, so it is close to perceived loudness.
func (e *mixerElem) toPercent(raw int64) int64 {
	raw = min(max(raw, e.min), e.max)
	return int64(math.Round(float64(raw-e.min) * 100 / float64(e.max-e.min)))
}

// fromPercent is the inverse of toPercent, to the nearest raw step.
func (e *mixerElem) fromPercent(pct int64) int64 {
	return e.min + int64(math.Round(float64(pct)*float64(e.max-e.min)/100))
}

// controls reads the bound elements and returns them as HAL controls. The
// loudest channel stands for the volume, so a balance setting does not read
// as a quiet device; the device is muted when every channel's switch is off.
// ALSA has no default levels, so Default repeats the current value.
func (b mixerBinding) controls(sys system, fd int) ([]hal.Control, error) {
	var out []hal.Control
	if b.volume != nil {
		vals, err := readElem(sys, fd, b.volume)
		if err != nil {
			return out, err
		}
		pct := b.volume.toPercent(slices.Max(vals))
		out = append(out, hal.Control{
			ID: hal.CtrlVolume, Name: b.volume.name, Type: hal.ControlInt,
			Min: 0, Max: 100, Step: 1, Default: pct, Value: pct,
		})
	}
	if b.sw != nil {
		vals, err := readElem(sys, fd, b.sw)
		if err != nil {
			return out, err
		}
		muted := int64(1)
		if slices.Max(vals) != 0 {
			muted = 0
		}
		out = append(out, hal.Control{
			ID: hal.CtrlMute, Name: b.sw.name, Type: hal.ControlBool,
			Min: 0, Max: 1, Step: 1, Default: muted, Value: muted,
		})
	}
	return out, nil
}

// set applies a HAL control value.
func (b mixerBinding) set(sys system, fd int, id hal.ControlID, value int64) error {
	switch {
	case id == hal.CtrlVolume && b.volume != nil:
		if value < 0 || value > 100 {
			return fmt.Errorf("volume %d: %w", value, hal.ErrOutOfRange)
		}
		return writeElem(sys, fd, b.volume, b.volume.fromPercent(value))
	case id == hal.CtrlMute && b.sw != nil:
		if value < 0 || value > 1 {
			return fmt.Errorf("mute %d: %w", value, hal.ErrOutOfRange)
		}
		return writeElem(sys, fd, b.sw, 1-value)
	}
	return fmt.Errorf("control %q: %w", id, hal.ErrUnknownControl)
}

// has reports whether the binding can set id.
func (b mixerBinding) has(id hal.ControlID) bool {
	return (id == hal.CtrlVolume && b.volume != nil) || (id == hal.CtrlMute && b.sw != nil)
}
