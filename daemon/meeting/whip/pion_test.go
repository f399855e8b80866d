package whip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// pionPeers is a minimal meeting.PeerFactory on pion for the tests that
// need real media: a sending peer publishes a VP8 and an Opus track of
// dummy frames and counts the RTCP receiver reports that acknowledge
// them; a receiving peer counts the RTP it gets. The real media layer
// (daemon/meeting/rtc) takes its place in roomd.
type pionPeers struct {
	api *webrtc.API
	// trickleDelay, if set, makes the peers meeting.Tricklers that hold
	// their candidates back this long, as a slow STUN or TURN server
	// would, so that they reach the server only by PATCH.
	trickleDelay time.Duration

	mu    sync.Mutex
	peers []*pionPeer
}

// newPionPeers gathers ICE candidates on ip only (loopback included when
// ip is loopback).
func newPionPeers(ip net.IP) *pionPeers {
	return &pionPeers{api: newPionAPI(ip)}
}

func newPionAPI(ip net.IP) *webrtc.API {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(a net.IP) bool { return a.Equal(ip) })
	se.SetIncludeLoopbackCandidate(ip.IsLoopback())
	// NewAPI without an interceptor registry installs the defaults: NACK,
	// RTCP reports and TWCC, as a browser would have.
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func (f *pionPeers) NewPeer(_ context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	pc, err := f.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pionPeer{opts: opts, pc: pc, ctx: ctx, cancel: cancel, state: make(chan meeting.PeerState, 64), acked: map[uint32]uint32{}}
	pc.OnConnectionStateChange(p.onState)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				p.rtpIn.Add(1)
			}
		}()
	})
	if opts.Role == meeting.RoleSend {
		err = p.addSenders()
	} else {
		err = p.addReceivers()
	}
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	f.mu.Lock()
	f.peers = append(f.peers, p)
	f.mu.Unlock()
	if f.trickleDelay > 0 {
		return &tricklingPionPeer{pionPeer: p, delay: f.trickleDelay}, nil
	}
	return p, nil
}

// tricklingPionPeer is a pionPeer that implements meeting.Trickler.
type tricklingPionPeer struct {
	*pionPeer
	delay time.Duration
}

func (p *tricklingPionPeer) OfferTrickle(context.Context) (string, <-chan meeting.Candidate, error) {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", nil, fmt.Errorf("create offer: %w", err)
	}
	in := make(chan *webrtc.ICECandidate, 64)
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		select {
		case in <- c:
		case <-p.ctx.Done():
		}
	})
	out := make(chan meeting.Candidate)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(out)
		select {
		case <-time.After(p.delay):
		case <-p.ctx.Done():
			return
		}
		for {
			var c *webrtc.ICECandidate
			select {
			case c = <-in:
			case <-p.ctx.Done():
				return
			}
			if c == nil {
				return
			}
			select {
			case out <- meeting.Candidate{Mid: c.SDPMid, MLineIndex: int(c.SDPMLineIndex), Line: c.ToJSON().Candidate}:
			case <-p.ctx.Done():
				return
			}
		}
	}()
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return "", nil, fmt.Errorf("set local description: %w", err)
	}
	return p.pc.LocalDescription().SDP, out, nil
}

func (f *pionPeers) peer(label string) *pionPeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.peers {
		if p.opts.Label == label {
			return p
		}
	}
	return nil
}

type pionPeer struct {
	opts   meeting.PeerOptions
	pc     *webrtc.PeerConnection
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	rtpIn     atomic.Int64 // RTP packets received
	framesOut atomic.Int64 // video frames written while connected
	connected atomic.Bool
	restarts  atomic.Int64

	mu     sync.Mutex
	state  chan meeting.PeerState
	closed bool
	ssrcs  map[uint32]bool   // our senders' SSRCs
	acked  map[uint32]uint32 // SSRC: highest sequence number a receiver report acknowledged
	rrs    int               // receiver report blocks about our SSRCs
}

