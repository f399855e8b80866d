package rtc

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/atriumroom/atrium/hal"
)

// Frame reassembly. The sample builder waits for a missing packet (which
// NACK may still bring) up to maxLatePackets or maxFrameDelay, then gives
// the frame up; the frames after it are withheld until a keyframe, which a
// PLI asks for, because no decoder can use them.
const (
	maxLatePackets = 256
	maxFrameDelay  = 500 * time.Millisecond
	// pliInterval spaces keyframe requests: a keyframe takes a round trip
	// and some encoding to come, and asking again meanwhile only adds load.
	pliInterval = 500 * time.Millisecond
	// levelSmoothing weights the newest packet in a track's level, about a
	// 100 ms time constant at one packet per 20 ms.
	levelSmoothing = 0.2
)

// remoteTrack is one remote track's state and counters.
type remoteTrack struct {
	info         TrackInfo
	clockRate    uint32
	absCaptureID uint8
	audioLevelID uint8

	packets, bytes                   atomic.Uint64
	frames, framesDropped, keyframes atomic.Uint64
	plisSent                         atomic.Uint64
	firstFrame                       atomic.Pointer[time.Time] // see noteFrame
	lastPLI                          atomic.Int64              // UnixNano
	power                            atomic.Uint64             // float64 bits: smoothed mean square
	srMu                             sync.Mutex
	srNTP                            uint64
	srRTP                            uint32
	haveSR                           bool
}

// noteFrame counts a frame handed to the sinks and remembers when the
// first one was: at is the arrival of the packet that completed it.
func (rt *remoteTrack) noteFrame(at time.Time) {
	rt.frames.Add(1)
	if rt.firstFrame.Load() == nil {
		first := at // escapes only here, not on every frame
		rt.firstFrame.CompareAndSwap(nil, &first)
	}
}

// firstFrameAt is when the first frame reached the sinks; zero before.
func (rt *remoteTrack) firstFrameAt() time.Time {
	if at := rt.firstFrame.Load(); at != nil {
		return *at
	}
	return time.Time{}
}

// setLevel folds one packet's mean square into the smoothed level.
func (rt *remoteTrack) setLevel(meanSquare float64) {
	old := math.Float64frombits(rt.power.Load())
	rt.power.Store(math.Float64bits(old + levelSmoothing*(meanSquare-old)))
}

// level is the smoothed level in dBov.
func (rt *remoteTrack) level() float64 {
	return powerToDBov(math.Float64frombits(rt.power.Load()))
}

// captureTime is when the sender captured the media with RTP timestamp
// ts: from abs-capture-time when the sender sends it (we do), else from
// the latest sender report's NTP/RTP pair, else the arrival time.
func (rt *remoteTrack) captureTime(h *rtp.Header, ts uint32, arrival time.Time) time.Time {
	if rt.absCaptureID != 0 && h != nil {
		if ext := h.GetExtension(rt.absCaptureID); len(ext) >= 8 {
			var a rtp.AbsCaptureTimeExtension
			if a.Unmarshal(ext) == nil {
				return a.CaptureTime()
			}
		}
	}
	rt.srMu.Lock()
	defer rt.srMu.Unlock()
	if rt.haveSR && rt.clockRate > 0 {
		d := int64(int32(ts-rt.srRTP)) * int64(time.Second) / int64(rt.clockRate)
		return ntpTime(rt.srNTP).Add(time.Duration(d))
	}
	return arrival
}

// ntpTime converts a 64-bit NTP timestamp (RFC 5905) to time.
func ntpTime(ntp uint64) time.Time {
	const ntpToUnix = 2208988800
	secs := int64(ntp>>32) - ntpToUnix
	nanos := (ntp & 0xffffffff) * uint64(time.Second) >> 32
	return time.Unix(secs, int64(nanos))
}

