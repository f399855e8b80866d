package janus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
)

// abortTimeout bounds the clean-up of a join that failed half-way: the
// caller is waiting for the error.
const abortTimeout = 2 * time.Second

// restartWindow is how long an ICE restart has to bring a failed media
// connection back: a peer that is not connected again by then, or fails
// again within it, ends the session.
const restartWindow = 15 * time.Second

// Participant is another publisher or attendee in the room.
type Participant struct {
	ID      ID
	Display string
	// Streams are what the participant publishes; empty for an attendee
	// that only listens.
	Streams []Stream
	// Subscribed says the room receives this participant's streams.
	Subscribed bool
}

// Stream is one published stream.
type Stream struct {
	// Type is "audio", "video" or "data".
	Type string
	// MID is the stream's mid in the publisher's SDP.
	MID string
	// Codec is the negotiated codec ("opus", "vp8", ...); empty when the
	// stream is disabled.
	Codec string
	// Description is the publisher's label for it ("camera"), if any.
	Description string
	// Disabled means the publisher stopped sending it for now.
	Disabled bool
	// Simulcast means the publisher sends it in several layers (VP8 or
	// H.264 simulcast), so a subscription can pick a smaller one.
	Simulcast bool
}

// SubscribedStream is one stream of the room's subscription, as Janus
// lists it with each subscriber offer: which participant's media arrives
// on which mid of the subscriber peer.
type SubscribedStream struct {
	// MID is the stream's mid in the subscription (Janus's offer), not
	// the publisher's.
	MID string
	// ParticipantID is the publisher (feed) it carries.
	ParticipantID ID
	// Display is the publisher's display name, as Janus sends it.
	Display string
	// Type is "audio", "video" or "data".
	Type string
	// Description is the publisher's label for the stream ("camera",
	// "screen"), if it gave one.
	Description string
}

// Session is one joined VideoRoom. It implements meeting.Session.
//
// One goroutine (the loop) owns the signaling after Join: it handles
// Janus's events in order, renegotiates the subscription and watches the
// peers. Leave stops the loop first and then leaves on its own, so that
// the two never talk to Janus at once.
type Session struct {
	logger *slog.Logger
	conn   *conn
	target Target
	peers  meeting.PeerFactory

	room      ID
	self      ID
	privateID *ID
	pub       uint64 // publisher handle
	pubPeer   meeting.Peer
	pubState  <-chan meeting.PeerState

	// Owned by the loop, and by teardown once the loop has ended.
	sub        uint64 // subscriber handle
	subJoined  bool
	subPeer    meeting.Peer
	subState   <-chan meeting.PeerState
	subscribed map[ID]bool
	subMIDs    map[string]ID   // subscription mid → the feed it carries
	connected  map[string]bool // peer label → last Connected seen
	restarts   map[string]*iceRestart
	// subVideo is the subscription's video streams by mid, and video
	// what Janus has been told to forward of each (see video.go).
	subVideo map[string]subVideo
	video    map[string]videoSetting
	// restartCheck fires at the earliest pending restart's deadline; nil
	// when none is pending.
	restartCheck <-chan time.Time
	restartTimer *time.Timer

	// restartReq hands RestartICE's requests to the loop, which alone
	// touches the peers and the subscription.
	restartReq chan restartRequest
	// selectReq hands SelectVideo's requests to the loop.
	selectReq chan selectRequest

	stopLoop context.CancelFunc
	loopDone chan struct{}

	mu           sync.Mutex
	participants []Participant
	substreams   []SubscribedStream // the active subscription layout
	err          error
	done         chan struct{}

	leaveOnce sync.Once
	leaveErr  error
}

var (
	_ meeting.Session       = (*Session)(nil)
	_ meeting.Restarter     = (*Session)(nil)
	_ meeting.VideoSelector = (*Session)(nil)
)

