// Package hal is Atrium's hardware abstraction layer: the interfaces through
// which the rest of roomd reaches cameras, microphones, speakers and codecs,
// and the registry that enumerates them and reports hotplug.
//
// Drivers live in sub-packages (hal/sim today; V4L2, ALSA/PipeWire, V4L2
// mem2mem and VA-API later) and plug in through Driver. Nothing in hal imports
// the daemon, the UI or a meeting provider; those import hal.
package hal

import (
	"context"
	"time"
)

// Kind names a class of device. The values match apiv1.DeviceKind.
type Kind string

// Device kinds.
const (
	KindCamera       Kind = "camera"
	KindMicrophone   Kind = "microphone"
	KindSpeaker      Kind = "speaker"
	KindVideoEncoder Kind = "video-encoder"
	KindVideoDecoder Kind = "video-decoder"
	KindAudioEncoder Kind = "audio-encoder"
	KindAudioDecoder Kind = "audio-decoder"
)

// Info identifies a device.
type Info struct {
	// ID is stable across reboots and replugs of the same device (bus path,
	// USB vendor:product and serial for real hardware), so config can pin it.
	ID        string
	Kind      Kind
	Name      string
	Driver    string // "sim", "v4l2", "alsa", "pipewire", "v4l2-m2m", "vaapi", "software"
	Simulated bool
	// EchoCancelled marks a microphone whose signal has the room's own
	// playback removed (a sound server's echo-canceller source), and the
	// speaker that canceller takes as its reference: meetings prefer them.
	EchoCancelled bool
}

// Device is anything the registry lists.
type Device interface {
	Info() Info
}

// PixelFormat is a FourCC-style pixel format name.
type PixelFormat string

// Pixel formats the HAL knows. I420 is the common currency between capture
// and software encoders.
const (
	PixelI420 PixelFormat = "I420"
	PixelNV12 PixelFormat = "NV12"
	PixelYUYV PixelFormat = "YUYV"
	PixelMJPG PixelFormat = "MJPG"
	PixelH264 PixelFormat = "H264" // a camera's own encoder (UVC H.264)
)

// VideoMode is one capture mode.
type VideoMode struct {
	Width, Height int
	FPS           int
	Format        PixelFormat
}

// VideoFrame is one captured picture.
type VideoFrame struct {
	Width, Height int
	Format        PixelFormat
	// Data holds the planes back to back (for I420: Y, then U, then V).
	Data []byte
	// Seq counts frames from 0 since the stream opened; a gap means drops.
	Seq uint64
	// CapturedAt is when the sensor (or simulator) produced the frame.
	CapturedAt time.Time
}

// ControlID names a device control. Cameras use the V4L2-inspired names below.
type ControlID string

// Camera controls.
const (
	CtrlBrightness       ControlID = "brightness"
	CtrlContrast         ControlID = "contrast"
	CtrlExposureAuto     ControlID = "exposure_auto"
	CtrlExposure         ControlID = "exposure"
	CtrlWhiteBalanceAuto ControlID = "white_balance_auto"
	CtrlWhiteBalance     ControlID = "white_balance"
	CtrlFocusAuto        ControlID = "focus_auto"
	CtrlFocus            ControlID = "focus"
	CtrlZoom             ControlID = "zoom"
	CtrlPan              ControlID = "pan"
	CtrlTilt             ControlID = "tilt"
	// Relative moves, for cameras (and motors) that only step: writing n
	// moves by n steps from wherever the camera is now.
	CtrlZoomRelative ControlID = "zoom_relative"
	CtrlPanRelative  ControlID = "pan_relative"
	CtrlTiltRelative ControlID = "tilt_relative"
)

// Audio device controls. Volume is in percent (0–100) of the device's range,
// so a setting means the same on every card.
const (
	CtrlVolume ControlID = "volume"
	CtrlMute   ControlID = "mute"
)

// ControlType says how a control's value is read.
type ControlType string

// Control types.
const (
	ControlInt  ControlType = "int"
	ControlBool ControlType = "bool"
	ControlMenu ControlType = "menu"
)

// Control describes one control and its current value.
type Control struct {
	ID             ControlID
	Name           string
	Type           ControlType
	Min, Max, Step int64
	Default, Value int64
}

// Controller is implemented by devices with adjustable settings.
type Controller interface {
	Controls() []Control
	// SetControl range-checks value (ErrOutOfRange) and applies it.
	SetControl(ctx context.Context, id ControlID, value int64) error
}

// Camera captures video.
type Camera interface {
	Device
	Controller
	Modes() []VideoMode
	// Open starts capture in mode, which must be one of Modes().
	Open(ctx context.Context, mode VideoMode) (VideoStream, error)
}

// VideoStream delivers frames from an open camera.
type VideoStream interface {
	Mode() VideoMode
	// ReadFrame blocks until the next frame, ctx is done, or the stream ends
	// (ErrClosed, or ErrUnplugged when the device went away).
	ReadFrame(ctx context.Context) (VideoFrame, error)
	Close() error
}

// AudioFormat is a PCM format: signed 16-bit samples, interleaved channels.
type AudioFormat struct {
	SampleRate int
	Channels   int
}

