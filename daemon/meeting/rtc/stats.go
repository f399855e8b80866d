package rtc

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/codecsel"
)

// BitrateWindow is the shortest span a bitrate is measured over.
const BitrateWindow = time.Second

// rateMeter turns byte counters into bit rates over windows of at least
// BitrateWindow. A reading within a window gets the last rate, so that
// several readers (status requests, the periodic stats event) do not
// shorten each other's windows.
type rateMeter struct {
	at      time.Time // start of the current window
	in, out uint64    // counters at its start
	rateIn  int
	rateOut int
}

func (m *rateMeter) update(now time.Time, in, out uint64) (rateIn, rateOut int) {
	if m.at.IsZero() || now.Sub(m.at) >= BitrateWindow {
		if !m.at.IsZero() {
			dt := now.Sub(m.at).Seconds()
			m.rateIn = int(float64(in-m.in) * 8 / dt)
			m.rateOut = int(float64(out-m.out) * 8 / dt)
		}
		m.at, m.in, m.out = now, in, out
	}
	return m.rateIn, m.rateOut
}

// PeerStats is a snapshot of one peer connection.
type PeerStats struct {
	Label string    `json:"label"`
	Role  string    `json:"role"` // "send" or "receive"
	At    time.Time `json:"at"`
	// State and ICEState are pion's connection and ICE connection states.
	State     string    `json:"state"`
	ICEState  string    `json:"iceState"`
	LastMedia time.Time `json:"lastMedia"`

	// BitrateIn and BitrateOut are RTP bits/s over the last window of at
	// least BitrateWindow (0 until one has passed).
	BitrateIn  int    `json:"bitrateIn"`
	BitrateOut int    `json:"bitrateOut"`
	BytesIn    uint64 `json:"bytesIn"`
	BytesOut   uint64 `json:"bytesOut"`
	// PacketsLost is the total of inbound losses (as we count them) and
	// outbound losses (as the remote reports them).
	PacketsLost int64 `json:"packetsLost"`
	// Jitter is the worst of the inbound streams' and the remote's reports.
	Jitter time.Duration `json:"jitter"`
	// RTT is the selected candidate pair's STUN round trip time.
	RTT time.Duration `json:"rtt"`
	// Candidates describes the path media takes, when connected.
	Candidates *CandidatePair `json:"candidates,omitempty"`

	// TargetBitrate is congestion control's estimate of what the path
	// carries (bits/s, audio and video); VideoBitrate what the video
	// encoder was set to.
	TargetBitrate int `json:"targetBitrate"`
	VideoBitrate  int `json:"videoBitrate"`
	// Encoder is the video encoder in use (its hal.Info ID, such as
	// "sw:video-encoder"), or empty.
	Encoder         string `json:"encoder"`
	EncoderHardware bool   `json:"encoderHardware"`

	// Video and Audio describe what we send (nil: not sending it).
	Video *SendStats `json:"video,omitempty"`
	Audio *SendStats `json:"audio,omitempty"`
	// Tracks are the remote tracks we receive.
	Tracks []TrackStats `json:"tracks,omitempty"`
}

// CandidatePair is the selected ICE candidate pair.
type CandidatePair struct {
	// LocalType and RemoteType are "host", "srflx", "prflx" or "relay".
	LocalType  string `json:"localType"`
	RemoteType string `json:"remoteType"`
	// Protocol is the transport to the remote: "udp" or "tcp".
	Protocol string `json:"protocol"`
	// RelayProtocol is how we reach our TURN server when LocalType is
	// "relay": "udp", "tcp" or "tls".
	RelayProtocol string `json:"relayProtocol,omitempty"`
	Local         string `json:"local"`
	Remote        string `json:"remote"`
}

// SendStats describes one stream we send.
type SendStats struct {
	Codec   hal.Codec `json:"codec"`
	SSRC    uint32    `json:"ssrc"`
	Encoder string    `json:"encoder"`
	// Stopped says why capture or encoding ended, if it did.
	Stopped string `json:"stopped,omitempty"`
	// Hardware says the encoder is a hardware one; Path says why this
	// encoder (a codecsel.Reason such as "hardware", "session-limit",
	// "hardware-error") and Fallbacks counts moves from hardware to software
	// in this stream. Path is empty for encoders that do not report one.
	Hardware  bool   `json:"hardware,omitempty"`
	Path      string `json:"path,omitempty"`
	Fallbacks int    `json:"fallbacks,omitempty"`
	// Source is the device captured (its hal.Info ID); SourceLost is set
	// while it is gone and the "camera unavailable" card is sent instead.
	Source     string `json:"source,omitempty"`
	SourceLost bool   `json:"sourceLost,omitempty"`
	// Muted is set while the room muted this stream (microphone muted,
	// camera off).
	Muted bool `json:"muted,omitempty"`

	PacketsSent uint64 `json:"packetsSent"`
	BytesSent   uint64 `json:"bytesSent"`
	// Frames: captured from the device, encoded, sent; FramesDropped are
	// frames the device dropped because we fell behind.
	FramesCaptured uint64 `json:"framesCaptured"`
	FramesEncoded  uint64 `json:"framesEncoded"`
	FramesSent     uint64 `json:"framesSent"`
	FramesDropped  uint64 `json:"framesDropped"`
	KeyframesSent  uint64 `json:"keyframesSent,omitempty"`
	PLIs           uint64 `json:"plis,omitempty"`
	FIRs           uint64 `json:"firs,omitempty"`
	NACKs          uint64 `json:"nacks,omitempty"`
	// Remote* are from the remote's latest receiver report.
	RemotePacketsLost  int64         `json:"remotePacketsLost"`
	RemoteFractionLost float64       `json:"remoteFractionLost"`
	RemoteJitter       time.Duration `json:"remoteJitter"`
	// REMB is the remote's latest bandwidth limit (bits/s), if it sent one.
	REMB int `json:"remb,omitempty"`

	// Width, Height and FPS are the capture mode (video).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	FPS    int `json:"fps,omitempty"`
	// Level is the microphone's level in dBov.
	Level float64 `json:"level,omitempty"`
}

