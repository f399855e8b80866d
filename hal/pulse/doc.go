// Package pulse is the HAL's audio driver for a sound server: PipeWire
// (through pipewire-pulse, its PulseAudio-protocol server) or PulseAudio
// itself. It lists the server's sinks as hal.Speakers and its sources as
// hal.Microphones, follows their hotplug (hal.Watcher), opens playback
// and capture streams, and sets volume and mute (hal.Controller). The
// driver is named NamePipeWire or NamePulse after the server it finds.
//
// roomd uses it when a server runs (New fails with ErrNoServer otherwise,
// and roomd falls back to ALSA directly), and prefers the echo canceller's
// pair of nodes that rootfs/pipewire configures; see "Echo cancellation".
//
// # Protocol
//
// It speaks the PulseAudio native protocol in pure Go: framing, tagstructs
// and request/reply matching come from github.com/jfreymuth/pulse/proto
// (v0.1.1, MIT); the client logic is this package's own. That library's
// high-level client was not used: it ignores subscription events (so no
// hotplug), takes no contexts, and does not wait for its reader goroutine
// when closed. Shelling out to pw-cat or pactl would have cost a process
// per stream and lost errors and timing.
//
// The driver keeps no connection between calls: Enumerate, each control
// change, Watch and each stream open their own (a unix socket and an
// authentication, about a millisecond), so a server restart costs only the
// streams open at the time, and every connection's reader goroutine ends
// with the call or stream that owns it. Requests cannot be cancelled once
// sent; Options.RequestTimeout bounds them.
//
// The server is looked for at Options.Server, else $PULSE_SERVER, else
// $XDG_RUNTIME_DIR/pulse/native, /run/user/UID/pulse/native (roomd is a
// system service, which may have no XDG_RUNTIME_DIR while PipeWire runs for
// the same user) and /run/pulse/native (a system-wide server).
//
// # Devices and IDs
//
// Every sink is a *Speaker; every source that is not a sink's monitor is a
// *Microphone (a monitor hears what is played, not the room; a Speaker's
// Monitor method returns it for loopback checks). PulseAudio's "auto_null"
// placeholder is left out. IDs are DRIVER:sink:KEY or DRIVER:source:KEY,
// where KEY, from the node's properties, survives reboots and replugs:
//
//	ec:NODE                              an echo canceller's node (its configured name)
//	serial:VENDOR:PRODUCT:SERIAL/PROFILE a device with a serial number (USB speakerphones)
//	bus:BUSPATH/PROFILE                  other hardware, by device.bus-path
//	node:NAME                            anything else (virtual sinks), by node name
//	monitor:SINKKEY                      a sink's monitor (Speaker.Monitor only)
//
// PROFILE (device.profile.name, e.g. "analog-stereo") tells apart the
// nodes of one card. For example "pipewire:sink:ec:atrium-ec-sink" or
// "pipewire:source:serial:0b0e:0422:745C4B/mono-fallback".
//
// # Echo cancellation
//
// rootfs/pipewire/pipewire.conf.d/50-atrium-echo-cancel.conf loads
// PipeWire's module-echo-cancel (WebRTC's canceller) with four nodes:
// ECSourceName, the microphone with the room's echo removed, and
// ECSinkName, the canceller's reference, into which roomd must play the
// far end (ECCaptureName and ECPlaybackName are the canceller's streams
// to and from the hardware; they are streams, not devices). A node counts
// as echo-cancelled when
//
//  1. it has PropEchoCancel = "true" (the image's configuration sets it);
//  2. or its node.link-group starts "echo-cancel-" (any PipeWire
//     module-echo-cancel; the module puts its four nodes in one group);
//  3. or its driver is "module-echo-cancel.c" (PulseAudio's canceller).
//
// Such a device has Info.EchoCancelled set, "(echo-cancelled)" in its name
// unless the name says so already, and an EchoCancelGroup that is the same
// for a canceller's source and sink; EchoCancelledPair picks such a pair
// from a device list. A sink's monitor is never echo-cancelled.
//
// # Streams
//
// Streams carry signed 16-bit little-endian samples at any rate and
// channel count in Formats (the server converts); each asks for
// Options.Latency of buffering (20 ms by default): playback keeps that much
// queued and is asked for more every quarter of it, capture receives a
// packet every half of it. Writes block until the server asks for more.
// Captured audio waits in a two-second ring for Read (older audio is
// dropped, with a warning); its capture times are dated from the arrival of
// recent packets, the earliest relative to its samples, less the source's
// latency the server reports. Streams are never moved by the server to
// another node: when theirs goes away, or the server does, reads and
// writes fail with hal.ErrUnplugged (with ErrConnectionLost for the
// server).
//
// # Controls
//
// hal.CtrlVolume is the server's volume in percent, 100 being its normal
// (0 dB) level on the server's cubic scale, as in its own mixers; setting
// it sets every channel alike. hal.CtrlMute is 0 or 1. Controls reads them
// from the server each time, so changes by other clients show.
package pulse