// join runs the whole join on c: session, publisher handle, join,
// publish. On failure it cleans up and closes c.
func join(ctx context.Context, c *conn, t Target, cfg Config, peers PeersFunc, logger *slog.Logger) (_ *Session, err error) {
	s := &Session{
		logger:     logger,
		conn:       c,
		target:     t,
		room:       t.Room,
		subscribed: map[ID]bool{},
		subMIDs:    map[string]ID{},
		subVideo:   map[string]subVideo{},
		video:      map[string]videoSetting{},
		selectReq:  make(chan selectRequest),
		connected:  map[string]bool{},
		restarts:   map[string]*iceRestart{},
		restartReq: make(chan restartRequest),
		loopDone:   make(chan struct{}),
		done:       make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.abort(ctx)
		}
	}()

	if _, err := c.create(ctx); err != nil {
		return nil, err
	}
	c.keepAlive(cfg.KeepAlive)
	if s.pub, err = c.attach(ctx, videoRoom); err != nil {
		return nil, err
	}
	joined, err := s.joinRoom(ctx)
	if err != nil {
		return nil, err
	}

	// The media layer comes after the room has let us in: a wrong PIN
	// should not open the camera.
	if s.peers, err = peers(ctx); err != nil {
		return nil, fmt.Errorf("media for the meeting: %w", err)
	}
	if err := s.publish(ctx); err != nil {
		return nil, err
	}

	s.mu.Lock()
	for _, a := range joined.Attendees {
		s.upsert(a.ID, a.Display, nil, false)
	}
	feeds := s.addPublishersLocked(joined.Publishers)
	s.mu.Unlock()

	loopCtx, stop := context.WithCancel(context.Background())
	s.stopLoop = stop
	go s.run(loopCtx, feeds)
	s.logger.Info("joined janus room", "participant", s.self.String(), "description", joined.Description, "publishers", len(joined.Publishers))
	return s, nil
}

// joinRoom joins as publisher (the room's participant; media follows with
// publish).
func (s *Session) joinRoom(ctx context.Context) (*roomEvent, error) {
	body := map[string]any{
		"request": "join",
		"ptype":   "publisher",
		"room":    s.room,
		"display": s.target.Display,
	}
	if s.target.PIN != "" {
		body["pin"] = s.target.PIN
	}
	_, ev, err := s.conn.message(ctx, "join", s.pub, body, nil)
	var jerr *Error
	if errors.As(err, &jerr) && jerr.Code == 430 && !s.room.IsString() && strings.Contains(jerr.Reason, "string") {
		// The server runs with string_ids: the same digits, as a string.
		s.room = StringID(s.room.String())
		body["room"] = s.room
		_, ev, err = s.conn.message(ctx, "join", s.pub, body, nil)
	}
	if err != nil {
		return nil, err
	}
	if ev.VideoRoom != "joined" || ev.ID == nil || ev.ID.IsZero() {
		return nil, fmt.Errorf("join: %w: %q without a participant id", ErrProtocol, ev.VideoRoom)
	}
	s.self, s.privateID = *ev.ID, ev.PrivateID
	return ev, nil
}

// publish sends the room's media: our offer, Janus's answer.
func (s *Session) publish(ctx context.Context) error {
	peer, err := s.peers.NewPeer(ctx, meeting.PeerOptions{Role: meeting.RoleSend, Label: "publisher"})
	if err != nil {
		return fmt.Errorf("create publisher peer: %w", err)
	}
	s.pubPeer, s.pubState = peer, peer.State()
	offer, err := peer.Offer(ctx)
	if err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	// Janus 1.x takes what to publish from the SDP; the old audio and
	// video flags are deprecated.
	m, _, err := s.conn.message(ctx, "publish", s.pub, map[string]any{"request": "publish"}, sdp("offer", offer))
	if err != nil {
		return err
	}
	if m.JSEP == nil || m.JSEP.Type != "answer" || m.JSEP.SDP == "" {
		return fmt.Errorf("publish: %w: no SDP answer", ErrProtocol)
	}
	if err := peer.Accept(ctx, m.JSEP.SDP); err != nil {
		return fmt.Errorf("publisher answer: %w", err)
	}
	return nil
}

func sdp(typ, s string) *jsep {
	no := false
	return &jsep{Type: typ, SDP: s, Trickle: &no}
}

// run is the loop: subscribe to who is there, then follow events.
func (s *Session) run(ctx context.Context, feeds []ID) {
	defer close(s.loopDone)
	err := s.subscribe(ctx, feeds)
	if err == nil {
		err = s.serve(ctx)
	}
	if ctx.Err() != nil {
		return // Leave took over
	}
	s.finish(err)
}

