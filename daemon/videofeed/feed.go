package videofeed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/hal"
)

// Limits.
const (
	// MaxClients is how many WebSocket clients are served at once.
	MaxClients = 8
	// QueueFrames and QueueBytes bound each client's queue of frames
	// waiting to be written: about two seconds of one 30 fps track, or
	// half a second of four.
	QueueFrames = 64
	QueueBytes  = 8 << 20
	// MaxClientMessage is the longest message a client may send.
	MaxClientMessage = 4096
	// KeyframeInterval is the shortest time between two keyframe requests
	// for one track.
	KeyframeInterval = 500 * time.Millisecond
	// WriteTimeout is how long one message may wait to be written before
	// its client is disconnected.
	WriteTimeout = 10 * time.Second
	// maxQueuedControl bounds control messages queued for a client that
	// does not read: one that falls this far behind is disconnected.
	maxQueuedControl = 1024
)

// ErrClosed is returned by WriteVideo after Close.
var ErrClosed = errors.New("video feed closed")

// Feed is an rtc.VideoSink that serves the frames it receives to WebSocket
// clients. Its methods may be called concurrently.
type Feed struct {
	log   *slog.Logger
	opts  Options
	clock clock
	// Limits, from the constants above; tests shrink them.
	maxClients       int
	queueFrames      int
	queueBytes       int
	keyframeInterval time.Duration
	writeTimeout     time.Duration

	// ctx ends in Close; it ends the request loop and every handler.
	ctx    context.Context
	cancel context.CancelFunc
	// kick wakes the request loop when a keyframe is wanted.
	kick chan struct{}
	// control wakes the control loop when clients come or go or what they
	// show changed.
	control chan struct{}
	// wg counts the request and control loops and the handlers.
	wg sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	tracks  map[string]*track // by trackKey
	byNum   map[uint16]*track
	lastNum uint16
	slots   int                  // handlers running, attached or not
	clients map[*client]struct{} // attached: they receive messages
	lastID  uint64
	// viewChanged: what the clients show may have changed since the
	// control loop last looked.
	viewChanged bool
	// adds counts the tracks added, to tell which ones a client's last
	// view message knew of.
	adds uint64
}

var _ rtc.VideoSink = (*Feed)(nil)

// track is a remote video track known to the Feed.
type track struct {
	n    uint16
	info rtc.TrackInfo
	meta TrackMeta
	// added is Feed.adds after the track was added.
	added uint64
	// want: some client waits for a keyframe that was not requested yet.
	want bool
	// lastRequest is when RequestKeyframe was last called.
	lastRequest time.Time
}

func (t *track) json() trackJSON {
	return trackJSON{
		N: t.n, ID: t.info.ID, Participant: t.meta.Participant, Display: t.meta.Display, Kind: t.meta.Kind,
		Peer: t.info.PeerLabel, Codec: string(t.info.Codec),
	}
}

// trackKey names a track across peers.
func trackKey(info rtc.TrackInfo) string { return info.PeerLabel + "\x00" + info.ID }

// New returns a Feed with no clients and no Options but the logger, which
// may be nil. Close ends its goroutines.
func New(logger *slog.Logger) *Feed { return NewWithOptions(Options{Logger: logger}) }

// NewWithOptions returns a Feed with no clients. Close ends its
// goroutines.
func NewWithOptions(opts Options) *Feed {
	return newFeed(opts, realClock{})
}

func newFeed(opts Options, clk clock) *Feed {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Feed{
		log:              logger,
		opts:             opts,
		clock:            clk,
		control:          make(chan struct{}, 1),
		maxClients:       MaxClients,
		queueFrames:      QueueFrames,
		queueBytes:       QueueBytes,
		keyframeInterval: KeyframeInterval,
		writeTimeout:     WriteTimeout,
		ctx:              ctx,
		cancel:           cancel,
		kick:             make(chan struct{}, 1),
		tracks:           map[string]*track{},
		byNum:            map[uint16]*track{},
		clients:          map[*client]struct{}{},
	}
	f.wg.Go(f.requestLoop)
	f.wg.Go(f.controlLoop)
	return f
}

