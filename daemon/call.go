package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/daemon/meeting/whip"
	"github.com/atriumroom/atrium/hal"
)

// providers builds the meeting providers the configuration asks for.
func (s *System) providers(cfg *config.Config) ([]meeting.Provider, error) {
	display := cfg.Meeting.DisplayName
	if display == "" {
		display = cfg.Room.Name
	}
	domains := make(map[string]janus.DomainConfig, len(cfg.Meeting.Janus.Domains))
	for host, d := range cfg.Meeting.Janus.Domains {
		domains[host] = janus.DomainConfig{API: d.API}
	}
	jp, err := janus.New(janus.Config{DisplayName: display, Domains: domains}, s.newPeers,
		s.Deps.Logger.With("subsystem", "meeting", "provider", "janus"))
	if err != nil {
		return nil, fmt.Errorf("janus provider: %w", err)
	}
	wp, err := whip.New(whip.Config{}, s.newPeers, s.Deps.Logger.With("subsystem", "meeting", "provider", "whip"))
	if err != nil {
		return nil, fmt.Errorf("whip provider: %w", err)
	}
	return []meeting.Provider{jp, wp}, nil
}

// iceServers reads the configured STUN and TURN servers, with the TURN
// credentials from their files.
func iceServers(cfg []config.ICEServer) ([]meeting.ICEServer, error) {
	out := make([]meeting.ICEServer, 0, len(cfg))
	for i, s := range cfg {
		srv := meeting.ICEServer{URLs: s.URLs, Username: s.Username}
		if s.CredentialFile != "" {
			cred, err := readSecret(s.CredentialFile)
			if err != nil {
				return nil, fmt.Errorf("meeting.ice_servers[%d].credential_file: %w", i, err)
			}
			srv.Credential = cred
		}
		out = append(out, srv)
	}
	return out, nil
}

// newPeers gives a new meeting session its media layer, built from the
// devices present now: a camera plugged in since the last call is used.
func (s *System) newPeers(ctx context.Context) (meeting.PeerFactory, error) {
	sel := s.selector() // the admin settings may have changed the pins
	choice := sel.Choose()
	media := rtc.Media{Camera: choice.Camera, Cameras: sel, Microphone: choice.Microphone, Speaker: choice.Speaker}
	var encoders []hal.VideoEncoderFactory
	var decoders []hal.VideoDecoderFactory
	hw := s.Config.HAL.HardwareCodecs
	for _, d := range s.HAL.Devices() {
		switch d := d.(type) {
		case hal.VideoEncoderFactory:
			if hw || !isHardware(d.Codecs()) {
				encoders = append(encoders, d)
			}
		case hal.VideoDecoderFactory:
			if hw || !isHardware(d.Codecs()) {
				decoders = append(decoders, d)
			}
		case hal.AudioEncoderFactory:
			media.AudioEncoders = append(media.AudioEncoders, d)
		case hal.AudioDecoderFactory:
			media.AudioDecoders = append(media.AudioDecoders, d)
		}
	}
	// One selector for all calls, so hardware session counts and the
	// cooldown after a hardware failure carry over from call to call.
	s.Encoders.SetFactories(encoders)
	s.Decoders.SetFactories(decoders)
	media.VideoEncoders = []hal.VideoEncoderFactory{s.Encoders}
	media.VideoDecoders = []hal.VideoDecoderFactory{s.Decoders}
	media.VideoSinks = []rtc.VideoSink{s.Video}
	media.LocalVideoSinks = []rtc.VideoSink{s.Video}
	m := s.Config.Meeting
	f, err := rtc.New(rtc.Config{
		ICEServers:      s.currentICE(),
		RelayOnly:       m.RelayOnly,
		MaxVideoBitrate: m.MaxVideoBitrate,
		Width:           m.MaxWidth, Height: m.MaxHeight, FPS: m.MaxFPS,
		AudioBitrate: m.AudioBitrate,
		Logger:       s.Deps.Logger.With("subsystem", "media"),
		Now:          s.Deps.Now,
	}, media)
	if err != nil {
		return nil, fmt.Errorf("media for a new meeting: %w", err)
	}
	speaker := ""
	if choice.Speaker != nil {
		speaker = choice.Speaker.Info().ID
	}
	return s.call.track(f, speaker), nil
}

// isHardware says whether a codec device is hardware (all its codecs are).
func isHardware(caps []hal.CodecCaps) bool {
	return len(caps) > 0 && caps[0].Hardware
}

