package janus

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// Subscribing only to what is shown, at the size it is shown.
//
// The kiosk reports, per received video stream, the size it is shown at
// (0x0: not shown). On the multistream subscription, a stream not shown is
// paused (configure, per stream, "send": false) and resumed with "send":
// true; Janus then asks the publisher for a keyframe (a PLI, "Restoring
// video for subscriber" in janus_videoroom.c), so that the resumed stream
// can be decoded. For a simulcast publisher, the layer follows the shown
// height: "substream" 0 up to smallHeight, 1 up to mediumHeight, 2 above,
// never a layer above the size it is shown at; Janus switches at the next
// keyframe of the new layer and asks for one. Only what changed is sent.
//
// Budget: the layers are assumed to cost about what browsers send for a
// 720p camera (see layerBitrate). When the shown streams would sum to more
// than VideoBudget, the smallest tiles step down first: in rounds from the
// smallest shown area to the largest, each simulcast tile drops one step
// of the ladder (substream 2 → 1 → 0, then at substream 0 the temporal
// layer 2 → 1 → 0: fewer frames a second), until the estimate fits or
// nothing can drop further. Streams without simulcast cannot drop; they
// count at nonSimulcastBitrate.

// VideoBudget is the video downlink the selection aims to stay under,
// in bits per second.
const VideoBudget = 4_000_000

// The shown heights, in device pixels, up to which the small (0) and
// medium (1) simulcast layers are enough; above, the full one (2).
const (
	smallHeight  = 200
	mediumHeight = 400
)

// nonSimulcastBitrate is what a stream without simulcast is assumed to
// cost, whatever its size.
const nonSimulcastBitrate = 1_500_000

// The ladder of simulcast steps, from the cheapest: each is a substream
// and a temporal layer. The size picks one of the substream 0, 1 or 2 at
// full frame rate (smallStep, mediumStep, fullStep); the budget may step
// further down.
const (
	smallStep  = 2
	mediumStep = 3
	fullStep   = 4
)

// step is one step of the ladder.
type step struct {
	substream, temporal int
	bitrate             int // estimated, bits per second
}

// ladder returns step i (0 ≤ i ≤ fullStep): the estimates are those of a
// 720p camera in three layers, 1280x720, 640x360 and 320x180, with three
// temporal layers each.
func ladder(i int) step {
	switch i {
	case 0:
		return step{0, 0, 60_000}
	case 1:
		return step{0, 1, 100_000}
	case smallStep:
		return step{0, 2, 150_000}
	case mediumStep:
		return step{1, 2, 500_000}
	default:
		return step{2, 2, 1_500_000}
	}
}

// stepFor is the ladder step that fits a stream shown height pixels high.
func stepFor(height int) int {
	switch {
	case height <= smallHeight:
		return smallStep
	case height <= mediumHeight:
		return mediumStep
	default:
		return fullStep
	}
}

// subVideo is one video stream of the subscription.
type subVideo struct {
	feed    ID
	feedMID string
	// simulcast as the subscription's layout says; the publisher's own
	// list is checked too (simulcastLocked).
	simulcast bool
}

// videoSetting is what Janus forwards of one subscription video stream.
// A new stream is forwarded whole: send, substream 2, temporal 2.
type videoSetting struct {
	send bool
	step int
}

var defaultSetting = videoSetting{send: true, step: fullStep}

// noteVideoLocked follows the subscription's video streams after a new
// layout. A mid that now carries another publisher's stream starts over
// from Janus's own report (or its default); streams gone are forgotten.
func (s *Session) noteVideoLocked(streams []stream) {
	seen := map[string]bool{}
	for _, st := range streams {
		if st.Type != "video" || st.FeedID == nil || st.MID == "" || (st.Active != nil && !*st.Active) {
			continue
		}
		seen[st.MID] = true
		v := subVideo{feed: *st.FeedID, feedMID: st.FeedMID, simulcast: bool(st.Simulcast)}
		old, known := s.subVideo[st.MID]
		s.subVideo[st.MID] = v
		set, ok := s.video[st.MID]
		if !known || old.feed != v.feed || old.feedMID != v.feedMID || !ok {
			set = defaultSetting
		}
		if st.Send != nil {
			set.send = *st.Send
		}
		s.video[st.MID] = set
	}
	for mid := range s.subVideo {
		if !seen[mid] {
			delete(s.subVideo, mid)
			delete(s.video, mid)
		}
	}
}

// simulcastLocked reports whether the stream on mid has simulcast layers.
func (s *Session) simulcastLocked(v subVideo) bool {
	return v.simulcast || s.publishedLocked(v.feed, v.feedMID).Simulcast
}

// selectRequest is one SelectVideo call waiting for the loop.
type selectRequest struct {
	ctx   context.Context
	wants []meeting.VideoWant
	reply chan<- error // buffered, so the loop never waits on it
}

