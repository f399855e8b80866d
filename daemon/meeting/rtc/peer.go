package rtc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
)

const (
	// bitrateInterval is how often the bitrate loop re-reads GCC's target
	// even without a change signal (REMB and SDP caps change it too).
	bitrateInterval = 500 * time.Millisecond
	// heartbeatInterval is how often State repeats the state while media
	// flows, so the engine sees LastMedia advance.
	heartbeatInterval = time.Second
	// stateBuffer is how many states State holds for a slow reader; when
	// full the oldest goes, since the engine acts on the latest.
	stateBuffer = 8
	// streamID groups our camera and microphone into one media stream, so
	// receivers keep them in sync.
	streamID = "atrium"
)

// Peer is one peer connection. It implements meeting.Peer.
type Peer struct {
	f           *Factory
	opts        meeting.PeerOptions
	log         *slog.Logger
	now         func() time.Time
	pc          *webrtc.PeerConnection
	bwe         *estimator // nil if congestion control is unavailable
	turnServers int

	// ctx ends every goroutine the peer started; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sigMu sync.Mutex // serialises Offer, Accept, Answer and RestartICE

	mu      sync.Mutex // guards the fields below
	closed  bool
	sending bool // capture loops started
	remote  map[string]*remoteTrack
	trickle *trickle // the channel of the last OfferTrickle

	video       *videoSender // nil: not sending video
	audio       *audioSender // nil: not sending audio
	sdpCap      atomic.Int64 // the remote SDP's video bandwidth limit, bits/s
	bitrateKick chan struct{}
	lastMedia   atomic.Int64 // UnixNano of the last RTP or RTCP packet

	stateMu   sync.Mutex
	stateCh   chan meeting.PeerState
	stateDone bool
	published meeting.PeerState

	statsMu sync.Mutex
	rates   rateMeter

	closeOnce sync.Once
	closeErr  error
}

var _ meeting.Peer = (*Peer)(nil)

func newPeer(f *Factory, opts meeting.PeerOptions, pc *webrtc.PeerConnection, bwe *estimator, turn int) *Peer {
	ctx, cancel := context.WithCancel(context.Background())
	role := "send"
	if opts.Role == meeting.RoleReceive {
		role = "receive"
	}
	return &Peer{
		f:           f,
		opts:        opts,
		log:         f.log.With("peer", opts.Label, "role", role),
		now:         f.cfg.Now,
		pc:          pc,
		bwe:         bwe,
		turnServers: turn,
		ctx:         ctx,
		cancel:      cancel,
		remote:      map[string]*remoteTrack{},
		bitrateKick: make(chan struct{}, 1),
		stateCh:     make(chan meeting.PeerState, stateBuffer),
	}
}

// spawn runs fn in a goroutine the peer owns, unless the peer is closed.
func (p *Peer) spawn(fn func(ctx context.Context)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn(p.ctx)
	}()
	return true
}

func (p *Peer) setup() error {
	p.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		p.log.Info("ICE connection state", "state", s.String())
		p.publishState()
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Info("connection state", "state", s.String())
		if s == webrtc.PeerConnectionStateConnected {
			p.startMedia()
		}
		p.publishState()
	})
	p.pc.OnTrack(p.onTrack)
	if p.opts.Role == meeting.RoleSend {
		if err := p.addSendTracks(); err != nil {
			return err
		}
	}
	p.spawn(p.heartbeat)
	if p.video != nil && p.bwe != nil {
		p.spawn(p.runBitrate)
	}
	return nil
}

func (p *Peer) addSendTracks() error {
	f, m := p.f, p.f.media
	if m.Camera != nil && len(f.sendCodec) == 0 {
		p.log.Warn("no encoder for VP8 or H.264; sending no video", "camera", m.Camera.Info().ID)
	}
	if m.Camera != nil && len(f.sendCodec) > 0 {
		track := newLocalTrack("video", streamID, webrtc.RTPCodecTypeVideo, func(c hal.Codec) bool {
			return slices.Contains(f.sendCodec, c)
		})
		tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add video track: %w", err)
		}
		// Offer only what our encoders can do, the first encoder's first.
		if err := tr.SetCodecPreferences(f.sendVideo); err != nil {
			return fmt.Errorf("set video codec preferences: %w", err)
		}
		p.video = &videoSender{p: p, track: track, sender: tr.Sender(), camera: m.Camera, cameras: m.Cameras, encoders: m.VideoEncoders}
		p.video.bitrate.Store(int64(f.cfg.StartVideoBitrate))
		p.spawn(p.video.readRTCP)
	}
	if m.Microphone != nil && !f.canOpus {
		p.log.Warn("no Opus encoder; sending no audio", "microphone", m.Microphone.Info().ID)
	}
	if m.Microphone != nil && f.canOpus {
		track := newLocalTrack("audio", streamID, webrtc.RTPCodecTypeAudio, func(c hal.Codec) bool { return c == hal.CodecOpus })
		tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add audio track: %w", err)
		}
		p.audio = &audioSender{p: p, track: track, sender: tr.Sender(), mic: m.Microphone, encoders: m.AudioEncoders}
		p.spawn(p.audio.readRTCP)
	}
	if p.video == nil && p.audio == nil {
		p.log.Warn("sending peer has nothing to send")
	}
	return nil
}

