package pulse

import (
	"maps"
	"strconv"
	"strings"

	"github.com/jfreymuth/pulse/proto"
)

// Node properties this package reads. PipeWire's pulse server passes a
// node's PipeWire properties through as the sink's or source's proplist.
const (
	propNodeName      = "node.name"
	propLinkGroup     = "node.link-group"
	propDeviceClass   = "device.class"
	propDeviceSerial  = "device.serial"
	propVendorID      = "device.vendor.id"
	propProductID     = "device.product.id"
	propBusPath       = "device.bus-path"
	propProfileName   = "device.profile.name"
	propAlsaPCMDevice = "api.alsa.pcm.device"

	// PropEchoCancel is the marker rootfs/pipewire's echo-cancel
	// configuration puts on the canceller's source and sink ("true"), so
	// they are recognised whatever they are named.
	PropEchoCancel = "atrium.echo-cancel"

	// pipewireECGroupPrefix starts the node.link-group PipeWire's
	// module-echo-cancel gives its four nodes ("echo-cancel-PID-N" in
	// 0.3.x), which ties a cancelled source to its reference sink.
	pipewireECGroupPrefix = "echo-cancel-"

	// pulseECDriver is the driver PulseAudio reports for the sink and
	// source of its own module-echo-cancel (PulseAudio names a module's
	// devices after the module's source file).
	pulseECDriver = "module-echo-cancel.c"
)

// Node names rootfs/pipewire/pipewire.conf.d/50-atrium-echo-cancel.conf
// gives the echo canceller's nodes. roomd plays the far end into ECSinkName
// and captures from ECSourceName; the other two are the canceller's own
// streams to and from the hardware, which are not devices.
const (
	ECSinkName     = "atrium-ec-sink"
	ECSourceName   = "atrium-ec-source"
	ECCaptureName  = "atrium-ec-capture"
	ECPlaybackName = "atrium-ec-playback"
)

// node is what the driver knows of one sink or source.
type node struct {
	sink        bool
	index       uint32
	name        string // the server's name, which is PipeWire's node.name
	description string
	driver      string
	module      uint32
	spec        proto.SampleSpec
	volumes     []uint32
	mute        bool
	monitorOf   uint32 // sources only: the sink this source monitors, or proto.Undefined
	monitor     string // sinks only: the name of the sink's monitor source
	props       map[string]string
	sinkKey     string // monitors made by monitorNode: their sink's stableKey
}

func propMap(pl proto.PropList) map[string]string {
	m := make(map[string]string, len(pl))
	for k, v := range pl {
		s := v.String()
		if s == "<not a string>" {
			continue
		}
		m[k] = s
	}
	return m
}

func sinkNode(r *proto.GetSinkInfoReply) node {
	return node{
		sink: true, index: r.SinkIndex, name: r.SinkName, description: r.Device,
		driver: r.Driver, module: r.ModuleIndex, spec: r.SampleSpec,
		volumes: r.ChannelVolumes, mute: r.Mute, monitorOf: proto.Undefined,
		monitor: r.MonitorSourceName, props: propMap(r.Properties),
	}
}

func sourceNode(r *proto.GetSourceInfoReply) node {
	return node{
		sink: false, index: r.SourceIndex, name: r.SourceName, description: r.Device,
		driver: r.Driver, module: r.ModuleIndex, spec: r.SampleSpec,
		volumes: r.ChannelVolumes, mute: r.Mute,
		// For a source the reply's "monitor" field names the sink it is
		// the monitor of.
		monitorOf: r.MonitorSourceIndex,
		props:     propMap(r.Properties),
	}
}

// isMonitor reports whether a source only repeats what a sink plays: it
// is no microphone.
func (n node) isMonitor() bool {
	return !n.sink && (n.monitorOf != proto.Undefined || n.props[propDeviceClass] == "monitor")
}