// TrackStats describes one remote track.
type TrackStats struct {
	ID       string    `json:"id"`
	StreamID string    `json:"streamId"`
	MID      string    `json:"mid,omitempty"` // the transceiver's mid
	Kind     string    `json:"kind"`
	Codec    hal.Codec `json:"codec"`
	SSRC     uint32    `json:"ssrc"`

	PacketsReceived uint64        `json:"packetsReceived"`
	BytesReceived   uint64        `json:"bytesReceived"`
	PacketsLost     int64         `json:"packetsLost"`
	Jitter          time.Duration `json:"jitter"`
	NACKsSent       uint32        `json:"nacksSent"`
	PLIsSent        uint64        `json:"plisSent"`
	// Frames are reassembled video frames handed to the sinks (audio:
	// packets); FramesDropped were incomplete or undecodable.
	Frames            uint64 `json:"frames"`
	FramesDropped     uint64 `json:"framesDropped"`
	KeyframesReceived uint64 `json:"keyframesReceived,omitempty"`
	// FirstFrameAt is when the first frame was handed to the sinks, by the
	// Factory's clock: for video, the arrival of the packet that completed
	// the first whole frame a decoder can start from (a keyframe; frames
	// are reassembled here, not decoded); for audio, the first packet's
	// arrival. Zero until then.
	FirstFrameAt time.Time `json:"firstFrameAt,omitzero"`
	// AudioLevel is the smoothed level in dBov (SilenceDBov: silent), for
	// "who is speaking".
	AudioLevel float64 `json:"audioLevel,omitempty"`
}