// WriteVideo implements rtc.VideoSink: it queues the frame for every
// client that wants it, or drops it for those that cannot take it now. It
// never waits for the network. After Close it returns ErrClosed.
func (f *Feed) WriteVideo(info rtc.TrackInfo, frame hal.EncodedFrame) error {
	// A new track, and each keyframe, get described (outside the lock: the
	// description comes from the signaling's state).
	f.mu.Lock()
	t := f.tracks[trackKey(info)]
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var meta *TrackMeta
	if t == nil || frame.Keyframe {
		m := f.describe(info)
		meta = &m
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	t, err := f.trackLocked(info, meta)
	if err != nil {
		return err
	}
	// The latest closure: a renegotiated peer may hand a new one.
	t.info.RequestKeyframe = info.RequestKeyframe
	if frame.Keyframe {
		t.want = false
	}
	var msg []byte
	for c := range f.clients {
		if !c.subscribedLocked(t.n) {
			continue
		}
		size := HeaderSize + len(frame.Data)
		if c.waitKey[t.n] && !frame.Keyframe {
			c.dropped.Add(1)
			// Ask again (the limit spaces the requests) unless the client is
			// still behind, which would make keyframes for nothing.
			if f.roomLocked(c, size) {
				f.wantLocked(t, c)
			}
			continue
		}
		if !f.roomLocked(c, size) {
			c.dropped.Add(1)
			if !c.waitKey[t.n] {
				c.waitKey[t.n] = true
				f.log.Debug("video client fell behind; waiting for a keyframe", "client", c.id, "track", t.n)
				f.wantLocked(t, c)
			}
			continue
		}
		delete(c.waitKey, t.n)
		if msg == nil {
			msg = EncodeFrame(t.n, frame)
		}
		f.pushLocked(c, outMessage{frame: true, data: msg})
	}
	return nil
}

// trackLocked returns the track for info, adding it (and telling the
// clients) if it is new. meta, if not nil, is the track's description
// now: a known track whose description changed is added again.
func (f *Feed) trackLocked(info rtc.TrackInfo, meta *TrackMeta) (*track, error) {
	key := trackKey(info)
	if t := f.tracks[key]; t != nil {
		if t.info.Codec == info.Codec && (meta == nil || *meta == t.meta) {
			return t, nil
		}
		// Same track, another codec: to a decoder that is a new track. And
		// another participant's media on it: a new tile.
		f.removeLocked(key, t)
	}
	if meta == nil {
		// Removed and written again between the two locks of WriteVideo:
		// the next keyframe describes it.
		m := TrackMeta{Participant: info.StreamID, Kind: KindCamera}
		if info.PeerLabel == rtc.LocalPeerLabel {
			m.Kind = KindSelf
		}
		meta = &m
	}
	n, ok := f.numberLocked()
	if !ok {
		return nil, fmt.Errorf("add video track %s: all %d track numbers in use", info.ID, len(f.byNum))
	}
	f.adds++
	t := &track{n: n, info: info, meta: *meta, added: f.adds}
	f.tracks[key] = t
	f.byNum[n] = t
	f.log.Debug("video track added", "track", n, "id", info.ID, "participant", meta.Participant, "kind", meta.Kind,
		"peer", info.PeerLabel, "codec", info.Codec)
	msg := mustJSON(trackAddedMessage{Type: typeTrackAdded, trackJSON: t.json()})
	for c := range f.clients {
		f.pushLocked(c, outMessage{data: msg})
		if c.subscribedLocked(n) {
			c.waitKey[n] = true
		}
	}
	f.viewChangedLocked()
	return t, nil
}

// numberLocked picks the next free track number, going round 1-65535 so
// that numbers are reused as late as possible.
func (f *Feed) numberLocked() (uint16, bool) {
	for range 1 << 16 {
		f.lastNum++
		if f.lastNum == 0 {
			continue
		}
		if f.byNum[f.lastNum] == nil {
			return f.lastNum, true
		}
	}
	return 0, false
}

// RemoveTrack implements rtc.VideoSink: clients learn that the track ended.
func (f *Feed) RemoveTrack(info rtc.TrackInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := trackKey(info)
	if t := f.tracks[key]; t != nil {
		f.removeLocked(key, t)
	}
}

func (f *Feed) removeLocked(key string, t *track) {
	delete(f.tracks, key)
	delete(f.byNum, t.n)
	f.log.Debug("video track removed", "track", t.n, "id", t.info.ID)
	msg := mustJSON(trackRemovedMessage{Type: typeTrackRemoved, N: t.n, ID: t.info.ID})
	for c := range f.clients {
		delete(c.waitKey, t.n)
		delete(c.subs, t.n)
		delete(c.view, t.n)
		f.pushLocked(c, outMessage{data: msg})
	}
	f.viewChangedLocked()
}

// wantLocked asks for a keyframe of t on behalf of c.
func (f *Feed) wantLocked(t *track, c *client) {
	if t.want {
		return
	}
	t.want = true
	if c != nil {
		c.keyframeRequests.Add(1)
	}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// requestLoop calls RequestKeyframe for the tracks that want a keyframe,
// at most once per track per keyframeInterval. It runs until Close, so
// that no I/O happens on the media goroutines that call WriteVideo.
func (f *Feed) requestLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	type request struct {
		n  uint16
		fn func() error
	}
	var due []request
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.kick:
		case <-timer.C:
		}
		now := time.Now()
		var next time.Duration
		due = due[:0]
		f.mu.Lock()
		for _, t := range f.tracks {
			if !t.want {
				continue
			}
			if wait := t.lastRequest.Add(f.keyframeInterval).Sub(now); wait > 0 {
				if next == 0 || wait < next {
					next = wait
				}
				continue
			}
			t.want = false
			t.lastRequest = now
			if t.info.RequestKeyframe != nil {
				due = append(due, request{t.n, t.info.RequestKeyframe})
			}
		}
		f.mu.Unlock()
		for _, r := range due {
			if err := r.fn(); err != nil {
				f.log.Debug("request keyframe", "track", r.n, "err", err)
			}
		}
		if next > 0 {
			timer.Reset(next)
		}
	}
}

