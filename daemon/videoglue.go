package daemon

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/daemon/videofeed"
)

// selectVideoTimeout bounds one selection (a configure on the
// subscription); the feed's next change waits for it.
const selectVideoTimeout = 5 * time.Second

// videoFeedOptions connects the kiosk's video feed to the meeting: whose
// each track is, what the kiosk shows, and who is speaking.
func (s *System) videoFeedOptions() videofeed.Options {
	return videofeed.Options{
		Logger:   s.Deps.Logger.With("subsystem", "videofeed"),
		Describe: s.describeTrack,
		OnView:   s.showVideo,
		Levels:   s.audioLevels,
	}
}

// describeTrack names a received track's participant and kind from the
// Janus subscription: its mid carries one publisher's stream, whose
// description says whether it is a screen.
func (s *System) describeTrack(info rtc.TrackInfo) videofeed.TrackMeta {
	if s.Meeting == nil || info.MID == "" {
		return videofeed.TrackMeta{}
	}
	js, ok := s.Meeting.Session().(*janus.Session)
	if !ok {
		return videofeed.TrackMeta{}
	}
	for _, st := range js.SubscribedStreams() {
		if st.MID != info.MID {
			continue
		}
		meta := videofeed.TrackMeta{Participant: st.ParticipantID.String(), Display: st.Display, Kind: videofeed.KindCamera}
		if isScreenShare(st.Description) {
			meta.Kind = videofeed.KindScreen
		}
		return meta
	}
	return videofeed.TrackMeta{}
}

// isScreenShare says whether a publisher's stream description names
// shared content rather than a camera.
func isScreenShare(description string) bool {
	d := strings.ToLower(description)
	for _, w := range []string{"screen", "share", "content", "presentation", "slides", "desktop"} {
		if strings.Contains(d, w) {
			return true
		}
	}
	return false
}

// showVideo passes what the kiosk shows to the meeting, so that the server
// forwards only that, at that size. nil (no kiosk showing anything) asks
// for everything.
func (s *System) showVideo(views []videofeed.View) {
	if s.Meeting == nil {
		return
	}
	var wants []meeting.VideoWant
	if views != nil {
		wants = make([]meeting.VideoWant, 0, len(views))
		for _, v := range views {
			// The self-view is the room's own video: nothing to select.
			if v.Track.PeerLabel == rtc.LocalPeerLabel || v.Track.MID == "" {
				continue
			}
			wants = append(wants, meeting.VideoWant{PeerLabel: v.Track.PeerLabel, MID: v.Track.MID, Width: v.Width, Height: v.Height})
		}
	}
	ctx, cancel := context.WithTimeout(s.baseContext(), selectVideoTimeout)
	defer cancel()
	if err := s.Meeting.SelectVideo(ctx, wants); err != nil {
		s.Deps.Logger.Warn("select the video the kiosk shows", "err", err)
	}
}

// baseContext is roomd's own context while it runs.
func (s *System) baseContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil {
		return context.Background()
	}
	return s.runCtx
}

// audioLevels gives each participant's loudest received audio track, for
// the kiosk's active speaker: by the Janus subscription's mids, or by
// stream ID for other providers (the feed's default participant).
func (s *System) audioLevels() map[string]float64 {
	byMID := map[string]string{}
	if s.Meeting != nil {
		if js, ok := s.Meeting.Session().(*janus.Session); ok {
			for _, st := range js.SubscribedStreams() {
				byMID[st.MID] = st.ParticipantID.String()
			}
		}
	}
	s.call.mu.Lock()
	peers := slices.Clone(s.call.peers)
	s.call.mu.Unlock()
	out := map[string]float64{}
	for _, p := range peers {
		for _, l := range p.AudioLevels() {
			id := l.StreamID
			if len(byMID) > 0 {
				var ok bool
				if id, ok = byMID[l.MID]; !ok {
					continue
				}
			}
			if old, seen := out[id]; !seen || l.DBov > old {
				out[id] = l.DBov
			}
		}
	}
	return out
}
