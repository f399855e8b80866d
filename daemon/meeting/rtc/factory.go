package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
)

// Factory creates the peer connections of one meeting. It implements
// meeting.PeerFactory. It holds no goroutine of its own while no peer
// receives audio, so it needs no Close; close its peers.
type Factory struct {
	cfg   Config
	media Media
	log   *slog.Logger
	logs  logging.LoggerFactory
	api   *webrtc.API

	// sendVideo lists the video codecs (with RTX) a sending peer offers, in
	// preference order; empty when no encoder can do any.
	sendVideo []webrtc.RTPCodecParameters
	sendCodec []hal.Codec
	canOpus   bool
	// playFormat is what remote audio is decoded to: the speaker's format,
	// or 48 kHz mono for level metering alone.
	playFormat hal.AudioFormat
	mixer      *mixer // nil without a speaker

	mu         sync.Mutex
	estimators map[string]*estimator // by peer connection ID, until NewPeer takes it

	// micMuted and cameraOff are the room's privacy switches for this
	// meeting, read by every sending peer's capture loop.
	micMuted, cameraOff atomic.Bool
}

// SetMicrophoneMuted mutes or unmutes the room: while muted, sending peers
// send silence (the microphone stays open, so unmuting is instant).
func (f *Factory) SetMicrophoneMuted(muted bool) { f.micMuted.Store(muted) }

// SetCameraOff turns the camera off or on: while off, sending peers close
// the camera (its light goes out) and send the "camera off" card instead.
func (f *Factory) SetCameraOff(off bool) { f.cameraOff.Store(off) }

// MicrophoneMuted and CameraOff report the switches.
func (f *Factory) MicrophoneMuted() bool { return f.micMuted.Load() }

// CameraOff reports whether the camera is switched off.
func (f *Factory) CameraOff() bool { return f.cameraOff.Load() }

var _ meeting.PeerFactory = (*Factory)(nil)

// New validates cfg and builds the factory's webrtc.API.
func New(cfg Config, media Media) (*Factory, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f := &Factory{
		cfg:        cfg,
		media:      media,
		log:        cfg.Logger,
		logs:       pionLogs{log: cfg.Logger},
		estimators: map[string]*estimator{},
		playFormat: hal.AudioFormat{SampleRate: opusClockRate, Channels: 1},
	}
	f.sendCodec = sendableVideoCodecs(media.VideoEncoders)
	for _, c := range f.sendCodec {
		f.sendVideo = append(f.sendVideo, videoCodecParams(c)...)
	}
	f.canOpus = slices.ContainsFunc(media.AudioEncoders, func(e hal.AudioEncoderFactory) bool {
		_, ok := encoderCaps(e.Codecs(), hal.CodecOpus, 0, 0)
		return ok
	})
	if media.Speaker != nil {
		if format, ok := chooseAudioFormat(media.Speaker.Formats()); ok {
			f.playFormat = format
			f.mixer = newMixer(media.Speaker, format, f.log.With("speaker", media.Speaker.Info().ID))
		} else {
			f.log.Warn("speaker offers no format; remote audio will not be heard", "speaker", media.Speaker.Info().ID)
		}
	}
	api, err := f.buildAPI()
	if err != nil {
		return nil, err
	}
	f.api = api
	return f, nil
}

