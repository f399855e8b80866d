package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
)

// Defaults for zero Config fields.
const (
	DefaultMaxVideoBitrate   = 1_500_000
	DefaultMinVideoBitrate   = 100_000
	DefaultStartVideoBitrate = 500_000
	DefaultWidth             = 1280
	DefaultHeight            = 720
	DefaultFPS               = 30
	DefaultAudioBitrate      = 32_000
	DefaultGatherTimeout     = 5 * time.Second
)

// Config configures a Factory. Zero fields take the defaults above.
type Config struct {
	// ICEServers (STUN, TURN) are used by every peer, before the ones a
	// provider passes in meeting.PeerOptions.
	ICEServers []meeting.ICEServer
	// RelayOnly sets the ICE transport policy to "relay": media goes
	// through a TURN server only, so the far end never learns the room's
	// addresses. It needs a TURN server; without one Offer and Answer fail
	// with ErrNoCandidates.
	RelayOnly bool

	// MaxVideoBitrate caps the video encoder (bits/s), whatever congestion
	// control allows.
	MaxVideoBitrate int
	// MinVideoBitrate is the floor congestion control may push video to.
	MinVideoBitrate int
	// StartVideoBitrate is the video bitrate before congestion control has
	// any feedback.
	StartVideoBitrate int
	// Width, Height and FPS cap the capture mode: the camera mode closest
	// to them without exceeding them is chosen, and faster cameras are
	// decimated to FPS.
	Width, Height, FPS int
	// AudioBitrate is the Opus bitrate; it is taken off the congestion
	// control target before video gets the rest.
	AudioBitrate int
	// GatherTimeout bounds ICE gathering in Offer, Answer and RestartICE.
	// When it expires the SDP carries the candidates found so far.
	GatherTimeout time.Duration

	// Net replaces the operating system's network stack; tests pass a
	// vnet.Net so that ICE, DTLS and SRTP run with no real socket.
	Net transport.Net
	// UDPPortMin and UDPPortMax restrict local UDP ports (both zero: any),
	// for firewalls that open a fixed range.
	UDPPortMin, UDPPortMax uint16
	// SettingEngine, when set, adjusts pion's SettingEngine after everything
	// above was applied: candidate network types, ICE timeouts, and other
	// knobs tests or odd networks need.
	SettingEngine func(*webrtc.SettingEngine)

	// Logger receives connection and media events; nil discards.
	Logger *slog.Logger
	// Now is the clock for LastMedia and statistics; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxVideoBitrate, DefaultMaxVideoBitrate)
	def(&c.MinVideoBitrate, min(DefaultMinVideoBitrate, c.MaxVideoBitrate))
	def(&c.StartVideoBitrate, min(DefaultStartVideoBitrate, c.MaxVideoBitrate))
	def(&c.Width, DefaultWidth)
	def(&c.Height, DefaultHeight)
	def(&c.FPS, DefaultFPS)
	def(&c.AudioBitrate, DefaultAudioBitrate)
	if c.GatherTimeout == 0 {
		c.GatherTimeout = DefaultGatherTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.MaxVideoBitrate < 10_000 {
		bad("MaxVideoBitrate", "must be at least 10000 bits/s; got %d", c.MaxVideoBitrate)
	}
	if c.MinVideoBitrate < 10_000 || c.MinVideoBitrate > c.MaxVideoBitrate {
		bad("MinVideoBitrate", "must be from 10000 to MaxVideoBitrate (%d); got %d", c.MaxVideoBitrate, c.MinVideoBitrate)
	}
	if c.StartVideoBitrate < c.MinVideoBitrate || c.StartVideoBitrate > c.MaxVideoBitrate {
		bad("StartVideoBitrate", "must be from MinVideoBitrate to MaxVideoBitrate; got %d", c.StartVideoBitrate)
	}
	if c.Width < 16 || c.Height < 16 || c.Width > 7680 || c.Height > 4320 {
		bad("Width/Height", "must be from 16x16 to 7680x4320; got %dx%d", c.Width, c.Height)
	}
	if c.FPS < 1 || c.FPS > 240 {
		bad("FPS", "must be from 1 to 240; got %d", c.FPS)
	}
	if c.AudioBitrate < 6_000 || c.AudioBitrate > 510_000 {
		bad("AudioBitrate", "must be from 6000 to 510000 bits/s (Opus); got %d", c.AudioBitrate)
	}
	if c.GatherTimeout < 0 {
		bad("GatherTimeout", "must not be negative; got %s", c.GatherTimeout)
	}
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) || c.UDPPortMin > c.UDPPortMax {
		bad("UDPPortMin/UDPPortMax", "must both be zero or a range; got %d-%d", c.UDPPortMin, c.UDPPortMax)
	}
	return errors.Join(errs...)
}

// CameraFinder gives the capture loop a camera after the one it had was
// unplugged or failed. It is asked a few times a second while the far end
// sees the "camera unavailable" card, so it must be cheap (a registry
// lookup) and must not block.
type CameraFinder interface {
	// FindCamera returns the camera to use instead of lost (which is often
	// lost itself, back again), or false while there is none.
	FindCamera(lost hal.Info) (hal.Camera, bool)
}

// Media is what one meeting may use: devices, codec factories and sinks.
// Every field may be empty.
type Media struct {
	// Camera is captured by sending peers; nil sends no video.
	Camera hal.Camera
	// Cameras finds a camera again after Camera went away mid-call; with
	// nil, Camera itself is tried again.
	Cameras CameraFinder
	// Microphone is captured by sending peers; nil sends no audio.
	Microphone hal.Microphone
	// Speaker plays the mix of all remote audio; nil plays nothing (levels
	// are still measured when an audio decoder exists).
	Speaker hal.Speaker

	// VideoEncoders in order of preference: hardware first. The first one
	// that opens and encodes the negotiated codec is used; on failure the
	// next takes over.
	VideoEncoders []hal.VideoEncoderFactory
	// VideoDecoders are not used by peers (video is handed on encoded), but
	// kept here so the daemon can build a DecodingSink from the same list.
	VideoDecoders []hal.VideoDecoderFactory
	// AudioEncoders and AudioDecoders must offer Opus to be used.
	AudioEncoders []hal.AudioEncoderFactory
	AudioDecoders []hal.AudioDecoderFactory

	// VideoSinks receive every remote video track's encoded frames.
	VideoSinks []VideoSink
	// LocalVideoSinks receive the room's own video as it is sent, for a
	// self-view: every frame a sending peer's video encoder produced, the
	// very bytes the far end gets (no second encoder), from the first
	// keyframe on. The TrackInfo's PeerLabel is LocalPeerLabel, its ID the
	// sending peer's label, its Kind "video"; its RequestKeyframe makes the
	// encoder send a keyframe (to the far end too), at most one per 250 ms.
	// WriteVideo is called from the capture loop and must not block; the
	// camera off, the sinks get the "camera off" card the far end sees.
	LocalVideoSinks []VideoSink
	// AudioSinks receive every remote audio track's encoded packets.
	AudioSinks []AudioSink
}
