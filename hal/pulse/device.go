package pulse

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/jfreymuth/pulse/proto"

	"github.com/atriumroom/atrium/hal"
)

// Speaker is a sink. It implements hal.Speaker and hal.Controller.
type Speaker struct{ device }

// Microphone is a source that is not a monitor. It implements
// hal.Microphone and hal.Controller.
type Microphone struct{ device }

var (
	_ hal.Speaker    = (*Speaker)(nil)
	_ hal.Microphone = (*Microphone)(nil)
	_ hal.Controller = (*Speaker)(nil)
	_ hal.Controller = (*Microphone)(nil)
)

// device is what speakers and microphones share: a node as enumerated.
type device struct {
	d    *Driver
	n    node
	info hal.Info
}

func (d *Driver) newDevice(n node) device {
	kind := hal.KindMicrophone
	if n.sink {
		kind = hal.KindSpeaker
	}
	return device{d: d, n: n, info: hal.Info{
		ID:            n.id(d.name),
		Kind:          kind,
		Name:          n.displayName(),
		Driver:        d.name,
		EchoCancelled: n.echoCancelGroup() != "",
	}}
}

// Info implements hal.Device.
func (v *device) Info() hal.Info { return v.info }

// NodeName is the server's name of the sink or source (PipeWire's
// node.name), e.g. ECSinkName.
func (v *device) NodeName() string { return v.n.name }

// EchoCancelled reports whether this is an echo canceller's source or the
// sink that is its reference (see the package documentation for how that
// is detected).
func (v *device) EchoCancelled() bool { return v.n.echoCancelGroup() != "" }

// EchoCancelGroup is the same non-empty string for an echo canceller's
// source and its reference sink, and "" for other devices: a meeting that
// captures from the source must play into the sink of the same group, or
// the canceller does not hear what it should remove.
func (v *device) EchoCancelGroup() string { return v.n.echoCancelGroup() }

// Properties returns the node's properties as the server reported them
// at enumeration (diagnostics: roomctl devices -v, support bundles).
func (v *device) Properties() map[string]string { return maps.Clone(v.n.props) }

// Monitor returns a microphone that hears what this speaker plays: the
// sink's monitor source, which Enumerate leaves out because it is no
// microphone. It serves loopback checks of the output path (and the test
// room of test/pipewiretest, whose microphone is a sink's monitor). It is
// nil if the server reported no monitor.
func (s *Speaker) Monitor() *Microphone {
	if s.n.monitor == "" {
		return nil
	}
	return &Microphone{s.d.newDevice(s.n.monitorNode())}
}

// Standard formats offered on every node: the server converts rate and
// channels, so any of them works; the node's own comes first.
var standardRates = []int{48000, 44100, 32000, 24000, 16000, 8000}

// Formats lists the node's own format first (rate, and channels capped at
// two), then the standard rates in mono and stereo.
func (v *device) Formats() []hal.AudioFormat {
	native := hal.AudioFormat{SampleRate: int(v.n.spec.Rate), Channels: min(int(v.n.spec.Channels), 2)}
	var out []hal.AudioFormat
	if native.SampleRate > 0 && native.Channels > 0 {
		out = append(out, native)
	}
	for _, r := range standardRates {
		for _, ch := range []int{1, 2} {
			f := hal.AudioFormat{SampleRate: r, Channels: ch}
			if f != native {
				out = append(out, f)
			}
		}
	}
	return out
}

func (v *device) checkFormat(f hal.AudioFormat) error {
	if !slices.Contains(v.Formats(), f) {
		return hal.ErrUnsupportedMode
	}
	return nil
}

// volumePercent converts a pulse volume to the HAL's percent: 100 % is
// the server's normal volume (0 dB; PulseAudio's and PipeWire's volume
// scales are cubic, so 50 % is about -18 dB, as in their own mixers).
func volumePercent(v uint32) int64 {
	return int64(math.Round(float64(v) * 100 / float64(proto.VolumeNorm)))
}

func pulseVolume(pct int64) uint32 {
	return uint32(math.Round(float64(pct) * float64(proto.VolumeNorm) / 100))
}

// controls builds the HAL controls from a node's state. Above-normal
// volumes (software boost) read as 100.
func controls(n node) []hal.Control {
	var vol uint32
	for _, c := range n.volumes {
		vol = max(vol, c)
	}
	mute := int64(0)
	if n.mute {
		mute = 1
	}
	return []hal.Control{
		{ID: hal.CtrlVolume, Name: "Volume", Type: hal.ControlInt, Min: 0, Max: 100, Step: 1, Default: 100, Value: min(volumePercent(vol), 100)},
		{ID: hal.CtrlMute, Name: "Mute", Type: hal.ControlBool, Min: 0, Max: 1, Step: 1, Default: 0, Value: mute},
	}
}

// current reads the node's state now.
func (v *device) current(ctx context.Context) (node, error) {
	var n node
	err := v.d.withConn(ctx, func(t transport) error {
		var err error
		n, err = v.currentOn(t)
		return err
	})
	if isNoSuchEntity(err) {
		return node{}, fmt.Errorf("%w (%v)", hal.ErrUnplugged, err)
	}
	return n, err
}