// Close disconnects every client (status 1001, going away; each gets a
// second to answer) and returns when all the Feed's goroutines have ended.
// WriteVideo fails afterwards and the handler refuses clients with 503.
// Close always returns nil.
func (f *Feed) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	return nil
}

// ClientStats describes one connected client.
type ClientStats struct {
	// ID numbers the clients from 1 in the order they connected.
	ID         uint64
	RemoteAddr string
	Connected  time.Time
	// Tracks lists the subscribed track numbers; nil: every track.
	Tracks []uint16
	// View lists the sizes of the client's last view message, by track
	// number; nil when it sent none (or a subscribe since).
	View []TrackView
	// FramesSent and BytesSent count the frame messages written to the
	// client, headers included.
	FramesSent uint64
	BytesSent  uint64
	// FramesDropped counts the frames the client did not get: its queue
	// was full, or it waited for a keyframe.
	FramesDropped uint64
	// KeyframeRequests counts the keyframes asked for on the client's
	// behalf: its keyframe messages, and the requests made when it
	// connected, subscribed or fell behind (not those that joined a
	// request another client made first).
	KeyframeRequests uint64
	// Queued is how many messages wait to be written.
	Queued int
}

// TrackView is the size a client shows a track at.
type TrackView struct {
	N             uint16
	Width, Height int
}

