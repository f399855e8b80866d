package kioskbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
	"github.com/atriumroom/atrium/hal/swcodec"
)

// The publishers' video: 720p30 VP8, at a bit rate a conferencing service
// gives 720p.
const (
	videoW, videoH, videoFPS = 1280, 720, 30
	videoBitrate             = 1_500_000
	framePeriod              = time.Second / videoFPS
	// replayLength is how much video the replaying publishers loop, and
	// replayKeyframes the keyframe interval in it: a subscriber that joins
	// mid-loop waits at most that long for a picture.
	replayLength    = 3 * time.Second
	replayKeyframes = time.Second
	// connectTimeout bounds a publisher's ICE and DTLS.
	connectTimeout = 15 * time.Second
)

// source feeds a publisher's track until ctx ends. keyframes carries the
// far end's picture-loss indications and FIRs.
type source interface {
	run(ctx context.Context, track *webrtc.TrackLocalStaticSample, keyframes <-chan struct{}) error
}

// publisher is one far-end guest in the bench room: a pion PeerConnection
// that publishes one VP8 track through its own Janus session.
type publisher struct {
	name string
	js   *janusSession
	pc   *webrtc.PeerConnection

	// keyRequests counts the PLIs and FIRs that reached the publisher:
	// Janus's periodic ones (fir_freq) and those subscribers asked for.
	keyRequests atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	srcErr error // the source's error, once wg is done
}

// startPublisher joins the bench room as name and starts feeding src into
// the published track; it returns once the PeerConnection is connected.
func startPublisher(ctx context.Context, wsURL string, iceAddr net.IP, name string, src source) (_ *publisher, err error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("publisher %s: register VP8: %w", name, err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("publisher %s: interceptors: %w", name, err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(iceAddr) })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))

	p := &publisher{name: name}
	p.pc, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("publisher %s: peer connection: %w", name, err)
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	connected := make(chan struct{})
	var once sync.Once
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "kioskbench-"+name)
	if err != nil {
		return nil, fmt.Errorf("publisher %s: track: %w", name, err)
	}
	tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, fmt.Errorf("publisher %s: transceiver: %w", name, err)
	}

	p.js, err = dialJanus(ctx, wsURL)
	if err != nil {
		return nil, fmt.Errorf("publisher %s: %w", name, err)
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("publisher %s: offer: %w", name, err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("publisher %s: set offer: %w", name, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("publisher %s: gather candidates: %w", name, ctx.Err())
	}
	answer, err := p.js.publish(ctx, name, p.pc.LocalDescription().SDP)
	if err != nil {
		return nil, fmt.Errorf("publisher %s: %w", name, err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("publisher %s: set answer: %w", name, err)
	}

	sctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	keyframes := make(chan struct{}, 1)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		readRTCP(tr.Sender(), keyframes, &p.keyRequests)
	}()
	go func() {
		defer p.wg.Done()
		if err := src.run(sctx, track, keyframes); err != nil && !errors.Is(err, context.Canceled) {
			p.srcErr = fmt.Errorf("publisher %s: %w", name, err)
		}
	}()

	cctx, ccancel := context.WithTimeout(ctx, connectTimeout)
	defer ccancel()
	select {
	case <-connected:
		return p, nil
	case <-cctx.Done():
		return nil, fmt.Errorf("publisher %s: not connected to Janus: %w", name, cctx.Err())
	}
}

// readRTCP counts picture-loss indications and FIRs and turns them into
// keyframe requests until the sender is closed.
func readRTCP(s *webrtc.RTPSender, keyframes chan<- struct{}, count *atomic.Int64) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				count.Add(1)
				select {
				case keyframes <- struct{}{}:
				default:
				}
			}
		}
	}
}

// close leaves the room and stops the source; it returns the source's
// error, if it failed.
func (p *publisher) close() error {
	if p.cancel != nil {
		p.cancel()
	}
	if p.js != nil {
		p.js.close()
	}
	_ = p.pc.Close() // ends readRTCP
	p.wg.Wait()
	return p.srcErr
}

// liveSource sends the simulated camera, encoded as it is captured: its
// frames carry the burned-in capture time the delay measurement reads,
// twice (see copyStamp).
type liveSource struct {
	logger *slog.Logger
	// origin is the capture time of frame 0 in Unix nanoseconds, known
	// once the first frame is captured: the camera captures frame n at
	// exactly origin + n*framePeriod, which tells its stamps apart from
	// those of any other simulated camera (roomd's own, in a self-view).
	origin atomic.Int64
}

func (l *liveSource) run(ctx context.Context, track *webrtc.TrackLocalStaticSample, keyframes <-chan struct{}) error {
	l.origin.Store(0) // a new camera has a new origin
	devs, err := sim.New(sim.Config{CameraWidth: videoW, CameraHeight: videoH, CameraFPS: videoFPS, Logger: l.logger})
	if err != nil {
		return fmt.Errorf("simulated camera: %w", err)
	}
	stream, err := devs.Camera().Open(ctx, hal.VideoMode{Width: videoW, Height: videoH, FPS: videoFPS, Format: hal.PixelI420})
	if err != nil {
		return fmt.Errorf("open simulated camera: %w", err)
	}
	defer stream.Close()
	enc, err := newVP8Encoder(ctx, l.logger, 2*time.Second)
	if err != nil {
		return err
	}
	defer enc.Close()
	for {
		f, err := stream.ReadFrame(ctx)
		if err != nil {
			return err
		}
		l.origin.CompareAndSwap(0, f.CapturedAt.Add(-time.Duration(f.Seq)*framePeriod).UnixNano())
		copyStamp(f)
		select {
		case <-keyframes:
			enc.ForceKeyframe()
		default:
		}
		out, err := enc.Encode(ctx, f)
		if err != nil {
			return fmt.Errorf("encode frame %d: %w", f.Seq, err)
		}
		for _, e := range out {
			if err := track.WriteSample(media.Sample{Data: e.Data, Duration: framePeriod}); err != nil {
				return fmt.Errorf("send frame %d: %w", f.Seq, err)
			}
		}
	}
}

