package videofeed

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting/rtc"
)

// Track kinds, in track objects and TrackMeta.Kind.
const (
	// KindCamera is a participant's camera: the default.
	KindCamera = "camera"
	// KindScreen is shared content (a screen, a window, slides).
	KindScreen = "screen"
	// KindSelf is the room's own video (rtc.LocalPeerLabel), for the
	// self-view.
	KindSelf = "self"
)

// Timing of the Feed's own messages and calls.
const (
	// ViewDebounce is how long the Feed gathers changes of what the
	// clients show before it calls Options.OnView: a page that re-lays out
	// its tiles sends a few views in a row, and each OnView may make the
	// media server renegotiate.
	ViewDebounce = 300 * time.Millisecond
	// LevelsInterval is how often a levels message goes to the clients.
	LevelsInterval = 250 * time.Millisecond
)

// Options are a Feed's collaborators; every field may be zero.
type Options struct {
	// Logger gets the Feed's logs; nil discards them.
	Logger *slog.Logger
	// Describe says whose a track is and what it shows. It is called,
	// never under the Feed's lock, when a track first sends a frame and
	// again at each of its keyframes, from the media goroutine calling
	// WriteVideo: it must be quick and must not block. A track whose
	// description changes (a mid the media server gave to another
	// participant) is removed and added again under a new number. nil, or
	// an empty Participant or Kind, takes the default: the track's stream
	// ID, no display name, KindCamera. Local tracks (rtc.LocalPeerLabel)
	// are always KindSelf.
	Describe func(rtc.TrackInfo) TrackMeta
	// OnView gets what the clients show, after ViewDebounce, whenever it
	// changed: every video track the Feed knows (the self track too, and
	// in track number order) with the largest size any client shows it
	// at, or 0x0 for a track no client shows. Tracks that never sent a
	// frame are not known yet, and a track added after a viewing client's
	// last view message is left out until that client sent another:
	// receive those as before (a page answers a track-added with a view). A track
	// paused upstream must stay a track (no RemoveTrack), so that a page
	// can ask for it again. nil means no
	// preference (no client connected, or none sent a view message): then
	// the media layer should receive everything. It is called from the
	// Feed's own goroutine, one call at a time, never under its lock; it
	// may block briefly (a renegotiation) and later changes wait for it.
	// Each new aggregate is also logged ("video view", Debug), with or
	// without OnView.
	OnView func([]View)
	// Levels returns the current audio level of each participant (the
	// participant IDs of the track objects) in dBov, the loudest of their
	// audio tracks. It is called every LevelsInterval while a client is
	// connected, from the Feed's own goroutine, and must be quick. nil
	// sends no levels messages.
	Levels func() map[string]float64
}

// TrackMeta describes a track for the clients.
type TrackMeta struct {
	// Participant is the meeting's participant ID (a Janus feed ID).
	Participant string
	// Display is the participant's name, if known.
	Display string
	// Kind is KindCamera, KindScreen or KindSelf.
	Kind string
}

// View is one video track as the clients show it.
type View struct {
	Track rtc.TrackInfo
	// Width and Height are the largest size, in device pixels, a client
	// shows the track at; both 0 when no client shows it.
	Width, Height int
}

// describe returns info's TrackMeta with the defaults filled in. It must
// not be called under f.mu.
func (f *Feed) describe(info rtc.TrackInfo) TrackMeta {
	var m TrackMeta
	if f.opts.Describe != nil {
		m = f.opts.Describe(info)
	}
	if m.Participant == "" {
		m.Participant = info.StreamID
	}
	if m.Kind == "" {
		m.Kind = KindCamera
	}
	if info.PeerLabel == rtc.LocalPeerLabel {
		m.Kind = KindSelf
	}
	return m
}

// clock is the time the control loop runs on; tests replace it.
type clock interface {
	NewTicker(d time.Duration) timer
	NewTimer(d time.Duration) timer
}