// callTracker remembers the peers of the current session, for status.
type callTracker struct {
	mu      sync.Mutex
	peers   []*rtc.Peer
	factory *rtc.Factory // the current (or last) session's, for its switches
	speaker string       // the ID of the speaker the session plays on
}

// track wraps a new session's factory; the previous session's peers are
// forgotten (they are closed by then).
func (c *callTracker) track(f *rtc.Factory, speaker string) meeting.PeerFactory {
	c.mu.Lock()
	c.peers, c.factory, c.speaker = nil, f, speaker
	c.mu.Unlock()
	return trackingFactory{f: f, c: c}
}

// lastMedia is when media last arrived on any connection of the session.
func (c *callTracker) lastMedia() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, p := range c.peers {
		if t := p.LastMedia(); t.After(last) {
			last = t
		}
	}
	return last
}

type trackingFactory struct {
	f *rtc.Factory
	c *callTracker
}

func (t trackingFactory) NewPeer(ctx context.Context, opts meeting.PeerOptions) (meeting.Peer, error) {
	p, err := t.f.NewPeer(ctx, opts)
	if err != nil {
		return nil, err
	}
	if rp, ok := p.(*rtc.Peer); ok {
		t.c.mu.Lock()
		t.c.peers = append(t.c.peers, rp)
		t.c.mu.Unlock()
	}
	return p, nil
}

// callStatus describes the meeting in progress, or nil outside one.
func (s *System) callStatus(m apiv1.Meeting) *apiv1.Call {
	switch m.State {
	case apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingReconnecting:
	default:
		return nil
	}
	var (
		parts []janus.Participant
		subs  []janus.SubscribedStream
	)
	if js, ok := s.Meeting.Session().(*janus.Session); ok {
		parts, subs = js.Participants(), js.SubscribedStreams()
	}
	s.call.mu.Lock()
	peers := append([]*rtc.Peer(nil), s.call.peers...)
	s.call.mu.Unlock()
	stats := make([]rtc.PeerStats, len(peers))
	for i, p := range peers {
		stats[i] = p.Stats()
	}
	call := buildCall(parts, subs, stats)
	s.call.mu.Lock()
	if f := s.call.factory; f != nil {
		call.MicrophoneMuted, call.CameraOff = f.MicrophoneMuted(), f.CameraOff()
	}
	call.Speaker = s.call.speaker
	s.call.mu.Unlock()
	return call
}

// ErrNotInCall refuses the media switches outside a meeting.
var ErrNotInCall = errors.New("not in a meeting")

// SetMedia implements api.Backend: the room's privacy switches for the
// meeting in progress. A new meeting starts unmuted with the camera on.
func (s *System) SetMedia(change apiv1.MediaChange) (apiv1.MediaState, error) {
	s.call.mu.Lock()
	f := s.call.factory
	s.call.mu.Unlock()
	if f == nil || !s.inCall() {
		return apiv1.MediaState{}, ErrNotInCall
	}
	if change.MicrophoneMuted != nil {
		f.SetMicrophoneMuted(*change.MicrophoneMuted)
	}
	if change.CameraOff != nil {
		f.SetCameraOff(*change.CameraOff)
	}
	st := apiv1.MediaState{MicrophoneMuted: f.MicrophoneMuted(), CameraOff: f.CameraOff()}
	s.Deps.Logger.Info("media switches", "microphone_muted", st.MicrophoneMuted, "camera_off", st.CameraOff)
	return st, nil
}

// buildCall assembles the call status: the received tracks are matched to
// participants by the subscription's mids, and the loudest participant
// above apiv1.SpeakingDBov is the one speaking.
func buildCall(parts []janus.Participant, subs []janus.SubscribedStream, peers []rtc.PeerStats) *apiv1.Call {
	call := &apiv1.Call{Participants: []apiv1.Participant{}, Peers: []apiv1.PeerStats{}}
	byMID := make(map[string]janus.ID, len(subs))
	for _, st := range subs {
		byMID[st.MID] = st.ParticipantID
	}
	levels := map[string]float64{} // participant id → loudest audio track
	for _, st := range peers {
		ps := convertPeerStats(st)
		if st.Role == "receive" { // the subscription: its mids are Janus's
			for i, t := range st.Tracks {
				id, ok := byMID[t.MID]
				if t.MID == "" || !ok {
					continue
				}
				ps.Recv[i].Participant = id.String()
				if l, seen := levels[id.String()]; t.Kind == "audio" && (!seen || t.AudioLevel > l) {
					levels[id.String()] = t.AudioLevel
				}
			}
		}
		call.Peers = append(call.Peers, ps)
	}
	speaker, loudest := -1, apiv1.SpeakingDBov
	for _, p := range parts {
		ap := apiv1.Participant{ID: p.ID.String(), Display: p.Display}
		for _, st := range p.Streams {
			ap.Audio = ap.Audio || st.Type == "audio" && !st.Disabled
			ap.Video = ap.Video || st.Type == "video" && !st.Disabled
		}
		if l, ok := levels[ap.ID]; ok {
			ap.AudioLevel = l
			if l > loudest {
				speaker, loudest = len(call.Participants), l
			}
		}
		call.Participants = append(call.Participants, ap)
	}
	if speaker >= 0 {
		call.Participants[speaker].Speaking = true
	}
	return call
}