// startMedia starts the capture loops once, when the connection is first
// up: devices stay closed for a call that never connects.
func (p *Peer) startMedia() {
	p.mu.Lock()
	start := !p.sending && !p.closed
	p.sending = true
	p.mu.Unlock()
	if !start {
		return
	}
	if p.video != nil {
		p.spawn(p.video.run)
	}
	if p.audio != nil {
		p.spawn(p.audio.run)
	}
}

func (p *Peer) checkOpen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("peer %q: %w", p.opts.Label, ErrClosed)
	}
	return nil
}

// Offer implements meeting.Peer. A receiving peer offers one recvonly
// video and one recvonly audio section (WHEP).
func (p *Peer) Offer(ctx context.Context) (string, error) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	if p.opts.Role == meeting.RoleReceive {
		if err := p.ensureRecvTransceivers(); err != nil {
			return "", err
		}
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("create offer: %w", err)
	}
	return p.setLocalAndGather(ctx, offer)
}

func (p *Peer) ensureRecvTransceivers() error {
	have := map[webrtc.RTPCodecType]bool{}
	for _, t := range p.pc.GetTransceivers() {
		have[t.Kind()] = true
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if have[kind] {
			continue
		}
		if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("add %s receiver: %w", kind, err)
		}
	}
	return nil
}

// Accept implements meeting.Peer.
func (p *Peer) Accept(_ context.Context, answerSDP string) error {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.checkOpen(); err != nil {
		return err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}); err != nil {
		return fmt.Errorf("apply remote answer: %w", err)
	}
	p.remoteApplied(answerSDP)
	return nil
}

// Answer implements meeting.Peer: it applies the remote offer (Janus
// offers one section per subscribed stream; each becomes a recvonly
// transceiver) and returns our answer.
func (p *Peer) Answer(ctx context.Context, offerSDP string) (string, error) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("apply remote offer: %w", err)
	}
	p.remoteApplied(offerSDP)
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	return p.setLocalAndGather(ctx, answer)
}

// RestartICE implements meeting.Peer. The provider sends the offer and
// hands the answer to Accept; media keeps flowing on the old path until
// the new one is up.
func (p *Peer) RestartICE(ctx context.Context) (string, error) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return "", fmt.Errorf("create ICE restart offer: %w", err)
	}
	p.log.Info("ICE restart")
	// The restart's candidates go in its offer, not on an OfferTrickle
	// channel of the old credentials.
	p.closeTrickle()
	return p.setLocalAndGather(ctx, offer)
}

func (p *Peer) remoteApplied(sdp string) {
	p.sdpCap.Store(int64(videoBandwidthCap(sdp)))
	p.kickBitrate()
	if p.video != nil {
		if b := p.video.track.binding(); b != nil {
			p.log.Info("video codec negotiated", "codec", b.halCodec)
		}
	}
}

// setLocalAndGather applies desc and waits for ICE gathering, up to
// GatherTimeout, so the SDP carries every candidate (no trickle). On
// timeout it returns the candidates found so far, if any.
func (p *Peer) setLocalAndGather(ctx context.Context, desc webrtc.SessionDescription) (string, error) {
	if err := p.pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("set local %s: %w", desc.Type, err)
	}
	// After SetLocalDescription: an ICE restart regathers, and a promise
	// taken before it could see the previous gathering's "complete".
	done := webrtc.GatheringCompletePromise(p.pc)
	gctx, cancel := context.WithTimeout(ctx, p.f.cfg.GatherTimeout)
	defer cancel()
	timedOut := false
	select {
	case <-done:
	case <-gctx.Done():
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("gather ICE candidates: %w", err)
		}
		timedOut = true
	}
	local := p.pc.LocalDescription()
	if local == nil {
		return "", fmt.Errorf("gather ICE candidates: %w", ErrClosed)
	}
	n := countCandidates(local.SDP)
	if n == 0 {
		return "", p.noCandidates(timedOut)
	}
	if timedOut {
		p.log.Warn("ICE gathering timed out; sending the candidates found so far", "candidates", n, "timeout", p.f.cfg.GatherTimeout)
	}
	return local.SDP, nil
}