// Stats returns a snapshot. Bit rates come from the byte counters over
// windows of at least BitrateWindow (see rateMeter).
func (p *Peer) Stats() PeerStats {
	now := p.now()
	st := PeerStats{
		Label:     p.opts.Label,
		Role:      "send",
		At:        now,
		State:     p.pc.ConnectionState().String(),
		ICEState:  p.pc.ICEConnectionState().String(),
		LastMedia: p.LastMedia(),
	}
	if p.bwe != nil && p.opts.Role == meeting.RoleSend {
		st.TargetBitrate = p.bwe.GetTargetBitrate()
	}
	if p.opts.Role == meeting.RoleReceive {
		st.Role = "receive"
	}

	report := p.pc.GetStats()
	inbound := map[uint32]webrtc.InboundRTPStreamStats{}
	candidates := map[string]webrtc.ICECandidateStats{}
	for _, s := range report {
		switch v := s.(type) {
		case webrtc.InboundRTPStreamStats:
			inbound[uint32(v.SSRC)] = v
		case webrtc.ICECandidateStats:
			candidates[v.ID] = v
		}
	}
	if pair, ok := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats(); ok {
		st.RTT = seconds(pair.CurrentRoundTripTime)
		local, remote := candidates[pair.LocalCandidateID], candidates[pair.RemoteCandidateID]
		cp := &CandidatePair{
			LocalType:  local.CandidateType.String(),
			RemoteType: remote.CandidateType.String(),
			Protocol:   strings.ToLower(local.Protocol),
			Local:      hostPort(local),
			Remote:     hostPort(remote),
		}
		if local.CandidateType == webrtc.ICECandidateTypeRelay {
			cp.RelayProtocol = strings.ToLower(local.RelayProtocol)
		}
		st.Candidates = cp
	}

	p.mu.Lock()
	remotes := make([]*remoteTrack, 0, len(p.remote))
	for _, rt := range p.remote {
		remotes = append(remotes, rt)
	}
	p.mu.Unlock()
	var bytesIn, bytesOut uint64
	for _, rt := range remotes {
		ts := TrackStats{
			ID:                rt.info.ID,
			StreamID:          rt.info.StreamID,
			MID:               rt.info.MID,
			Kind:              rt.info.Kind,
			Codec:             rt.info.Codec,
			SSRC:              rt.info.SSRC,
			PacketsReceived:   rt.packets.Load(),
			BytesReceived:     rt.bytes.Load(),
			PLIsSent:          rt.plisSent.Load(),
			Frames:            rt.frames.Load(),
			FramesDropped:     rt.framesDropped.Load(),
			KeyframesReceived: rt.keyframes.Load(),
			FirstFrameAt:      rt.firstFrameAt(),
		}
		if in, ok := inbound[rt.info.SSRC]; ok {
			ts.PacketsLost = int64(in.PacketsLost)
			ts.Jitter = seconds(in.Jitter)
			ts.NACKsSent = in.NACKCount
		}
		if rt.info.Kind == webrtc.RTPCodecTypeAudio.String() {
			ts.AudioLevel = rt.level()
		}
		bytesIn += ts.BytesReceived
		st.PacketsLost += ts.PacketsLost
		st.Jitter = max(st.Jitter, ts.Jitter)
		st.Tracks = append(st.Tracks, ts)
	}
	slices.SortFunc(st.Tracks, func(a, b TrackStats) int { return strings.Compare(a.ID, b.ID) })

	if v := p.video; v != nil {
		s := sendStats(v.track, &v.sendCounters)
		v.mu.Lock()
		s.Encoder, s.Hardware, s.Stopped = v.encInfo.ID, v.encHW, v.stopped
		if pr, ok := v.enc.(codecsel.PathReporter); ok {
			path := pr.CodecPath()
			s.Encoder, s.Hardware, s.Path, s.Fallbacks = path.Device, path.Hardware, string(path.Reason), path.Fallbacks
		}
		s.Source, s.SourceLost = v.source.ID, v.sourceLost
		s.Muted = p.f.cameraOff.Load()
		s.Width, s.Height, s.FPS = v.mode.Width, v.mode.Height, min(v.mode.FPS, p.f.cfg.FPS)
		if v.enc != nil {
			st.Encoder, st.EncoderHardware = s.Encoder, s.Hardware
		}
		v.mu.Unlock()
		st.VideoBitrate = int(v.bitrate.Load())
		st.Video = s
	}
	if a := p.audio; a != nil {
		s := sendStats(a.track, &a.sendCounters)
		a.mu.Lock()
		s.Encoder, s.Stopped = a.encInfo.ID, a.stopped
		s.Muted = p.f.micMuted.Load()
		a.mu.Unlock()
		s.Level = -float64(a.level.Load())
		st.Audio = s
	}
	for _, s := range []*SendStats{st.Video, st.Audio} {
		if s != nil {
			bytesOut += s.BytesSent
			st.PacketsLost += s.RemotePacketsLost
			st.Jitter = max(st.Jitter, s.RemoteJitter)
		}
	}
	st.BytesIn, st.BytesOut = bytesIn, bytesOut

	p.statsMu.Lock()
	st.BitrateIn, st.BitrateOut = p.rates.update(now, bytesIn, bytesOut)
	p.statsMu.Unlock()
	return st
}

func sendStats(t *localTrack, c *sendCounters) *SendStats {
	s := &SendStats{
		PacketsSent:    t.packets.Load(),
		BytesSent:      t.bytes.Load(),
		FramesCaptured: c.framesCaptured.Load(),
		FramesEncoded:  c.framesEncoded.Load(),
		FramesSent:     c.framesSent.Load(),
		FramesDropped:  c.framesDropped.Load(),
		KeyframesSent:  c.keyframes.Load(),
		PLIs:           c.plis.Load(),
		FIRs:           c.firs.Load(),
		NACKs:          c.nacks.Load(),
		REMB:           int(c.remb.Load()),
	}
	if b := t.binding(); b != nil {
		s.Codec, s.SSRC = b.halCodec, b.ssrc
		if r := c.report.Load(); r != nil && b.codec.ClockRate > 0 {
			s.RemotePacketsLost = int64(r.TotalLost)
			s.RemoteFractionLost = float64(r.FractionLost) / 256
			s.RemoteJitter = time.Duration(int64(r.Jitter) * int64(time.Second) / int64(b.codec.ClockRate))
		}
	}
	return s
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func hostPort(c webrtc.ICECandidateStats) string {
	if c.IP == "" {
		return ""
	}
	return net.JoinHostPort(c.IP, strconv.Itoa(int(c.Port)))
}

// AudioLevel is one remote audio track's level.
type AudioLevel struct {
	TrackID  string `json:"trackId"`
	StreamID string `json:"streamId"`
	// MID is the mid the track arrives on (TrackInfo.MID): how an SFU's
	// subscription names whose audio it is.
	MID string `json:"mid,omitempty"`
	// DBov is the smoothed level (about 100 ms), SilenceDBov when silent.
	DBov float64 `json:"dBov"`
}

// AudioLevels returns the levels of the remote audio tracks, loudest first:
// a cheap call (no pion stats) for a "who is speaking" display to poll.
func (p *Peer) AudioLevels() []AudioLevel {
	p.mu.Lock()
	var out []AudioLevel
	for _, rt := range p.remote {
		if rt.info.Kind == webrtc.RTPCodecTypeAudio.String() {
			out = append(out, AudioLevel{TrackID: rt.info.ID, StreamID: rt.info.StreamID, MID: rt.info.MID, DBov: rt.level()})
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b AudioLevel) int { return cmp.Compare(b.DBov, a.DBov) })
	return out
}