func (s *Session) serve(ctx context.Context) error {
	defer func() {
		if s.restartTimer != nil {
			s.restartTimer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.conn.done:
			// Events that came before the end explain it better ("room
			// destroyed" rather than "connection closed").
			if err := s.drain(ctx); err != nil {
				return err
			}
			return s.conn.Err()
		case m := <-s.conn.events:
			if err := s.handle(ctx, m); err != nil {
				return err
			}
		case st, ok := <-s.pubState:
			if !ok {
				s.pubState = nil
				continue
			}
			if err := s.peerState(ctx, "publisher", st); err != nil {
				return err
			}
		case st, ok := <-s.subState:
			if !ok {
				s.subState = nil
				continue
			}
			if err := s.peerState(ctx, "subscriber", st); err != nil {
				return err
			}
		case <-s.restartCheck:
			if err := s.checkRestarts(); err != nil {
				return err
			}
		case req := <-s.restartReq:
			req.reply <- s.restartRequested(ctx, req.ctx)
		case req := <-s.selectReq:
			req.reply <- s.selectRequested(ctx, req)
		}
	}
}

// drain handles the events already queued.
func (s *Session) drain(ctx context.Context) error {
	for {
		select {
		case m := <-s.conn.events:
			if err := s.handle(ctx, m); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// iceRestart is one peer's last ICE restart.
type iceRestart struct {
	at time.Time
	// changed: a state other than Failed came since the restart, so a
	// Failed now is a new one, not a stale one from before it.
	changed bool
	// pending: not connected again since the restart.
	pending bool
}

// peerState follows a peer's state. The first failure of a peer restarts
// its ICE; a failure within restartWindow of that restart ends the
// session.
func (s *Session) peerState(ctx context.Context, label string, st meeting.PeerState) error {
	r := s.restarts[label]
	if st.Failed {
		switch {
		case r != nil && time.Since(r.at) < restartWindow && !r.changed:
			s.logger.Debug("media connection failure from before the ICE restart", "peer", label)
			return nil
		case r != nil && time.Since(r.at) < restartWindow:
			return fmt.Errorf("%w: %s: ICE restart failed: %s", ErrMediaFailed, label, st.Reason)
		}
		s.connected[label] = false
		return s.restartICE(ctx, label, st.Reason)
	}
	if r != nil {
		r.changed = true
		if st.Connected && r.pending {
			r.pending = false
			s.logger.Info("ICE restart reconnected", "peer", label, "after", time.Since(r.at).Round(time.Millisecond).String())
		}
	}
	if st.Connected != s.connected[label] {
		s.connected[label] = st.Connected
		s.logger.Info("media connection", "peer", label, "connected", st.Connected)
	}
	return nil
}

// restartICE restarts a failed peer's ICE: the publisher offers fresh
// credentials in a configure (Janus restarts ICE when an offer's
// credentials change); for the subscriber, a configure with restart asks
// Janus to offer fresh ones, and the answer goes back with start.
func (s *Session) restartICE(ctx context.Context, label, reason string) error {
	s.logger.Warn("media connection failed; restarting ICE", "peer", label, "reason", reason)
	now := time.Now()
	s.restarts[label] = &iceRestart{at: now, pending: true}
	s.armRestartCheck(now.Add(restartWindow))
	var err error
	if label == "publisher" {
		err = s.restartPublisher(ctx)
	} else {
		err = s.restartSubscriber(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %s; ICE restart failed: %w", ErrMediaFailed, label, reason, err)
	}
	s.logger.Info("ICE restart negotiated", "peer", label)
	return nil
}

func (s *Session) restartPublisher(ctx context.Context) error {
	offer, err := s.pubPeer.RestartICE(ctx)
	if err != nil {
		return fmt.Errorf("publisher ICE restart offer: %w", err)
	}
	m, _, err := s.conn.message(ctx, "configure", s.pub, map[string]any{"request": "configure"}, sdp("offer", offer))
	if err != nil {
		return err
	}
	if m.JSEP == nil || m.JSEP.Type != "answer" || m.JSEP.SDP == "" {
		return fmt.Errorf("configure: %w: no SDP answer", ErrProtocol)
	}
	if err := s.pubPeer.Accept(ctx, m.JSEP.SDP); err != nil {
		return fmt.Errorf("publisher answer: %w", err)
	}
	return nil
}

func (s *Session) restartSubscriber(ctx context.Context) error {
	if s.subPeer == nil || !s.subJoined {
		return fmt.Errorf("subscription: %w: no subscription to restart", ErrProtocol)
	}
	m, ev, err := s.conn.message(ctx, "configure", s.sub, map[string]any{"request": "configure", "restart": true}, nil)
	if err != nil {
		return err
	}
	s.noteStreams(ev)
	// Janus 1.1.2 replies "event" with configured "ok" and its offer
	// (jsep restart true); TestRealJanusRestartICE checks it.
	s.logger.Debug("janus subscriber restart reply", "videoroom", ev.VideoRoom, "configured", ev.Configured, "offer", m.JSEP != nil)
	if m.JSEP == nil {
		// Janus postponed the offer: it comes as an event.
		return nil
	}
	return s.answer(ctx, m.JSEP)
}

// restartRequest is one RestartICE call waiting for the loop.
type restartRequest struct {
	ctx   context.Context
	reply chan<- error // buffered, so the loop never waits on it
}

// RestartICE implements meeting.Restarter: it restarts ICE on the
// publisher and, once there is one, the subscription, the same way as
// after a failure (see restartICE), and returns when Janus has accepted
// both. The loop does the work between two events, so a restart waits for
// the subscription to be set up after Join.
//
// A refused restart is returned and does not end the session; the peers'
// own failure handling still applies. A requested restart is not counted
// as the one restart a failed peer gets.
func (s *Session) RestartICE(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.restartReq <- restartRequest{ctx: ctx, reply: reply}:
	case <-s.loopDone:
		return fmt.Errorf("restart ICE: %w: the session is over", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("restart ICE: %w", ctx.Err())
	}
	// The loop replies even when ctx ends, as the restart it runs is
	// bounded by ctx too.
	return <-reply
}

// restartRequested runs a RestartICE request on the loop, within both the
// loop's ctx and the caller's reqCtx.
func (s *Session) restartRequested(ctx, reqCtx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(reqCtx, cancel)
	defer stop()
	s.logger.Info("restarting ICE on request")
	var errs []error
	if err := s.restartPublisher(ctx); err != nil {
		errs = append(errs, fmt.Errorf("publisher: %w", err))
	}
	if s.subPeer != nil && s.subJoined {
		if err := s.restartSubscriber(ctx); err != nil {
			errs = append(errs, fmt.Errorf("subscriber: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if reqCtx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, reqCtx.Err())
		}
		s.logger.Warn("ICE restart on request failed", "err", err)
		return fmt.Errorf("restart ICE: %w", err)
	}
	s.logger.Info("ICE restart on request negotiated")
	return nil
}

// armRestartCheck makes restartCheck fire by deadline at the latest.
func (s *Session) armRestartCheck(deadline time.Time) {
	if s.restartCheck != nil {
		return // an earlier deadline is pending; checkRestarts re-arms
	}
	s.restartTimer = time.NewTimer(time.Until(deadline))
	s.restartCheck = s.restartTimer.C
}

// checkRestarts ends the session if a restart has not reconnected its
// peer within restartWindow, and re-arms for the next pending one.
func (s *Session) checkRestarts() error {
	s.restartCheck, s.restartTimer = nil, nil
	var next time.Time
	for _, label := range []string{"publisher", "subscriber"} {
		r := s.restarts[label]
		if r == nil || !r.pending {
			continue
		}
		deadline := r.at.Add(restartWindow)
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %s: ICE restart failed: not connected again within %s", ErrMediaFailed, label, restartWindow)
		}
		if next.IsZero() || deadline.Before(next) {
			next = deadline
		}
	}
	if !next.IsZero() {
		s.armRestartCheck(next)
	}
	return nil
}

func (s *Session) label(handle uint64) string {
	switch {
	case handle == 0:
		return ""
	case handle == s.pub:
		return "publisher"
	case handle == s.sub:
		return "subscriber"
	}
	return ""
}

// handle acts on one asynchronous message; an error ends the session.
func (s *Session) handle(ctx context.Context, m *message) error {
	label := s.label(m.Sender)
	if label == "" {
		s.logger.Debug("janus message for no handle of ours", "janus", m.Janus, "sender", m.Sender)
		return nil
	}
	switch m.Janus {
	case "event":
		if label == "publisher" {
			return s.onRoomEvent(ctx, m)
		}
		return s.onSubscriberEvent(ctx, m)
	case "webrtcup":
		s.logger.Info("janus media up", "handle", label)
	case "media":
		s.logger.Info("janus media", "handle", label, "type", m.Type, "mid", m.MID, "receiving", m.Receiving != nil && *m.Receiving)
	case "slowlink":
		// A hint, not a failure: Janus sees NACKs pile up. The media layer's
		// congestion control should already be reacting.
		var lost int64
		if m.Lost != nil {
			lost = *m.Lost
		}
		s.logger.Warn("janus reports a slow link", "handle", label, "media", m.Media, "mid", m.MID,
			"uplink", m.Uplink != nil && *m.Uplink, "lost", lost)
	case "hangup":
		return fmt.Errorf("%w: %s: %s", ErrHangup, label, m.Reason)
	case "detached":
		return fmt.Errorf("%w: janus detached the %s handle", ErrHangup, label)
	default:
		// trickle (the SDP already holds Janus's candidates) and anything
		// newer than this code.
		s.logger.Debug("janus message ignored", "janus", m.Janus, "handle", label)
	}
	return nil
}

// onRoomEvent handles the VideoRoom's events on the publisher handle:
// who comes, publishes, unpublishes and goes, and the room's end.
func (s *Session) onRoomEvent(ctx context.Context, m *message) error {
	ev, err := m.roomEvent()
	if err != nil {
		return err
	}
	switch ev.VideoRoom {
	case "destroyed":
		return fmt.Errorf("%w: room %s", ErrRoomDestroyed, s.room)
	case "talking", "stopped-talking":
		return nil
	}
	if ev.ErrorCode != 0 {
		s.logger.Warn("janus videoroom error", "code", ev.ErrorCode, "error", ev.Error)
		return nil
	}
	if ev.Leaving != nil {
		if ev.Leaving.isOK() || *ev.Leaving == s.self {
			if ev.Reason != "" {
				return fmt.Errorf("%w (%s)", ErrKicked, ev.Reason)
			}
			return ErrKicked
		}
		if err := s.unsubscribe(ctx, *ev.Leaving); err != nil {
			return err
		}
		s.remove(*ev.Leaving)
	}
	if ev.Kicked != nil {
		if *ev.Kicked == s.self {
			return ErrKicked
		}
		if err := s.unsubscribe(ctx, *ev.Kicked); err != nil {
			return err
		}
		s.remove(*ev.Kicked)
	}
	if ev.Unpublished != nil && !ev.Unpublished.isOK() && *ev.Unpublished != s.self {
		if err := s.unsubscribe(ctx, *ev.Unpublished); err != nil {
			return err
		}
		s.unpublished(*ev.Unpublished)
	}
	if ev.Joining != nil {
		s.mu.Lock()
		s.upsert(ev.Joining.ID, ev.Joining.Display, nil, false)
		s.mu.Unlock()
	}
	if len(ev.Publishers) > 0 {
		s.mu.Lock()
		feeds := s.addPublishersLocked(ev.Publishers)
		s.mu.Unlock()
		return s.subscribe(ctx, feeds)
	}
	return nil
}

// onSubscriberEvent handles the subscriber handle's events: offers Janus
// sends outside a reply (after an "updating" postponed a renegotiation).
func (s *Session) onSubscriberEvent(ctx context.Context, m *message) error {
	ev, err := m.roomEvent()
	if err != nil {
		return err
	}
	switch {
	case ev.VideoRoom == "destroyed":
		return fmt.Errorf("%w: room %s", ErrRoomDestroyed, s.room)
	case ev.ErrorCode != 0:
		s.logger.Warn("janus videoroom error on the subscription", "code", ev.ErrorCode, "error", ev.Error)
		return nil
	}
	s.noteStreams(ev)
	if m.JSEP != nil {
		return s.answer(ctx, m.JSEP)
	}
	s.logger.Debug("janus subscriber event", "videoroom", ev.VideoRoom)
	return nil
}

// subscribe adds feeds to the subscription, joining as subscriber first if
// need be. Janus refusing a feed (it left meanwhile) is logged; anything
// else ends the session.
func (s *Session) subscribe(ctx context.Context, feeds []ID) error {
	var want []ID
	for _, f := range feeds {
		if f != s.self && !s.subscribed[f] && !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	if len(want) == 0 {
		return nil
	}
	err := s.subscribeBatch(ctx, want)
	var jerr *Error
	if !errors.As(err, &jerr) {
		return err
	}
	if jerr.Code != 428 || len(want) == 1 {
		s.logger.Warn("janus refused a subscription", "feeds", idStrings(want), "err", err)
		return nil
	}
	// One of them left before Janus got our request: the rest are still
	// worth having, one by one.
	for _, f := range want {
		err := s.subscribeBatch(ctx, []ID{f})
		if errors.As(err, &jerr) {
			s.logger.Warn("janus refused a subscription", "feed", f.String(), "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) subscribeBatch(ctx context.Context, feeds []ID) error {
	streams := make([]map[string]any, len(feeds))
	for i, f := range feeds {
		streams[i] = map[string]any{"feed": f}
	}
	if s.sub == 0 {
		h, err := s.conn.attach(ctx, videoRoom)
		if err != nil {
			return err
		}
		s.sub = h
	}
	if s.subPeer == nil {
		peer, err := s.peers.NewPeer(ctx, meeting.PeerOptions{Role: meeting.RoleReceive, Label: "subscriber"})
		if err != nil {
			return fmt.Errorf("create subscriber peer: %w", err)
		}
		s.subPeer, s.subState = peer, peer.State()
	}
	var (
		m   *message
		ev  *roomEvent
		err error
	)
	if !s.subJoined {
		body := map[string]any{
			"request": "join",
			"ptype":   "subscriber",
			"room":    s.room,
			"streams": streams,
		}
		if s.privateID != nil {
			// Ties the subscription to our participant (required by rooms
			// with require_pvtid).
			body["private_id"] = *s.privateID
		}
		if s.target.PIN != "" {
			body["pin"] = s.target.PIN
		}
		m, ev, err = s.conn.message(ctx, "subscribe", s.sub, body, nil)
		if err == nil {
			s.subJoined = true
		}
	} else {
		m, ev, err = s.conn.message(ctx, "subscribe", s.sub, map[string]any{"request": "subscribe", "streams": streams}, nil)
	}
	if err != nil {
		return err
	}
	s.noteStreams(ev)
	s.mu.Lock()
	for _, f := range feeds {
		s.subscribed[f] = true
		if i := s.indexLocked(f); i >= 0 {
			s.participants[i].Subscribed = true
		}
	}
	s.mu.Unlock()
	if m.JSEP != nil {
		return s.answer(ctx, m.JSEP)
	}
	// "updating": Janus postponed the renegotiation; its offer comes as
	// an event.
	return nil
}

// unsubscribe drops a feed that went away from the subscription. Janus
// 1.1 only unlinks the feed's streams and sends no offer; asking
// renegotiates them away, so that the media layer sees the m-lines go
// inactive and Janus can reuse them. Janus refusing is logged; anything
// else ends the session.
func (s *Session) unsubscribe(ctx context.Context, feed ID) error {
	if !s.subscribed[feed] || !s.subJoined {
		return nil
	}
	delete(s.subscribed, feed)
	// By subscription mid: once the publisher is gone Janus has unlinked
	// its streams, and an unsubscribe by feed finds nothing to remove.
	var streams []map[string]any
	for mid, f := range s.subMIDs {
		if f == feed {
			streams = append(streams, map[string]any{"sub_mid": mid})
		}
	}
	if len(streams) == 0 {
		streams = []map[string]any{{"feed": feed}}
	}
	body := map[string]any{"request": "unsubscribe", "streams": streams}
	m, ev, err := s.conn.message(ctx, "unsubscribe", s.sub, body, nil)
	var jerr *Error
	if errors.As(err, &jerr) {
		s.logger.Warn("janus refused to unsubscribe", "feed", feed.String(), "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	s.noteStreams(ev)
	if m.JSEP != nil {
		return s.answer(ctx, m.JSEP)
	}
	return nil
}

// noteStreams records which feed each subscription mid carries, from the
// full layout that "attached" and "updated" list.
func (s *Session) noteStreams(ev *roomEvent) {
	if ev == nil || ev.Streams == nil {
		return
	}
	clear(s.subMIDs)
	var layout []SubscribedStream
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range ev.Streams {
		if st.FeedID != nil && st.MID != "" && (st.Active == nil || *st.Active) {
			s.subMIDs[st.MID] = *st.FeedID
			desc := st.FeedDescription
			if desc == "" {
				// Older servers leave it out of the layout; the
				// publisher's own list has it.
				desc = s.publishedLocked(*st.FeedID, st.FeedMID).Description
			}
			layout = append(layout, SubscribedStream{MID: st.MID, ParticipantID: *st.FeedID, Display: st.FeedDisplay, Type: st.Type, Description: desc})
		}
	}
	s.substreams = layout
	s.noteVideoLocked(ev.Streams)
}

// publishedLocked returns the stream feed publishes as feedMID, or a zero
// Stream if it is not known.
func (s *Session) publishedLocked(feed ID, feedMID string) Stream {
	if i := s.indexLocked(feed); i >= 0 {
		for _, st := range s.participants[i].Streams {
			if st.MID == feedMID {
				return st
			}
		}
	}
	return Stream{}
}

// answer answers Janus's subscription offer on the subscriber peer. Every
// renegotiation goes to the same peer, so the media layer keeps the
// streams it already receives.
func (s *Session) answer(ctx context.Context, offer *jsep) error {
	if offer.Type != "offer" || offer.SDP == "" {
		return fmt.Errorf("subscription: %w: jsep %q instead of an offer", ErrProtocol, offer.Type)
	}
	if s.subPeer == nil {
		return fmt.Errorf("subscription: %w: an offer before any subscription", ErrProtocol)
	}
	answer, err := s.subPeer.Answer(ctx, offer.SDP)
	if err != nil {
		return fmt.Errorf("answer subscription offer: %w", err)
	}
	if _, _, err := s.conn.message(ctx, "start", s.sub, map[string]any{"request": "start"}, sdp("answer", answer)); err != nil {
		return err
	}
	return nil
}

// finish ends a session that ended by itself.
func (s *Session) finish(cause error) {
	if cause == nil {
		cause = fmt.Errorf("%w: the session ended", ErrClosed)
	}
	s.logger.Warn("janus session ended", "err", cause)
	ctx, cancel := context.WithTimeout(context.Background(), meeting.LeaveDeadline)
	defer cancel()
	if err := s.teardown(ctx, false); err != nil {
		s.logger.Debug("clean-up after the session ended", "err", err)
	}
	s.mu.Lock()
	s.err = cause
	s.mu.Unlock()
	close(s.done)
}

// abort cleans up after a join that failed half-way.
func (s *Session) abort(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := s.teardown(ctx, false); err != nil {
		s.logger.Debug("clean-up after a failed join", "err", err)
	}
}

// teardown tells Janus we go (leave the room if leaveRoom, detach, destroy
// the session) while ctx and the connection allow, then closes the
// connection and the peers whatever happened.
func (s *Session) teardown(ctx context.Context, leaveRoom bool) error {
	var errs []error
	s.conn.quiet()
	ok := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return ctx.Err() == nil && s.conn.Err() == nil
	}
	more := s.conn.Err() == nil && s.conn.sessionID() != 0
	if more && leaveRoom && !s.self.IsZero() {
		_, _, err := s.conn.message(ctx, "leave", s.pub, map[string]any{"request": "leave"}, nil)
		more = ok(err)
	}
	if more && s.sub != 0 {
		more = ok(s.conn.simple(ctx, "detach subscriber", &request{Janus: "detach", HandleID: s.sub}))
	}
	if more && s.pub != 0 {
		more = ok(s.conn.simple(ctx, "detach publisher", &request{Janus: "detach", HandleID: s.pub}))
	}
	if more {
		ok(s.conn.simple(ctx, "destroy session", &request{Janus: "destroy"}))
	}
	s.conn.close()
	for _, p := range []struct {
		label string
		peer  meeting.Peer
	}{{"subscriber", s.subPeer}, {"publisher", s.pubPeer}} {
		if p.peer == nil {
			continue
		}
		if err := p.peer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s peer: %w", p.label, err))
		}
	}
	return errors.Join(errs...)
}

// Leave implements meeting.Session: it leaves the room, detaches, destroys
// the Janus session and closes the peers, as far as ctx's deadline allows,
// and then closes everything regardless. Leaving a session that already
// ended returns nil.
func (s *Session) Leave(ctx context.Context) error {
	s.leaveOnce.Do(func() {
		s.stopLoop()
		select {
		case <-s.loopDone:
		case <-ctx.Done():
			// The loop is stuck in the media layer or a request: closing
			// the connection fails whatever it waits for.
			s.conn.close()
			<-s.loopDone
		}
		select {
		case <-s.done:
			return // it had ended by itself and cleaned up
		default:
		}
		s.leaveErr = s.teardown(ctx, true)
		s.logger.Info("left janus room", "err", s.leaveErr)
		close(s.done)
	})
	return s.leaveErr
}

// Done implements meeting.Session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err implements meeting.Session: why the session ended by itself, nil
// while it runs or after Leave.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Room returns the room's id as the server uses it.
func (s *Session) Room() ID { return s.room }

// ParticipantID returns the room's own participant id.
func (s *Session) ParticipantID() ID { return s.self }

// Participants returns the other participants Janus has told of: active
// publishers, and listeners too in rooms with notify_joining.
func (s *Session) Participants() []Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Participant, len(s.participants))
	for i, p := range s.participants {
		p.Streams = slices.Clone(p.Streams)
		out[i] = p
	}
	return out
}

// SubscribedStreams returns the subscription's active streams: the mid
// each received track arrives on and whose media it carries, as of the
// latest layout Janus sent.
func (s *Session) SubscribedStreams() []SubscribedStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.substreams)
}

func (s *Session) indexLocked(id ID) int {
	return slices.IndexFunc(s.participants, func(p Participant) bool { return p.ID == id })
}

// upsert records a participant; streams nil keeps the known streams.
func (s *Session) upsert(id ID, display string, streams []Stream, publishing bool) {
	if id.IsZero() || id == s.self {
		return
	}
	i := s.indexLocked(id)
	if i < 0 {
		s.participants = append(s.participants, Participant{ID: id})
		i = len(s.participants) - 1
	}
	p := &s.participants[i]
	if display != "" {
		p.Display = display
	}
	if publishing {
		p.Streams = streams
	}
}

// addPublishersLocked records publishers and returns the feeds to
// subscribe to. Dummy publishers are placeholders, not people.
func (s *Session) addPublishersLocked(pubs []publisher) []ID {
	var feeds []ID
	for _, p := range pubs {
		if p.Dummy || p.ID.IsZero() || p.ID == s.self {
			continue
		}
		streams := make([]Stream, 0, len(p.Streams))
		for _, st := range p.Streams {
			streams = append(streams, Stream{Type: st.Type, MID: st.MID, Codec: st.Codec, Description: st.Description, Disabled: st.Disabled, Simulcast: bool(st.Simulcast)})
		}
		s.upsert(p.ID, p.Display, streams, true)
		feeds = append(feeds, p.ID)
	}
	return feeds
}

func (s *Session) unpublished(id ID) {
	delete(s.subscribed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.indexLocked(id); i >= 0 {
		s.participants[i].Streams = nil
		s.participants[i].Subscribed = false
	}
}

func (s *Session) remove(id ID) {
	delete(s.subscribed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.indexLocked(id); i >= 0 {
		s.participants = slices.Delete(s.participants, i, i+1)
	}
}

func idStrings(ids []ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