// Microphone captures audio.
type Microphone interface {
	Device
	Formats() []AudioFormat
	Open(ctx context.Context, format AudioFormat) (AudioCapture, error)
}

// AudioCapture delivers samples from an open microphone.
type AudioCapture interface {
	Format() AudioFormat
	// Read fills buf with interleaved samples, blocking in real time, and
	// returns how many samples it wrote and when the first was captured.
	Read(ctx context.Context, buf []int16) (n int, capturedAt time.Time, err error)
	Close() error
}

// Speaker plays audio.
type Speaker interface {
	Device
	Formats() []AudioFormat
	Open(ctx context.Context, format AudioFormat) (AudioPlayback, error)
}

// AudioPlayback accepts samples for an open speaker.
type AudioPlayback interface {
	Format() AudioFormat
	// Write queues interleaved samples, blocking while the device buffer is full.
	Write(ctx context.Context, samples []int16) error
	Close() error
}

// Codec names a media codec.
type Codec string

// Codecs.
const (
	CodecH264 Codec = "H264"
	CodecVP8  Codec = "VP8"
	CodecVP9  Codec = "VP9"
	CodecOpus Codec = "Opus"
	// CodecFWHT is the kernel's vicodec test codec. No meeting negotiates
	// it; it exists so the V4L2 mem2mem path, which a hardware H.264
	// encoder shares, is exercised on machines without one.
	CodecFWHT Codec = "FWHT"
)

// CodecCaps says what a codec device can do.
type CodecCaps struct {
	Codec               Codec
	MaxWidth, MaxHeight int
	MaxSessions         int // 0: no fixed limit (software)
	Hardware            bool
}

// EncodedFrame is one compressed video frame or audio packet.
type EncodedFrame struct {
	Codec      Codec
	Data       []byte
	Keyframe   bool
	CapturedAt time.Time // carried from the raw input, for end-to-end latency
	Duration   time.Duration
}

// VideoEncoderConfig configures a new encoder session.
type VideoEncoderConfig struct {
	Codec         Codec
	Width, Height int
	FPS           int
	BitrateBps    int
	// KeyframeInterval bounds the distance between keyframes; 0 lets the
	// encoder choose.
	KeyframeInterval time.Duration
}

// VideoEncoder compresses frames. Its methods may be called from different
// goroutines: congestion control sets the bitrate and a PLI forces a keyframe
// while the capture loop encodes.
type VideoEncoder interface {
	Encode(ctx context.Context, frame VideoFrame) ([]EncodedFrame, error)
	ForceKeyframe()
	SetBitrate(bps int) error
	Close() error
}

// VideoEncoderFactory opens encoder sessions (a software library, a V4L2
// mem2mem device, a VA-API driver).
type VideoEncoderFactory interface {
	Device
	Codecs() []CodecCaps
	NewVideoEncoder(ctx context.Context, cfg VideoEncoderConfig) (VideoEncoder, error)
}

// VideoDecoder decompresses frames.
type VideoDecoder interface {
	Decode(ctx context.Context, frame EncodedFrame) ([]VideoFrame, error)
	Close() error
}

// VideoDecoderFactory opens decoder sessions.
type VideoDecoderFactory interface {
	Device
	Codecs() []CodecCaps
	NewVideoDecoder(ctx context.Context, codec Codec) (VideoDecoder, error)
}

// AudioEncoderConfig configures a new audio encoder session.
type AudioEncoderConfig struct {
	Codec      Codec
	Format     AudioFormat
	BitrateBps int
}

// AudioEncoder compresses PCM.
type AudioEncoder interface {
	Encode(ctx context.Context, samples []int16, capturedAt time.Time) ([]EncodedFrame, error)
	SetBitrate(bps int) error
	Close() error
}

// AudioEncoderFactory opens audio encoder sessions.
type AudioEncoderFactory interface {
	Device
	Codecs() []CodecCaps
	NewAudioEncoder(ctx context.Context, cfg AudioEncoderConfig) (AudioEncoder, error)
}

// AudioDecoder decompresses packets to PCM.
type AudioDecoder interface {
	Decode(ctx context.Context, frame EncodedFrame) ([]int16, error)
	Close() error
}

// AudioDecoderFactory opens audio decoder sessions.
type AudioDecoderFactory interface {
	Device
	Codecs() []CodecCaps
	NewAudioDecoder(ctx context.Context, codec Codec, format AudioFormat) (AudioDecoder, error)
}

// Driver finds devices of one backend.
type Driver interface {
	Name() string
	// Enumerate returns the devices present now. The registry calls it at
	// start and again whenever a Watcher reports a change.
	Enumerate(ctx context.Context) ([]Device, error)
}

// Watcher is implemented by drivers that can see hotplug. Watch blocks until
// ctx is done, calling changed whenever the set of devices may have changed.
// It must call changed once as soon as it is watching: the registry's first
// enumeration may run before Watch starts, and a device plugged in between
// the two would otherwise go unseen until the next event.
type Watcher interface {
	Watch(ctx context.Context, changed func()) error
}