// onTrack starts the goroutines for a new remote track. pion calls it in a
// goroutine of its own; it returns at once.
func (p *Peer) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	rt := p.addRemote(track, recv)
	if rt == nil {
		return
	}
	p.log.Info("remote track", "track", rt.info.ID, "stream", rt.info.StreamID, "mid", rt.info.MID, "kind", rt.info.Kind,
		"codec", rt.info.Codec, "ssrc", rt.info.SSRC)
	p.spawn(func(context.Context) { p.readReceiverRTCP(recv, rt) })
	switch track.Kind() {
	case webrtc.RTPCodecTypeVideo:
		p.spawn(func(ctx context.Context) { p.receiveVideo(ctx, track, rt) })
	case webrtc.RTPCodecTypeAudio:
		p.spawn(func(ctx context.Context) { p.receiveAudio(ctx, track, rt) })
	}
}

// receiverMID is the mid of recv's transceiver; pion does not link a
// receiver to its transceiver, so it is looked up.
func (p *Peer) receiverMID(recv *webrtc.RTPReceiver) string {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == recv {
			return tr.Mid()
		}
	}
	return ""
}

func (p *Peer) addRemote(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *remoteTrack {
	codec := track.Codec()
	rt := &remoteTrack{
		info: TrackInfo{
			ID:        track.ID(),
			StreamID:  track.StreamID(),
			MID:       p.receiverMID(recv),
			PeerLabel: p.opts.Label,
			Kind:      track.Kind().String(),
			Codec:     halCodec(codec.MimeType),
			SSRC:      uint32(track.SSRC()),
		},
		clockRate: codec.ClockRate,
	}
	for _, e := range recv.GetParameters().HeaderExtensions {
		switch e.URI {
		case absCaptureTimeURI:
			rt.absCaptureID = uint8(e.ID)
		case audioLevelURI:
			rt.audioLevelID = uint8(e.ID)
		}
	}
	rt.power.Store(math.Float64bits(0))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if rt.info.ID == "" || p.remote[rt.info.ID] != nil {
		rt.info.ID = fmt.Sprintf("%s-%d", rt.info.Kind, rt.info.SSRC)
	}
	rt.info.RequestKeyframe = func() error { return p.requestKeyframe(rt) }
	p.remote[rt.info.ID] = rt
	return rt
}

func (p *Peer) removeRemote(rt *remoteTrack) {
	p.mu.Lock()
	if p.remote[rt.info.ID] == rt {
		delete(p.remote, rt.info.ID)
	}
	p.mu.Unlock()
	if rt.info.Kind == webrtc.RTPCodecTypeVideo.String() {
		for _, s := range p.f.media.VideoSinks {
			s.RemoveTrack(rt.info)
		}
	} else {
		for _, s := range p.f.media.AudioSinks {
			s.RemoveTrack(rt.info)
		}
	}
}

// RequestKeyframe asks the sender of remote video track trackID for a
// keyframe (RTCP PLI); ErrUnknownTrack if there is no such video track.
// Requests closer than 500 ms to the previous one are dropped.
func (p *Peer) RequestKeyframe(trackID string) error {
	p.mu.Lock()
	rt := p.remote[trackID]
	p.mu.Unlock()
	if rt == nil || rt.info.Kind != webrtc.RTPCodecTypeVideo.String() {
		return fmt.Errorf("request keyframe for %q: %w", trackID, ErrUnknownTrack)
	}
	return p.requestKeyframe(rt)
}

func (p *Peer) requestKeyframe(rt *remoteTrack) error {
	now := p.now().UnixNano()
	last := rt.lastPLI.Load()
	if last != 0 && now-last < int64(pliInterval) || !rt.lastPLI.CompareAndSwap(last, now) {
		return nil
	}
	if err := p.pc.WriteRTCP(pliPacket(rt.info.SSRC)); err != nil {
		return fmt.Errorf("send PLI for track %s: %w", rt.info.ID, err)
	}
	rt.plisSent.Add(1)
	return nil
}

// receiverSSRC is the sender SSRC of the RTCP a receiving peer sends of its
// own: it sends no RTP, so it has no SSRC of its own (libwebrtc uses 1 too).
const receiverSSRC = 1

// pliPacket is a PLI for mediaSSRC as a compound packet led by a receiver
// report on mediaSSRC (RFC 3550 section 6.1; RFC 4585 section 3.1). A lone
// reduced-size PLI is not enough for Janus 1.1: it matches incoming RTCP to
// a stream by the SSRC a receiver report names, files a lone PLI under the
// first m-line (audio) and never forwards it to the publisher.
func pliPacket(mediaSSRC uint32) []rtcp.Packet {
	return []rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: receiverSSRC, Reports: []rtcp.ReceptionReport{{SSRC: mediaSSRC}}},
		&rtcp.PictureLossIndication{SenderSSRC: receiverSSRC, MediaSSRC: mediaSSRC},
	}
}