// copyStamp repeats the stamp band of a w x h I420 frame across the
// middle of the picture, at stampCopyRow(h). The call screen may put
// overlays on a tile's top-left corner (a connection badge), over the
// stamp where hal/sim draws it; the copy, read as the top of a picture of
// the frame's width, decodes the same. Chroma under it is made neutral.
func copyStamp(f hal.VideoFrame) {
	w, h := f.Width, f.Height
	band, at := stampBand(h), stampCopyRow(h)
	copy(f.Data[at*w:(at+band)*w], f.Data[:band*w])
	cw := w / 2
	for _, plane := range [][]byte{f.Data[w*h : w*h+cw*(h/2)], f.Data[w*h+cw*(h/2):]} {
		rows := plane[at/2*cw : (at+band)/2*cw]
		for i := range rows {
			rows[i] = 128
		}
	}
}

// stampCopyRow is where copyStamp puts the copy: centred vertically, on an
// even row.
func stampCopyRow(h int) int { return (h/2 - stampBand(h)/2) &^ 1 }

// isLive reports whether a decoded stamp is one of this camera's frames.
func (l *liveSource) isLive(seq uint64, captured time.Time) bool {
	o := l.origin.Load()
	if o == 0 {
		return false
	}
	// The stamp holds the low 32 bits of the frame number.
	n := captured.UnixNano() - o
	return n >= 0 && n%int64(framePeriod) == 0 && uint32(n/int64(framePeriod)) == uint32(seq)
}

func newVP8Encoder(ctx context.Context, logger *slog.Logger, keyframes time.Duration) (hal.VideoEncoder, error) {
	enc, err := swcodec.NewVideoEncoders(logger).NewVideoEncoder(ctx, hal.VideoEncoderConfig{
		Codec: hal.CodecVP8, Width: videoW, Height: videoH, FPS: videoFPS,
		BitrateBps: videoBitrate, KeyframeInterval: keyframes,
	})
	if err != nil {
		return nil, fmt.Errorf("VP8 encoder: %w", err)
	}
	return enc, nil
}

// replayClip is VP8 encoded once and sent in a loop by the replaying
// publishers. It is the simulated camera's picture with the stamp band
// painted grey: only the live publisher's tile carries a stamp.
type replayClip struct {
	frames [][]byte
}

// encodeReplayClip captures and encodes replayLength of the simulated
// camera, a keyframe every replayKeyframes (the first frame is one).
func encodeReplayClip(ctx context.Context, logger *slog.Logger) (*replayClip, error) {
	devs, err := sim.New(sim.Config{CameraWidth: videoW, CameraHeight: videoH, CameraFPS: videoFPS, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("replay clip: simulated camera: %w", err)
	}
	stream, err := devs.Camera().Open(ctx, hal.VideoMode{Width: videoW, Height: videoH, FPS: videoFPS, Format: hal.PixelI420})
	if err != nil {
		return nil, fmt.Errorf("replay clip: open camera: %w", err)
	}
	defer stream.Close()
	enc, err := newVP8Encoder(ctx, logger, replayKeyframes)
	if err != nil {
		return nil, fmt.Errorf("replay clip: %w", err)
	}
	defer enc.Close()
	clip := &replayClip{}
	band := stampBand(videoH)
	for len(clip.frames) < int(replayLength/framePeriod) {
		f, err := stream.ReadFrame(ctx)
		if err != nil {
			return nil, fmt.Errorf("replay clip: %w", err)
		}
		for i := range videoW * band {
			f.Data[i] = 128
		}
		out, err := enc.Encode(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("replay clip: encode: %w", err)
		}
		for _, e := range out {
			if len(clip.frames) == 0 && !e.Keyframe {
				return nil, errors.New("replay clip: the encoder's first frame is not a keyframe")
			}
			clip.frames = append(clip.frames, e.Data)
		}
	}
	return clip, nil
}

// stampBand is the height of hal/sim's stamp at the top of a frame of
// height h: 4 rows of h/32.
func stampBand(h int) int { return 4 * h / 32 }

// replaySource loops a clip at the clip's frame rate; it ignores keyframe
// requests, as the clip has a keyframe every replayKeyframes.
type replaySource struct{ clip *replayClip }

func (r replaySource) run(ctx context.Context, track *webrtc.TrackLocalStaticSample, _ <-chan struct{}) error {
	t := time.NewTicker(framePeriod)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := track.WriteSample(media.Sample{Data: r.clip.frames[i%len(r.clip.frames)], Duration: framePeriod}); err != nil {
			return fmt.Errorf("send replayed frame: %w", err)
		}
	}
}