// timer is a time.Ticker or a time.Timer.
type timer interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) NewTicker(d time.Duration) timer { return realTicker{time.NewTicker(d)} }
func (realClock) NewTimer(d time.Duration) timer  { return realTimer{time.NewTimer(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop()               { t.t.Stop() }

// kickControl wakes the control loop: the clients or what they show
// changed.
func (f *Feed) kickControl() {
	select {
	case f.control <- struct{}{}:
	default:
	}
}

// controlLoop sends the levels messages while clients are connected and
// calls OnView when what they show changed. It runs until Close.
func (f *Feed) controlLoop() {
	var (
		levels     timer // running while clients are connected
		debounce   timer // running while a view change waits
		levelsC    <-chan time.Time
		debounceC  <-chan time.Time
		delivered  []View
		haveCalled bool // OnView was called at least once
	)
	defer func() {
		if levels != nil {
			levels.Stop()
		}
		if debounce != nil {
			debounce.Stop()
		}
	}()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.control:
			f.mu.Lock()
			clients, changed := len(f.clients) > 0, f.viewChanged
			f.viewChanged = false
			f.mu.Unlock()
			switch {
			case clients && levels == nil && f.opts.Levels != nil:
				levels = f.clock.NewTicker(LevelsInterval)
				levelsC = levels.C()
			case !clients && levels != nil:
				levels.Stop()
				levels, levelsC = nil, nil
			}
			if changed && debounce == nil {
				debounce = f.clock.NewTimer(ViewDebounce)
				debounceC = debounce.C()
			}
		case <-levelsC:
			f.sendLevels()
		case <-debounceC:
			debounce.Stop()
			debounce, debounceC = nil, nil
			views, summary := f.views()
			if haveCalled && viewsEqual(views, delivered) {
				continue
			}
			haveCalled, delivered = true, views
			f.log.Debug("video view", "tracks", summary)
			if f.opts.OnView != nil {
				f.opts.OnView(views)
			}
		}
	}
}

// sendLevels queues a levels message for every client.
func (f *Feed) sendLevels() {
	raw := f.opts.Levels()
	levels := make(map[string]float64, len(raw))
	for id, db := range raw {
		if math.IsNaN(db) || math.IsInf(db, 0) {
			continue // JSON has no such numbers
		}
		levels[id] = math.Round(db*10) / 10
	}
	msg := mustJSON(levelsMessage{Type: typeLevels, Levels: levels})
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.clients {
		f.pushLocked(c, outMessage{data: msg})
	}
}

// views aggregates what the clients show; nil when none sent a view. The
// summary, for the log, reads "3:1280x720 5:0x0" or "all".
func (f *Feed) views() ([]View, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	viewing := false
	for c := range f.clients {
		viewing = viewing || c.view != nil
	}
	if !viewing {
		return nil, "all"
	}
	out := make([]View, 0, len(f.byNum))
	var summary strings.Builder
tracks:
	for _, n := range slices.Sorted(maps.Keys(f.byNum)) {
		t := f.byNum[n]
		v := View{Track: t.info}
		for c := range f.clients {
			if c.view != nil && c.viewAdds < t.added {
				// Added since this client's last view: it has not said
				// yet whether it shows the track, so it is left as it is
				// rather than paused for a moment.
				continue tracks
			}
			if s, ok := c.view[n]; ok {
				v.Width, v.Height = max(v.Width, s.Width), max(v.Height, s.Height)
			}
		}
		out = append(out, v)
		if summary.Len() > 0 {
			summary.WriteByte(' ')
		}
		fmt.Fprintf(&summary, "%d:%dx%d", n, v.Width, v.Height)
	}
	return out, summary.String()
}

// viewsEqual compares two aggregates; the TrackInfo's closure is not
// compared, only which track it is.
func viewsEqual(a, b []View) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if trackKey(a[i].Track) != trackKey(b[i].Track) || a[i].Track.Codec != b[i].Track.Codec ||
			a[i].Width != b[i].Width || a[i].Height != b[i].Height {
			return false
		}
	}
	return true
}

// viewChangedLocked notes that the aggregate may have changed.
func (f *Feed) viewChangedLocked() {
	f.viewChanged = true
	f.kickControl()
}