// readReceiverRTCP keeps the latest sender report (to map RTP timestamps to
// capture times) and notes that media is alive.
func (p *Peer) readReceiverRTCP(recv *webrtc.RTPReceiver, rt *remoteTrack) {
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			return
		}
		p.touchMedia()
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == rt.info.SSRC {
				rt.srMu.Lock()
				rt.srNTP, rt.srRTP, rt.haveSR = sr.NTPTime, sr.RTPTime, true
				rt.srMu.Unlock()
			}
		}
	}
}

// assembler turns a video track's RTP packets into whole frames, withheld
// from the first loss until the next keyframe.
type assembler struct {
	codec hal.Codec
	sb    *samplebuilder.SampleBuilder
	// needKeyframe is set at the start and after a loss: frames that refer
	// to lost ones are useless to any decoder.
	needKeyframe bool
	// padding counts padding-only packets pushed and not yet matched: the
	// sample builder reports them as dropped, but their loss costs nothing
	// (senders probe bandwidth with them).
	padding int
}

func newAssembler(codec hal.Codec, clockRate uint32) *assembler {
	d := depacketizerFor(codec)
	if d == nil {
		return nil
	}
	return &assembler{
		codec:        codec,
		sb:           samplebuilder.New(maxLatePackets, d, clockRate, samplebuilder.WithRTPHeaders(true), samplebuilder.WithMaxTimeDelay(maxFrameDelay)),
		needKeyframe: true,
	}
}

// push adds a packet and calls emit for every frame it completes that a
// decoder can use, and withheld for every one it cannot.
func (a *assembler) push(pkt *rtp.Packet, emit func(s *media.Sample, key bool), withheld func()) {
	if len(pkt.Payload) == 0 {
		a.padding++
	}
	a.sb.Push(pkt)
	for s := a.sb.Pop(); s != nil; s = a.sb.Pop() {
		dropped := int(s.PrevDroppedPackets)
		excused := min(dropped, a.padding)
		a.padding -= excused
		key := isKeyframe(a.codec, s.Data)
		if dropped > excused && !key {
			a.needKeyframe = true
		}
		if a.needKeyframe && !key {
			withheld()
			continue
		}
		a.needKeyframe = false
		emit(s, key)
	}
}