// Stats describes the connected clients, in the order they connected.
func (f *Feed) Stats() []ClientStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	stats := make([]ClientStats, 0, len(f.clients))
	for c := range f.clients {
		s := ClientStats{
			ID:               c.id,
			RemoteAddr:       c.remote,
			Connected:        c.connected,
			FramesSent:       c.sent.Load(),
			BytesSent:        c.bytesSent.Load(),
			FramesDropped:    c.dropped.Load(),
			KeyframeRequests: c.keyframeRequests.Load(),
			Queued:           c.queue.len(),
		}
		if c.subs != nil {
			s.Tracks = make([]uint16, 0, len(c.subs))
			for n := range c.subs {
				s.Tracks = append(s.Tracks, n)
			}
			slices.Sort(s.Tracks)
		}
		if c.view != nil {
			s.View = make([]TrackView, 0, len(c.view))
			for n, v := range c.view {
				s.View = append(s.View, TrackView{N: n, Width: v.Width, Height: v.Height})
			}
			slices.SortFunc(s.View, func(a, b TrackView) int { return cmp.Compare(a.N, b.N) })
		}
		stats = append(stats, s)
	}
	slices.SortFunc(stats, func(a, b ClientStats) int { return cmp.Compare(a.ID, b.ID) })
	return stats
}

// mustJSON marshals the package's own message types, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("videofeed: marshal %T: %v", v, err))
	}
	return b
}

// client is one WebSocket connection's state.
type client struct {
	id        uint64
	remote    string
	connected time.Time
	// notify wakes the writer when a message was queued.
	notify chan struct{}
	// cancel ends the connection (set when it is attached).
	cancel context.CancelFunc

	// Guarded by Feed.mu.
	queue queue
	// subs lists the subscribed tracks; nil: every track.
	subs map[uint16]bool
	// waitKey lists the subscribed tracks whose deltas the client must not
	// get until a keyframe.
	waitKey map[uint16]bool
	// view is the last view message's sizes; nil before one (or after a
	// subscribe): the client has no say in what the media layer receives.
	view map[uint16]viewSize
	// viewAdds is Feed.adds when the client sent its last view: tracks
	// added later are unknown to that view.
	viewAdds uint64

	sent, bytesSent, dropped, keyframeRequests atomic.Uint64
}

func (c *client) subscribedLocked(n uint16) bool {
	return c.subs == nil || c.subs[n]
}

// roomLocked reports whether a frame message of size bytes fits c's queue.
// A frame fits an empty queue whatever its size.
func (f *Feed) roomLocked(c *client, size int) bool {
	return c.queue.frames < f.queueFrames && (c.queue.frames == 0 || c.queue.bytes+size <= f.queueBytes)
}

// pushLocked queues a message for c and wakes its writer.
func (f *Feed) pushLocked(c *client, m outMessage) {
	c.queue.push(m)
	if c.queue.controls > maxQueuedControl {
		f.log.Warn("video client stopped reading; disconnecting it", "client", c.id)
		c.cancel()
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// outMessage is a message queued for a client.
type outMessage struct {
	// frame: a binary frame message, counted against the queue's bounds;
	// else a text control message.
	frame bool
	data  []byte
}

// queue is a FIFO of messages: a ring that grows as needed.
type queue struct {
	buf           []outMessage
	head, n       int
	frames, bytes int
	controls      int
}

func (q *queue) len() int { return q.n }

func (q *queue) push(m outMessage) {
	if q.n == len(q.buf) {
		buf := make([]outMessage, max(16, 2*len(q.buf)))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
	if m.frame {
		q.frames++
		q.bytes += len(m.data)
	} else {
		q.controls++
	}
}

func (q *queue) pop() (outMessage, bool) {
	if q.n == 0 {
		return outMessage{}, false
	}
	m := q.buf[q.head]
	q.buf[q.head] = outMessage{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if m.frame {
		q.frames--
		q.bytes -= len(m.data)
	} else {
		q.controls--
	}
	return m, true
}
