package janus_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// pionPeers is a minimal meeting.PeerFactory on pion for the integration
// tests against a real Janus: a sending peer publishes a VP8 and an Opus
// track of dummy frames, a receiving peer counts the RTP it gets. The real
// media layer (daemon/meeting/rtc) takes its place in roomd.
type pionPeers struct {
	api *webrtc.API

	mu    sync.Mutex
	peers []*pionPeer
}

func newPionPeers(iceAddr net.IP) (*pionPeers, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	var se webrtc.SettingEngine
	// The one host address Janus in janustest gathers on: the media never
	// leaves the machine.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(iceAddr) })
	return &pionPeers{api: webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))}, nil
}

func (f *pionPeers) NewPeer(ctx context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	pc, err := f.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &pionPeer{opts: opts, pc: pc, ctx: pctx, cancel: cancel, state: make(chan meeting.PeerState, 64)}
	pc.OnConnectionStateChange(p.onState)
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		p.tracks.Add(1)
		var ms *midStats
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			p.videoSSRC.Store(uint32(tr.SSRC()))
			ms = p.stats(receiverMID(pc, r))
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				p.rtp.Add(1)
				if ms != nil {
					ms.add(pkt)
				}
			}
		}()
	})
	if opts.Role == meeting.RoleSend {
		if err := p.addSenders(); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	f.mu.Lock()
	f.peers = append(f.peers, p)
	f.mu.Unlock()
	return p, nil
}

// peer returns the first peer with label, or nil.
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

	rtp       atomic.Int64  // RTP packets received
	tracks    atomic.Int64  // remote tracks seen
	answers   atomic.Int64  // Answer calls
	restarts  atomic.Int64  // RestartICE calls
	plis      atomic.Int64  // PLIs received on the video sender
	videoSSRC atomic.Uint32 // the last remote video track's SSRC
	connected atomic.Bool

	mu     sync.Mutex
	state  chan meeting.PeerState
	closed bool
	byMID  map[string]*midStats // received video, by mid
}

// stats returns the received video statistics of mid.
func (p *pionPeer) stats(mid string) *midStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byMID == nil {
		p.byMID = map[string]*midStats{}
	}
	if p.byMID[mid] == nil {
		p.byMID[mid] = &midStats{}
	}
	return p.byMID[mid]
}

func receiverMID(pc *webrtc.PeerConnection, r *webrtc.RTPReceiver) string {
	for _, t := range pc.GetTransceivers() {
		if t.Receiver() == r {
			return t.Mid()
		}
	}
	return ""
}

// midStats counts what arrives on one received video stream: bytes of
// RTP payload and the frames, with keyframes and the size their VP8
// header gives.
type midStats struct {
	mu     sync.Mutex
	bytes  int64
	frames []frameStart
}

// frameStart is the first packet of a VP8 frame.
type frameStart struct {
	at            time.Time
	key           bool
	width, height int // from a keyframe's header
}

func (m *midStats) add(pkt *rtp.Packet) {
	var vp8 codecs.VP8Packet
	payload, err := vp8.Unmarshal(pkt.Payload)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bytes += int64(len(pkt.Payload))
	if err != nil || vp8.S != 1 || vp8.PID != 0 || len(payload) == 0 {
		return
	}
	f := frameStart{at: time.Now(), key: payload[0]&1 == 0}
	// A keyframe's header: 3 bytes of frame tag, the start code 9d 01 2a,
	// then width and height (14 bits each, little endian).
	if f.key && len(payload) >= 10 && payload[3] == 0x9d && payload[4] == 0x01 && payload[5] == 0x2a {
		f.width = int(binary.LittleEndian.Uint16(payload[6:8]) & 0x3fff)
		f.height = int(binary.LittleEndian.Uint16(payload[8:10]) & 0x3fff)
	}
	m.frames = append(m.frames, f)
}

// snapshot returns the payload bytes so far and the frames since since.
func (m *midStats) snapshot(since time.Time) (int64, []frameStart) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := len(m.frames)
	for i > 0 && m.frames[i-1].at.After(since) {
		i--
	}
	return m.bytes, slices.Clone(m.frames[i:])
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
	for _, tr := range []*webrtc.TrackLocalStaticSample{audio, video} {
		t, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add track: %w", err)
		}
		isVideo := tr == video
		p.wg.Add(1)
		go func() {
			// RTCP must be read for the interceptors to work.
			defer p.wg.Done()
			for {
				pkts, _, err := t.Sender().ReadRTCP()
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					if _, ok := pkt.(*rtcp.PictureLossIndication); ok && isVideo {
						p.plis.Add(1)
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
			_ = video.WriteSample(media.Sample{Data: frame, Duration: 33 * time.Millisecond})
			// Opus silence, twice to keep 20 ms frames roughly in step.
			for range 2 {
				_ = audio.WriteSample(media.Sample{Data: []byte{0xf8, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
			}
		}
	}()
	return nil
}

func (p *pionPeer) onState(s webrtc.PeerConnectionState) {
	st := meeting.PeerState{Connected: s == webrtc.PeerConnectionStateConnected}
	if s == webrtc.PeerConnectionStateFailed {
		st.Failed, st.Reason = true, "ICE or DTLS failed"
	}
	p.connected.Store(st.Connected)
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

func (p *pionPeer) Answer(ctx context.Context, offer string) (string, error) {
	p.answers.Add(1)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("set remote offer: %w", err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	return p.gather(ctx, answer)
}

func (p *pionPeer) RestartICE(ctx context.Context) (string, error) {
	p.restarts.Add(1)
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return "", fmt.Errorf("create ICE restart offer: %w", err)
	}
	return p.gather(ctx, offer)
}

// ufrags returns the ICE username fragments of the current local and
// remote descriptions ("" for a missing one).
func (p *pionPeer) ufrags() (local, remote string) {
	return ufrag(p.pc.CurrentLocalDescription()), ufrag(p.pc.CurrentRemoteDescription())
}

func ufrag(d *webrtc.SessionDescription) string {
	if d == nil {
		return ""
	}
	for line := range strings.Lines(d.SDP) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
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
