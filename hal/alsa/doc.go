// Package alsa is the HAL driver for ALSA sound cards, talking to the
// kernel directly: ioctls on /dev/snd/controlC* and /dev/snd/pcmC*D*, no
// libasound and no cgo, so it runs in a static binary and in the QEMU test
// guest. It is what roomd uses when no sound server (PipeWire, PulseAudio)
// owns the cards; hal/pulse covers the other case.
//
// # Devices
//
// Enumerate lists every PCM device of every card: each playback direction
// is a *Speaker (hal.Speaker), each capture direction a *Microphone
// (hal.Microphone). Both are hal.Controllers with hal.CtrlVolume (percent
// of the mixer element's raw range) and hal.CtrlMute, when the card has
// mixer elements with the usual names for that direction ("Master
// Playback Volume", "PCM Playback Switch", "Mic Capture Volume",
// snd-dummy's "Master Volume"...); a card without them, like snd-aloop,
// lists no controls. Elements are per card, so every PCM device of a card
// shares them.
//
// Formats lists which of 48, 44.1 and 16 kHz, mono and stereo, the device
// accepts as interleaved S16_LE, found by HW_REFINE. A device another
// program holds cannot be probed; it keeps the formats of an earlier probe.
//
// # Stable IDs
//
// Device IDs survive reboots, replugs and the renumbering of cards:
//
//	alsa:usb-VVVV:PPPP-SERIAL-pcmDp   USB audio (speakerphones, headsets):
//	                                  vendor and product IDs and serial from
//	                                  sysfs; without a serial number, the
//	                                  USB port path ("1-1.2") instead
//	alsa:CARDID-pcmDc                 any other card: the card's id string
//	                                  ("Loopback", "Dummy", "PCH"), which
//	                                  the driver or udev sets
//
// D is the PCM device number; the final letter is p for playback and c for
// capture. Examples: "alsa:usb-0b0e:0422-A00B2C3D4E-pcm0p",
// "alsa:Loopback-pcm1c".
//
// # Streams
//
// Open configures the device for interleaved S16_LE at the requested
// format with periods of about 10 ms and a buffer of about four periods
// (Options.PeriodTime, Options.Periods), then reads or writes with
// READI/WRITEI_FRAMES on a non-blocking descriptor, waiting in poll. An
// xrun (EPIPE) restarts the stream and is counted (Xruns); a suspended
// stream is resumed; a card that goes away makes reads and writes fail
// with hal.ErrUnplugged, and Close makes them fail with hal.ErrClosed.
// Callers should Close a stream soon after hal.ErrUnplugged: the kernel
// frees a removed card only once its last file is closed.
//
// Capture timestamps come from the kernel's delay: when a Read takes its
// first frames, they and the frames still waiting were captured, at the
// stream's rate, up to that moment. Playback.Delay gives the other side's
// queue, for an echo canceller.
//
// For cards with several substreams per device (snd-aloop has eight), Open
// takes the first free one; OpenSubdevice asks for a given one, which
// matters for snd-aloop where playback substream N of device 0 loops back
// to capture substream N of device 1.
//
// # Hotplug
//
// Watch follows the "sound" subsystem through hal/hotplug (uevents, or
// inotify on /dev/snd as a fallback).
//
// The ABI is the 64-bit one (amd64, arm64); abi_test.go pins the struct
// sizes and ioctl numbers.
package alsa