// Controls implements hal.Controller: volume (percent) and mute, read from
// the server now, so a change made by another client shows. When the
// server cannot be asked (it is gone, or the node is), it returns the
// values seen at enumeration.
func (v *device) Controls() []hal.Control {
	ctx, cancel := context.WithTimeout(context.Background(), v.d.timeout)
	defer cancel()
	n, err := v.current(ctx)
	if err != nil {
		v.d.log.Debug("read controls; showing the enumerated values", "device", v.info.ID, "err", err)
		return controls(v.n)
	}
	return controls(n)
}

// SetControl implements hal.Controller for hal.CtrlVolume (0–100, every
// channel set to the same level) and hal.CtrlMute (0 or 1).
func (v *device) SetControl(ctx context.Context, id hal.ControlID, value int64) error {
	op := fmt.Sprintf("set %s on %s", id, v.info.ID)
	var spec hal.Control
	for _, c := range controls(v.n) {
		if c.ID == id {
			spec = c
		}
	}
	if spec.ID == "" {
		return fmt.Errorf("%s: %w", op, hal.ErrUnknownControl)
	}
	if value < spec.Min || value > spec.Max {
		return fmt.Errorf("%s: %d not in %d..%d: %w", op, value, spec.Min, spec.Max, hal.ErrOutOfRange)
	}
	err := v.d.withConn(ctx, func(t transport) error {
		switch id {
		case hal.CtrlMute:
			if v.n.sink {
				return t.request(&proto.SetSinkMute{SinkIndex: proto.Undefined, SinkName: v.n.name, Mute: value == 1}, nil)
			}
			return t.request(&proto.SetSourceMute{SourceIndex: proto.Undefined, SourceName: v.n.name, Mute: value == 1}, nil)
		default:
			// The channel count can change when a node is reconfigured;
			// the server wants one volume per channel it has now.
			cur, err := v.currentOn(t)
			if err != nil {
				return err
			}
			vols := make(proto.ChannelVolumes, cmp.Or(int(cur.spec.Channels), 1))
			for i := range vols {
				vols[i] = pulseVolume(value)
			}
			if v.n.sink {
				return t.request(&proto.SetSinkVolume{SinkIndex: proto.Undefined, SinkName: v.n.name, ChannelVolumes: vols}, nil)
			}
			return t.request(&proto.SetSourceVolume{SourceIndex: proto.Undefined, SourceName: v.n.name, ChannelVolumes: vols}, nil)
		}
	})
	if isNoSuchEntity(err) {
		return fmt.Errorf("%s: %w (%v)", op, hal.ErrUnplugged, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// currentOn reads the node's state over an open connection.
func (v *device) currentOn(t transport) (node, error) {
	if v.n.sink {
		var r proto.GetSinkInfoReply
		if err := t.request(&proto.GetSinkInfo{SinkIndex: proto.Undefined, SinkName: v.n.name}, &r); err != nil {
			return node{}, err
		}
		return sinkNode(&r), nil
	}
	var r proto.GetSourceInfoReply
	if err := t.request(&proto.GetSourceInfo{SourceIndex: proto.Undefined, SourceName: v.n.name}, &r); err != nil {
		return node{}, err
	}
	return sourceNode(&r), nil
}

// Open implements hal.Speaker: a playback stream into this sink.
func (s *Speaker) Open(ctx context.Context, format hal.AudioFormat) (hal.AudioPlayback, error) {
	op := fmt.Sprintf("open %s %d Hz %d ch", s.info.ID, format.SampleRate, format.Channels)
	if err := s.checkFormat(format); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p, err := openPlayback(ctx, s.d, s.n.name, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// Open implements hal.Microphone: a record stream from this source.
func (m *Microphone) Open(ctx context.Context, format hal.AudioFormat) (hal.AudioCapture, error) {
	op := fmt.Sprintf("open %s %d Hz %d ch", m.info.ID, format.SampleRate, format.Channels)
	if err := m.checkFormat(format); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c, err := openCapture(ctx, m.d, m.n.name, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return c, nil
}

// EchoCancelledPair picks, from enumerated devices, a speaker and a
// microphone of the same echo canceller (see EchoCancelGroup), so the
// canceller's reference is what the meeting plays. It works on any
// driver's devices that have an EchoCancelGroup method; ok is false when
// there is no complete pair.
func EchoCancelledPair(devs []hal.Device) (spk hal.Speaker, mic hal.Microphone, ok bool) {
	type grouped interface{ EchoCancelGroup() string }
	speakers := map[string]hal.Speaker{}
	for _, d := range devs {
		if s, isSpk := d.(hal.Speaker); isSpk {
			if g, has := d.(grouped); has && g.EchoCancelGroup() != "" {
				if _, dup := speakers[g.EchoCancelGroup()]; !dup {
					speakers[g.EchoCancelGroup()] = s
				}
			}
		}
	}
	for _, d := range devs {
		if m, isMic := d.(hal.Microphone); isMic {
			if g, has := d.(grouped); has && g.EchoCancelGroup() != "" {
				if s, found := speakers[g.EchoCancelGroup()]; found {
					return s, m, true
				}
			}
		}
	}
	return nil, nil, false
}