// receiveVideo reassembles frames and hands them to the video sinks.
func (p *Peer) receiveVideo(_ context.Context, track *webrtc.TrackRemote, rt *remoteTrack) {
	defer p.removeRemote(rt)
	asm := newAssembler(rt.info.Codec, rt.clockRate)
	if asm == nil {
		p.log.Warn("cannot reassemble this video codec; the track is not shown", "track", rt.info.ID, "codec", track.Codec().MimeType)
		p.drain(track, rt)
		return
	}
	var arrival time.Time
	emit := func(s *media.Sample, key bool) {
		var first *rtp.Header
		if len(s.RTPHeaders) > 0 {
			first = s.RTPHeaders[0]
		}
		frame := hal.EncodedFrame{
			Codec:      rt.info.Codec,
			Data:       s.Data,
			Keyframe:   key,
			CapturedAt: rt.captureTime(first, s.PacketTimestamp, arrival),
			Duration:   s.Duration,
		}
		rt.noteFrame(arrival)
		if key {
			rt.keyframes.Add(1)
		}
		for _, sink := range p.f.media.VideoSinks {
			if err := sink.WriteVideo(rt.info, frame); err != nil {
				p.log.Debug("video sink", "track", rt.info.ID, "err", err)
			}
		}
	}
	withheld := func() {
		rt.framesDropped.Add(1)
		if err := p.requestKeyframe(rt); err != nil {
			p.log.Debug("request keyframe", "err", err)
		}
	}
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		arrival = p.now()
		p.touchMediaAt(arrival)
		rt.packets.Add(1)
		rt.bytes.Add(uint64(pkt.MarshalSize()))
		asm.push(pkt, emit, withheld)
	}
}

// drain reads a track we cannot use, so its packets still count as media.
func (p *Peer) drain(track *webrtc.TrackRemote, rt *remoteTrack) {
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		p.touchMedia()
		rt.packets.Add(1)
		rt.bytes.Add(uint64(pkt.MarshalSize()))
	}
}

// receiveAudio hands packets to the audio sinks and decodes them for the
// level meter and the speaker mix.
func (p *Peer) receiveAudio(ctx context.Context, track *webrtc.TrackRemote, rt *remoteTrack) {
	defer p.removeRemote(rt)
	var dec hal.AudioDecoder
	if rt.info.Codec == hal.CodecOpus {
		var err error
		if dec, err = p.f.openAudioDecoder(ctx); err != nil {
			p.log.Warn("remote audio is not decoded: not heard, level from the sender's header only", "track", rt.info.ID, "err", err)
		}
	}
	if dec != nil {
		defer func() {
			if err := dec.Close(); err != nil {
				p.log.Debug("close audio decoder", "err", err)
			}
		}()
	}
	var in *mixInput
	if dec != nil && p.f.mixer != nil {
		in = p.f.mixer.add()
		defer p.f.mixer.remove(in)
	}
	warned := false
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		arrival := p.now()
		p.touchMediaAt(arrival)
		rt.packets.Add(1)
		rt.bytes.Add(uint64(pkt.MarshalSize()))
		if len(pkt.Payload) == 0 {
			continue
		}
		if dec == nil && rt.audioLevelID != 0 {
			if ext := pkt.GetExtension(rt.audioLevelID); ext != nil {
				var al rtp.AudioLevelExtension
				if al.Unmarshal(ext) == nil {
					db := -float64(al.Level)
					rt.setLevel(32767 * 32767 * math.Pow(10, db/10))
				}
			}
		}
		frame := hal.EncodedFrame{
			Codec:      rt.info.Codec,
			Data:       pkt.Payload,
			CapturedAt: rt.captureTime(&pkt.Header, pkt.Timestamp, arrival),
			Duration:   opusDuration(pkt.Payload),
		}
		rt.noteFrame(arrival)
		for _, sink := range p.f.media.AudioSinks {
			if err := sink.WriteAudio(rt.info, frame); err != nil {
				p.log.Debug("audio sink", "track", rt.info.ID, "err", err)
			}
		}
		if dec == nil {
			continue
		}
		pcm, err := dec.Decode(ctx, frame)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			rt.framesDropped.Add(1)
			if !warned {
				p.log.Warn("decode remote audio", "track", rt.info.ID, "err", err)
				warned = true
			}
			continue
		}
		var sum float64
		for _, s := range pcm {
			sum += float64(s) * float64(s)
		}
		if len(pcm) > 0 {
			rt.setLevel(sum / float64(len(pcm)))
		}
		if in != nil {
			in.push(pcm)
		}
	}
}