func (f *Factory) buildAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	// Receiving takes VP8 first: the kiosk UI's WebCodecs decodes it out of
	// the box, H.264 only with extra GStreamer plugins.
	for _, c := range []hal.Codec{hal.CodecVP8, hal.CodecH264} {
		for _, p := range videoCodecParams(c) {
			if err := me.RegisterCodec(p, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, fmt.Errorf("register %s: %w", p.MimeType, err)
			}
		}
	}
	if err := me.RegisterCodec(opusCodecParams(), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register Opus: %w", err)
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{absCaptureTimeURI, webrtc.RTPCodecTypeVideo},
		{absCaptureTimeURI, webrtc.RTPCodecTypeAudio},
		{audioLevelURI, webrtc.RTPCodecTypeAudio},
		// pion registers mid for video only; BUNDLE demuxing of audio
		// without signalled SSRCs needs it too.
		{sdesMidURI, webrtc.RTPCodecTypeAudio},
	}
	for _, e := range exts {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, fmt.Errorf("register header extension %s: %w", e.uri, err)
		}
	}

	reg := &interceptor.Registry{}
	// Order matters: the first registered sits closest to the network. GCC
	// must see packets after the TWCC interceptor numbered them, and NACK
	// retransmissions must pass through both.
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return newEstimator(
			f.cfg.StartVideoBitrate+f.cfg.AudioBitrate,
			f.cfg.MinVideoBitrate+f.cfg.AudioBitrate,
			f.cfg.MaxVideoBitrate+f.cfg.AudioBitrate,
			f.logs)
	})
	if err != nil {
		return nil, fmt.Errorf("create congestion control interceptor: %w", err)
	}
	ccf.OnNewPeerConnection(func(id string, bwe cc.BandwidthEstimator) {
		if e, ok := bwe.(*estimator); ok {
			f.mu.Lock()
			f.estimators[id] = e
			f.mu.Unlock()
		}
	})
	reg.Add(ccf)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		return nil, fmt.Errorf("configure TWCC header extension: %w", err)
	}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(me, reg, webrtc.WithInterceptorLoggerFactory(f.logs)); err != nil {
		return nil, fmt.Errorf("register default interceptors: %w", err)
	}

	se := webrtc.SettingEngine{LoggerFactory: f.logs}
	// pion resends a lost DTLS handshake flight after 1 s; against Janus the
	// first flight of the subscriber connection is often lost, and that
	// second cost most of a join (measured in bench/results/join.txt).
	se.SetDTLSRetransmissionInterval(DTLSRetransmissionInterval)
	if f.cfg.Net != nil {
		se.SetNet(f.cfg.Net)
	}
	if f.cfg.UDPPortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(f.cfg.UDPPortMin, f.cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("set UDP port range: %w", err)
		}
	}
	if f.cfg.SettingEngine != nil {
		f.cfg.SettingEngine(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// DTLSRetransmissionInterval is how soon a lost DTLS handshake flight is
// sent again (pion's default is 1 s).
const DTLSRetransmissionInterval = 100 * time.Millisecond

func (f *Factory) takeEstimator(id string) *estimator {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.estimators[id]
	delete(f.estimators, id)
	return e
}

// iceServers joins the configured servers and the provider's.
func (f *Factory) iceServers(extra []meeting.ICEServer) (servers []webrtc.ICEServer, turn int) {
	for _, s := range slices.Concat(f.cfg.ICEServers, extra) {
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				turn++
			}
		}
	}
	return servers, turn
}

// NewPeer creates a peer connection. ctx bounds only the creation: the
// peer lives until Close.
func (f *Factory) NewPeer(ctx context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	p, err := f.newPeer(ctx, opts)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (f *Factory) newPeer(ctx context.Context, opts meeting.PeerOptions) (*Peer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new peer %q: %w", opts.Label, err)
	}
	if opts.Role != meeting.RoleSend && opts.Role != meeting.RoleReceive {
		return nil, fmt.Errorf("new peer %q: unknown role %d", opts.Label, opts.Role)
	}
	servers, turn := f.iceServers(opts.ICEServers)
	conf := webrtc.Configuration{
		ICEServers: servers,
		// One transport for everything, as browsers and Janus do.
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	}
	if f.cfg.RelayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := f.api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("new peer %q: create peer connection: %w", opts.Label, err)
	}
	p := newPeer(f, opts, pc, f.takeEstimator(pc.ID()), turn)
	if err := p.setup(); err != nil {
		return nil, errors.Join(fmt.Errorf("new peer %q: %w", opts.Label, err), p.Close())
	}
	return p, nil
}

// openAudioDecoder opens the first Opus decoder that works, producing
// playFormat.
func (f *Factory) openAudioDecoder(ctx context.Context) (hal.AudioDecoder, error) {
	var errs []error
	for _, d := range f.media.AudioDecoders {
		if _, ok := encoderCaps(d.Codecs(), hal.CodecOpus, 0, 0); !ok {
			continue
		}
		dec, err := d.NewAudioDecoder(ctx, hal.CodecOpus, f.playFormat)
		if err == nil {
			return dec, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", d.Info().ID, err))
	}
	err := fmt.Errorf("%w for Opus", ErrNoDecoder)
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return nil, err
}