// SelectVideo implements meeting.VideoSelector on the subscription: see
// the comment at the top of video.go for what it asks of Janus. Wants for
// other peers than the subscriber, for streams that are not video, or that
// do not exist (any more, or yet: wants are not kept for later), are
// ignored; streams not named keep their setting, and a stream that appears
// later starts whole. A nil or empty list forwards every stream whole
// again.
//
// The loop does the work between two events, so it never races a
// renegotiation. A refused configure is returned, wrapped, and does not
// end the session; the streams keep what they had.
func (s *Session) SelectVideo(ctx context.Context, wants []meeting.VideoWant) error {
	if err := meeting.ValidateVideoWants(wants); err != nil {
		return fmt.Errorf("select video: %w", err)
	}
	reply := make(chan error, 1)
	select {
	case s.selectReq <- selectRequest{ctx: ctx, wants: wants, reply: reply}:
	case <-s.loopDone:
		return fmt.Errorf("select video: %w: the session is over", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("select video: %w", ctx.Err())
	}
	return <-reply
}

// videoChange is one stream's entry in a configure.
type videoChange struct {
	mid       string
	simulcast bool
	from, to  videoSetting
}

// selectRequested runs a SelectVideo request on the loop, within both the
// loop's ctx and the caller's.
func (s *Session) selectRequested(ctx context.Context, req selectRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(req.ctx, cancel)
	defer stop()

	if s.sub == 0 || !s.subJoined {
		return nil // nothing received yet: nothing to select
	}
	changes := s.planVideo(req.wants)
	if len(changes) == 0 {
		return nil
	}
	streams := make([]map[string]any, 0, len(changes))
	for _, c := range changes {
		entry := map[string]any{"mid": c.mid}
		if c.to.send != c.from.send {
			entry["send"] = c.to.send
		}
		if c.simulcast && c.to.send && c.to.step != c.from.step {
			from, to := ladder(c.from.step), ladder(c.to.step)
			if to.substream != from.substream {
				entry["substream"] = to.substream
			}
			if to.temporal != from.temporal {
				entry["temporal"] = to.temporal
			}
		}
		streams = append(streams, entry)
	}
	_, _, err := s.conn.message(ctx, "configure", s.sub, map[string]any{"request": "configure", "streams": streams}, nil)
	if err != nil {
		s.logger.Warn("video selection refused", "err", err)
		return fmt.Errorf("select video: %w", err)
	}
	for _, c := range changes {
		to := c.to
		if !to.send {
			to.step = c.from.step // a paused stream keeps its layer
		}
		s.video[c.mid] = to
	}
	s.logger.Info("video selection", "changes", describeChanges(changes))
	return nil
}

// planVideo works out what each named stream should get and returns the
// streams whose setting changes, by mid.
func (s *Session) planVideo(wants []meeting.VideoWant) []videoChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	type shown struct {
		mid       string
		area      int
		simulcast bool
	}
	want := map[string]videoSetting{}
	simulcast := map[string]bool{}
	for mid, v := range s.subVideo {
		simulcast[mid] = s.simulcastLocked(v)
	}
	if len(wants) == 0 {
		for mid := range s.subVideo {
			want[mid] = defaultSetting
		}
	}
	var tiles []shown
	for _, w := range wants {
		if w.PeerLabel != "subscriber" {
			s.logger.Debug("video want for a peer that receives nothing", "peer", w.PeerLabel, "mid", w.MID)
			continue
		}
		if _, ok := s.subVideo[w.MID]; !ok {
			s.logger.Debug("video want for no current video stream", "mid", w.MID)
			continue
		}
		if !w.Shown() {
			want[w.MID] = videoSetting{send: false}
			continue
		}
		want[w.MID] = videoSetting{send: true, step: stepFor(w.Height)}
		tiles = append(tiles, shown{mid: w.MID, area: w.Width * w.Height, simulcast: simulcast[w.MID]})
	}

	// The budget: smallest tiles first, one step per round.
	total := func() int {
		sum := 0
		for _, t := range tiles {
			if t.simulcast {
				sum += ladder(want[t.mid].step).bitrate
			} else {
				sum += nonSimulcastBitrate
			}
		}
		return sum
	}
	slices.SortFunc(tiles, func(a, b shown) int {
		return cmp.Or(cmp.Compare(a.area, b.area), cmp.Compare(a.mid, b.mid))
	})
	for over := total() > VideoBudget; over; {
		stepped := false
		for _, t := range tiles {
			w := want[t.mid]
			if !t.simulcast || w.step == 0 {
				continue
			}
			w.step--
			want[t.mid] = w
			stepped = true
			if over = total() > VideoBudget; !over {
				break
			}
		}
		if !stepped {
			s.logger.Info("video selection over budget", "estimate", total(), "budget", VideoBudget)
			break
		}
	}

	var changes []videoChange
	for _, mid := range slices.Sorted(maps.Keys(want)) {
		to, from := want[mid], s.video[mid]
		if !simulcast[mid] {
			// Without layers only send matters.
			to.step, from.step = fullStep, fullStep
		}
		if to.send == from.send && (!to.send || to.step == from.step) {
			continue
		}
		changes = append(changes, videoChange{mid: mid, simulcast: simulcast[mid], from: from, to: to})
	}
	return changes
}

// describeChanges is a short log form: "3:pause 5:resume 7:substream=0/2".
func describeChanges(changes []videoChange) string {
	parts := make([]string, len(changes))
	for i, c := range changes {
		var b strings.Builder
		b.WriteString(c.mid + ":")
		switch {
		case !c.to.send:
			b.WriteString("pause")
		case !c.from.send:
			b.WriteString("resume")
		}
		if c.to.send && c.simulcast {
			st := ladder(c.to.step)
			if !c.from.send {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "substream=%d/temporal=%d", st.substream, st.temporal)
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, " ")
}