func convertPeerStats(st rtc.PeerStats) apiv1.PeerStats {
	out := apiv1.PeerStats{
		Label: st.Label, State: st.State,
		BitrateIn: st.BitrateIn, BitrateOut: st.BitrateOut, TargetBitrate: st.TargetBitrate,
		PacketsLost: st.PacketsLost,
		JitterMs:    float64(st.Jitter) / float64(time.Millisecond),
		RTTMs:       float64(st.RTT) / float64(time.Millisecond),
		Encoder:     st.Encoder,
		Sent:        []apiv1.SentTrack{},
		Recv:        []apiv1.ReceivedTrack{},
	}
	if c := st.Candidates; c != nil {
		proto := c.Protocol
		if c.LocalType == "relay" && c.RelayProtocol != "" {
			proto = c.RelayProtocol
		}
		out.Path = c.LocalType + " " + proto
	}
	for kind, snd := range map[string]*rtc.SendStats{"video": st.Video, "audio": st.Audio} {
		if snd != nil {
			out.Sent = append(out.Sent, apiv1.SentTrack{
				Kind: kind, Codec: string(snd.Codec), PacketsSent: snd.PacketsSent, FramesSent: snd.FramesSent,
				Encoder: snd.Encoder, Hardware: snd.Hardware, EncoderPath: snd.Path, Fallbacks: snd.Fallbacks,
				Source: snd.Source, SourceLost: snd.SourceLost,
			})
		}
	}
	if len(out.Sent) == 2 && out.Sent[0].Kind == "audio" {
		out.Sent[0], out.Sent[1] = out.Sent[1], out.Sent[0] // video first, steadily
	}
	for _, t := range st.Tracks {
		out.Recv = append(out.Recv, apiv1.ReceivedTrack{
			ID: t.ID, Kind: t.Kind, Codec: string(t.Codec), PacketsReceived: t.PacketsReceived,
			Frames: t.Frames, FramesDropped: t.FramesDropped, AudioLevel: t.AudioLevel,
			FirstFrameAt: t.FirstFrameAt,
		})
	}
	return out
}

// Call stats go to the event stream every CallStatsInterval, and a summary
// to the log every CallLogInterval, while the room is in a meeting.
const (
	CallStatsInterval = 5 * time.Second
	CallLogInterval   = 30 * time.Second
)

func (s *System) reportCalls(ctx context.Context) {
	tick := time.NewTicker(CallStatsInterval)
	defer tick.Stop()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		call := s.callStatus(s.Meeting.State())
		if call == nil {
			continue
		}
		if err := s.Events.Publish(apiv1.EventCallStats, call); err != nil {
			s.Deps.Logger.Error("publish call stats", "err", err)
		}
		if now := s.Deps.Now(); now.Sub(lastLog) >= CallLogInterval {
			lastLog = now
			for _, p := range call.Peers {
				s.Deps.Logger.Info("call", "peer", p.Label, "state", p.State, "path", p.Path,
					"in_bps", p.BitrateIn, "out_bps", p.BitrateOut, "target_bps", p.TargetBitrate,
					"lost", p.PacketsLost, "rtt_ms", p.RTTMs, "jitter_ms", p.JitterMs, "encoder", p.Encoder,
					"participants", len(call.Participants))
			}
		}
	}
}

// readSecret reads a credential file, refusing one others can read.
func readSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %04o lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

// joinContext bounds a join by the setup timeout, under roomd's own life
// rather than the caller's: a kiosk page that reloads must not abort it,
// shutting down must.
func (s *System) joinContext() (context.Context, context.CancelFunc) {
	s.mu.Lock()
	base := s.runCtx
	s.mu.Unlock()
	if base == nil {
		base = context.Background()
	}
	return context.WithTimeout(base, s.Config.Meeting.SetupTimeout.Duration)
}