func (p *pionPeer) addSenders() error {
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "atrium")
	if err != nil {
		return fmt.Errorf("video track: %w", err)
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "atrium")
	if err != nil {
		return fmt.Errorf("audio track: %w", err)
	}
	p.ssrcs = map[uint32]bool{}
	for _, tr := range []*webrtc.TrackLocalStaticSample{audio, video} {
		t, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add track: %w", err)
		}
		sender := t.Sender()
		for _, e := range sender.GetParameters().Encodings {
			p.ssrcs[uint32(e.SSRC)] = true
		}
		p.wg.Add(1)
		go func() {
			// RTCP must be read for the interceptors to work; the
			// receiver reports in it are what the tests look for.
			defer p.wg.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					if b, err := pkt.Marshal(); err == nil {
						p.noteReport(b)
					}
				}
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		frame := make([]byte, 800)
		vt := time.NewTicker(33 * time.Millisecond)
		defer vt.Stop()
		n := 0
		for {
			select {
			case <-p.ctx.Done():
				return
			case <-vt.C:
			}
			_, _ = rand.Read(frame)
			// Bit 0 of a VP8 frame's first byte clear marks a keyframe;
			// send one a second.
			if n%30 == 0 {
				frame[0] &^= 1
			} else {
				frame[0] |= 1
			}
			n++
			if err := video.WriteSample(media.Sample{Data: frame, Duration: 33 * time.Millisecond}); err == nil && p.connected.Load() {
				p.framesOut.Add(1)
			}
			// Opus silence, twice to keep 20 ms frames roughly in step.
			for range 2 {
				_ = audio.WriteSample(media.Sample{Data: []byte{0xf8, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
			}
		}
	}()
	return nil
}

// noteReport records the report blocks of an RTCP receiver report (RFC
// 3550 Section 6.4.2) or sender report about our SSRCs. It reads the
// bytes itself rather than import pion/rtcp, a module of its own.
func (p *pionPeer) noteReport(b []byte) {
	if len(b) < 8 {
		return
	}
	count, off := int(b[0]&0x1f), 8
	switch b[1] {
	case 201: // RR
	case 200: // SR: 20 bytes of sender info first
		off += 20
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < count && off+24 <= len(b); i, off = i+1, off+24 {
		ssrc := binary.BigEndian.Uint32(b[off:])
		if !p.ssrcs[ssrc] {
			continue
		}
		p.rrs++
		if seq := binary.BigEndian.Uint32(b[off+8:]); seq > p.acked[ssrc] {
			p.acked[ssrc] = seq
		}
	}
}

// reports returns how many report blocks were about our streams, and the
// highest sequence number acknowledged on any.
func (p *pionPeer) reports() (blocks int, highest uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.acked {
		highest = max(highest, s)
	}
	return p.rrs, highest
}

func (p *pionPeer) addReceivers() error {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("add receiver: %w", err)
		}
	}
	return nil
}

func (p *pionPeer) onState(s webrtc.PeerConnectionState) {
	st := meeting.PeerState{Connected: s == webrtc.PeerConnectionStateConnected}
	if s == webrtc.PeerConnectionStateFailed {
		st.Failed, st.Reason = true, "ICE or DTLS failed"
	}
	p.connected.Store(st.Connected)
	p.push(st)
}

// push reports a state; the tests also use it to make the session believe
// the connection failed.
func (p *pionPeer) push(st meeting.PeerState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	select {
	case p.state <- st:
	default:
	}
}

func (p *pionPeer) gather(ctx context.Context, desc webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return p.pc.LocalDescription().SDP, nil
}

func (p *pionPeer) Offer(ctx context.Context) (string, error) {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("create offer: %w", err)
	}
	return p.gather(ctx, offer)
}

func (p *pionPeer) Accept(_ context.Context, answer string) error {
	return p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

func (p *pionPeer) Answer(context.Context, string) (string, error) {
	panic("a WHIP client never answers")
}

func (p *pionPeer) RestartICE(ctx context.Context) (string, error) {
	p.restarts.Add(1)
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return "", fmt.Errorf("create restart offer: %w", err)
	}
	return p.gather(ctx, offer)
}

func (p *pionPeer) State() <-chan meeting.PeerState { return p.state }

func (p *pionPeer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.state)
	p.mu.Unlock()
	p.cancel()
	err := p.pc.Close()
	p.wg.Wait()
	return err
}

// iceCreds returns the ICE username fragment of the current local and
// remote descriptions.
func (p *pionPeer) iceCreds() (local, remote string) {
	return ufragOf(p.pc.CurrentLocalDescription()), ufragOf(p.pc.CurrentRemoteDescription())
}

func ufragOf(d *webrtc.SessionDescription) string {
	if d == nil {
		return ""
	}
	for _, l := range sdpLines(d.SDP) {
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}