func (p *Peer) noCandidates(timedOut bool) error {
	switch {
	case p.f.cfg.RelayOnly && p.turnServers == 0:
		return fmt.Errorf("gather ICE candidates: %w: relay-only ICE policy, but no TURN server is configured", ErrNoCandidates)
	case p.f.cfg.RelayOnly:
		return fmt.Errorf("gather ICE candidates: %w: relay-only ICE policy, and no TURN server granted an allocation (check the TURN URLs and credentials)", ErrNoCandidates)
	case timedOut:
		return fmt.Errorf("gather ICE candidates: %w within %s", ErrNoCandidates, p.f.cfg.GatherTimeout)
	}
	return fmt.Errorf("gather ICE candidates: %w: no usable network interface", ErrNoCandidates)
}

// State implements meeting.Peer. A state is sent on every ICE and
// connection state change, and every second while connected if media
// arrived since the last one, so LastMedia stays fresh. A slow reader
// loses the oldest states, never the latest. Close closes the channel.
func (p *Peer) State() <-chan meeting.PeerState { return p.stateCh }

// LastMedia is when RTP or RTCP last arrived (zero if never).
func (p *Peer) LastMedia() time.Time {
	ns := p.lastMedia.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (p *Peer) touchMedia() { p.touchMediaAt(p.now()) }

func (p *Peer) touchMediaAt(t time.Time) { p.lastMedia.Store(t.UnixNano()) }

func (p *Peer) currentState() meeting.PeerState {
	st := meeting.PeerState{LastMedia: p.LastMedia()}
	switch p.pc.ConnectionState() {
	case webrtc.PeerConnectionStateConnected:
		st.Connected = true
	case webrtc.PeerConnectionStateFailed:
		st.Failed = true
		if p.pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed {
			st.Reason = "ICE failed: no candidate pair got through (a firewall, or a TURN server is needed)"
		} else {
			st.Reason = "DTLS handshake failed"
		}
	}
	return st
}

func (p *Peer) publishState() {
	st := p.currentState()
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.stateDone || st == p.published {
		return
	}
	p.published = st
	select {
	case p.stateCh <- st:
	default:
		select {
		case <-p.stateCh:
		default:
		}
		select {
		case p.stateCh <- st:
		default:
		}
	}
}

func (p *Peer) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
				p.publishState()
			}
		}
	}
}

func (p *Peer) kickBitrate() {
	select {
	case p.bitrateKick <- struct{}{}:
	default:
	}
}

// runBitrate feeds GCC's target, less audio and capped, to the video
// encoder.
func (p *Peer) runBitrate(ctx context.Context) {
	t := time.NewTicker(bitrateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.bwe.changed:
		case <-p.bitrateKick:
		}
		target := p.bwe.GetTargetBitrate()
		audio := 0
		if p.audio != nil {
			audio = p.f.cfg.AudioBitrate
		}
		cfg := p.f.cfg
		p.video.setBitrate(videoShare(target, audio, cfg.MinVideoBitrate, cfg.MaxVideoBitrate,
			int(p.video.remb.Load()), int(p.sdpCap.Load())))
	}
}

// Close implements meeting.Peer: it stops the capture and receive loops,
// closes the peer connection, the devices and codec sessions the peer
// opened, and the State channel. It waits for every goroutine the peer
// started.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		p.closeTrickle()
		// GracefulClose waits for pion's own goroutines, so none of them
		// calls back into a closed peer.
		err := p.pc.GracefulClose()
		p.wg.Wait()
		p.stateMu.Lock()
		p.stateDone = true
		close(p.stateCh)
		p.stateMu.Unlock()
		if err != nil {
			p.closeErr = fmt.Errorf("close peer %q: %w", p.opts.Label, err)
		}
		p.log.Info("peer closed")
	})
	return p.closeErr
}