// echoCancelGroup returns what ties an echo-cancelled source to the sink
// that is its canceller's reference, or "" when n is not echo-cancelled.
// Detection, in order:
//  1. PropEchoCancel = "true" (rootfs/pipewire's configuration);
//  2. a node.link-group starting "echo-cancel-" (any instance of
//     PipeWire's module-echo-cancel);
//  3. driver "module-echo-cancel.c" (PulseAudio's module-echo-cancel,
//     grouped by the module instance).
//
// A monitor is never echo-cancelled, even of a canceller's sink: it hears
// what is played, not the room.
func (n node) echoCancelGroup() string {
	if n.isMonitor() {
		return ""
	}
	lg := n.props[propLinkGroup]
	switch {
	case n.props[PropEchoCancel] == "true" && lg != "":
		return lg
	case n.props[PropEchoCancel] == "true":
		return "name:" + strings.TrimSuffix(strings.TrimSuffix(n.name, "-sink"), "-source")
	case strings.HasPrefix(lg, pipewireECGroupPrefix):
		return lg
	case n.driver == pulseECDriver:
		return "module:" + strconv.FormatUint(uint64(n.module), 10)
	}
	return ""
}

// stableKey is the part of a device ID that survives reboots and replugs.
// In order of preference:
//   - "ec:NODE" for an echo canceller's sink or source: its node name comes
//     from the image's configuration;
//   - "serial:VENDOR:PRODUCT:SERIAL/PROFILE" when the node's device has a
//     serial number (USB speakerphones): the same unit in any port;
//   - "bus:BUSPATH/PROFILE" otherwise for hardware (device.bus-path, e.g.
//     "pci-0000:00:1f.3" or "usb-0000:00:14.0-2"): the same socket;
//   - "node:NAME", the server's name, for anything else (virtual sinks);
//   - "monitor:SINKKEY" for a sink's monitor (Speaker.Monitor).
//
// PROFILE tells apart the nodes of one card (device.profile.name, such as
// "analog-stereo", else the ALSA PCM device number).
func (n node) stableKey() string {
	if n.sinkKey != "" {
		return "monitor:" + n.sinkKey
	}
	if n.echoCancelGroup() != "" {
		return "ec:" + n.name
	}
	sub := n.props[propProfileName]
	if sub == "" {
		sub = n.props[propAlsaPCMDevice]
	}
	if serial := n.props[propDeviceSerial]; serial != "" {
		key := "serial:"
		if v, p := n.props[propVendorID], n.props[propProductID]; v != "" || p != "" {
			key += strings.TrimPrefix(v, "0x") + ":" + strings.TrimPrefix(p, "0x") + ":"
		}
		return key + serial + "/" + sub
	}
	if bus := n.props[propBusPath]; bus != "" {
		return "bus:" + bus + "/" + sub
	}
	return "node:" + n.name
}

// id is the device ID: DRIVER:sink:KEY or DRIVER:source:KEY.
func (n node) id(driver string) string {
	dir := "source"
	if n.sink {
		dir = "sink"
	}
	return driver + ":" + dir + ":" + n.stableKey()
}

// displayName is the node's description, marked when echo-cancelled so a
// person choosing a device can see which one is.
func (n node) displayName() string {
	name := n.description
	if name == "" {
		name = n.name
	}
	if n.echoCancelGroup() != "" {
		l := strings.ToLower(name)
		if !strings.Contains(l, "echo-cancel") && !strings.Contains(l, "echo cancel") {
			name += " (echo-cancelled)"
		}
	}
	return name
}

// monitorNode is the source that monitors sink n.
func (n node) monitorNode() node {
	m := n
	m.sink = false
	m.name = n.monitor
	m.description = "Monitor of " + n.displayName()
	m.monitorOf = n.index
	m.monitor = ""
	m.sinkKey = n.stableKey()
	m.props = maps.Clone(n.props)
	m.props[propDeviceClass] = "monitor"
	m.props[propNodeName] = n.monitor
	return m
}
