package janus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
	"github.com/atriumroom/atrium/test/janustest"
)

// These tests run against the real Janus from test/janustest, with pion
// peers standing in for the media layer.

// realRoom is one joined room with its own provider, peers and log.
type realRoom struct {
	s     *janus.Session
	peers *pionPeers
	log   *logRecorder
}

func joinReal(t *testing.T, srv *janustest.Server, rawURL string) (*realRoom, error) {
	t.Helper()
	peers, err := newPionPeers(srv.ICEAddr)
	if err != nil {
		t.Fatal(err)
	}
	logger, rec := newLogger(t)
	p, err := janus.New(janus.Config{DisplayName: "Atrium Test"}, func(context.Context) (meeting.PeerFactory, error) { return peers, nil }, logger)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.JoinSession(testContext(t, 20*time.Second), mustParse(t, rawURL))
	if err != nil {
		return nil, err
	}
	leaveAtCleanup(t, s)
	return &realRoom{s: s, peers: peers, log: rec}, nil
}

func mustJoinReal(t *testing.T, srv *janustest.Server, rawURL string) *realRoom {
	t.Helper()
	r, err := joinReal(t, srv, rawURL)
	if err != nil {
		t.Fatalf("join %s: %v", rawURL, err)
	}
	return r
}

func wsURL(srv *janustest.Server, query string) string {
	return "janus+" + srv.WSURL + "?" + query
}

func httpURL(srv *janustest.Server, query string) string {
	return "janus+" + srv.HTTPURL + "?" + query
}

func participant(r *realRoom, id janus.ID) (janus.Participant, bool) {
	ps := r.s.Participants()
	i := slices.IndexFunc(ps, func(p janus.Participant) bool { return p.ID == id })
	if i < 0 {
		return janus.Participant{}, false
	}
	return ps[i], true
}

func hasStream(p janus.Participant, typ, codec string) bool {
	return slices.ContainsFunc(p.Streams, func(s janus.Stream) bool { return s.Type == typ && s.Codec == codec })
}

func waitPublishing(t *testing.T, r *realRoom) {
	t.Helper()
	eventually(t, 15*time.Second, "the publisher to connect and Janus to say webrtcup", func() bool {
		p := r.peers.peer("publisher")
		return p != nil && p.connected.Load() && r.log.has("janus media up", "handle=publisher")
	})
}

func TestRealJanusPublishAndSubscribe(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	ctx := testContext(t, 60*time.Second)

	alpha := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Alpha", janustest.Room)))
	waitPublishing(t, alpha)
	if len(alpha.s.Participants()) != 0 {
		t.Errorf("an empty room has participants: %+v", alpha.s.Participants())
	}

	beta := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Beta", janustest.Room)))
	waitPublishing(t, beta)

	// Each sees the other, with the codecs the room forces, and receives
	// its media.
	for _, c := range []struct {
		name     string
		watcher  *realRoom
		watched  *realRoom
		wantName string
	}{{"alpha sees beta", alpha, beta, "Beta"}, {"beta sees alpha", beta, alpha, "Alpha"}} {
		eventually(t, 15*time.Second, c.name, func() bool {
			p, ok := participant(c.watcher, c.watched.s.ParticipantID())
			return ok && p.Display == c.wantName && p.Subscribed && hasStream(p, "video", "vp8") && hasStream(p, "audio", "opus")
		})
		eventually(t, 15*time.Second, c.name+" (RTP on the subscriber)", func() bool {
			sub := c.watcher.peers.peer("subscriber")
			return sub != nil && sub.connected.Load() && sub.rtp.Load() > 20 && sub.tracks.Load() >= 2
		})
	}

	// Beta leaves: alpha's participant list follows, alpha stays.
	if err := beta.s.Leave(ctx); err != nil {
		t.Fatalf("beta leave: %v", err)
	}
	select {
	case <-beta.s.Done():
	default:
		t.Error("Done is still open after Leave")
	}
	if err := beta.s.Err(); err != nil {
		t.Errorf("Err after Leave = %v, want nil", err)
	}
	eventually(t, 10*time.Second, "beta to leave alpha's participants", func() bool {
		_, ok := participant(alpha, beta.s.ParticipantID())
		return !ok
	})
	// Janus renegotiates alpha's subscription without beta's streams.
	eventually(t, 10*time.Second, "a renegotiation on alpha's subscriber", func() bool {
		return alpha.peers.peer("subscriber").answers.Load() >= 2
	})

	// A newcomer after a renegotiation still gets through to alpha.
	gamma := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Gamma", janustest.Room)))
	waitPublishing(t, gamma)
	eventually(t, 15*time.Second, "alpha to subscribe to gamma", func() bool {
		p, ok := participant(alpha, gamma.s.ParticipantID())
		return ok && p.Subscribed && alpha.peers.peer("subscriber").answers.Load() >= 3
	})

	select {
	case <-alpha.s.Done():
		t.Fatalf("alpha ended: %v", alpha.s.Err())
	default:
	}
	if err := alpha.s.Leave(ctx); err != nil {
		t.Fatalf("alpha leave: %v", err)
	}
	if err := gamma.s.Leave(ctx); err != nil {
		t.Fatalf("gamma leave: %v", err)
	}
	if strings.Contains(alpha.log.String(), "level=ERROR") {
		t.Errorf("errors in alpha's log:\n%s", alpha.log)
	}
}

func TestRealJanusHTTPLongPoll(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	ctx := testContext(t, 60*time.Second)

	polled := mustJoinReal(t, srv, httpURL(srv, fmt.Sprintf("room=%d&display=Polled", janustest.Room)))
	waitPublishing(t, polled)

	ws := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Socket", janustest.Room)))
	waitPublishing(t, ws)
	eventually(t, 15*time.Second, "the long-polling room to receive the other's media", func() bool {
		p, ok := participant(polled, ws.s.ParticipantID())
		sub := polled.peers.peer("subscriber")
		return ok && p.Display == "Socket" && sub != nil && sub.rtp.Load() > 20
	})

	// Longer than one keepalive interval would not be needed: Janus's
	// long poll returns on its own every 30 s; the session must simply
	// survive a quiet spell here.
	time.Sleep(time.Second)
	select {
	case <-polled.s.Done():
		t.Fatalf("long-polling session ended: %v", polled.s.Err())
	default:
	}
	if err := polled.s.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	eventually(t, 10*time.Second, "the long-polling room to leave", func() bool {
		_, ok := participant(ws, polled.s.ParticipantID())
		return !ok
	})
}

func TestRealJanusPIN(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)

	_, err := joinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&pin=wrong", janustest.PINRoom)))
	if !errors.Is(err, janus.ErrUnauthorized) || !strings.Contains(err.Error(), "433") {
		t.Errorf("wrong PIN: err = %v, want ErrUnauthorized naming 433", err)
	}
	_, err = joinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d", janustest.PINRoom)))
	if !errors.Is(err, janus.ErrUnauthorized) {
		t.Errorf("no PIN: err = %v, want ErrUnauthorized", err)
	}

	r := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&pin=%s", janustest.PINRoom, janustest.PIN)))
	waitPublishing(t, r)
	if err := r.s.Leave(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestRealJanusUnknownRoom(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	for _, raw := range []string{wsURL(srv, "room=9999"), httpURL(srv, "room=9999")} {
		_, err := joinReal(t, srv, raw)
		if !errors.Is(err, janus.ErrNoSuchRoom) || !strings.Contains(err.Error(), "426") {
			t.Errorf("%s: err = %v, want ErrNoSuchRoom naming 426", raw, err)
		}
	}
	// A string room on a server with numeric ids.
	_, err := joinReal(t, srv, wsURL(srv, "room=lobby"))
	var jerr *janus.Error
	if !errors.As(err, &jerr) {
		t.Errorf("string room: err = %v, want a Janus error", err)
	}
}

func TestRealJanusRoomDestroyed(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	r := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d", janustest.Room)))
	waitPublishing(t, r)

	destroyRoom(t, srv, janustest.Room)
	select {
	case <-r.s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end when its room was destroyed")
	}
	if err := r.s.Err(); !errors.Is(err, janus.ErrRoomDestroyed) {
		t.Errorf("Err = %v, want ErrRoomDestroyed", err)
	}
	if err := r.s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Errorf("Leave after the end = %v, want nil", err)
	}
}

// destroyRoom destroys a room through a raw Janus API session, as a
// moderator would.
func destroyRoom(t *testing.T, srv *janustest.Server, room int) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	c, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	roundTrip := func(req string, want string) string {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), want) {
				return string(b)
			}
		}
	}
	created := roundTrip(`{"janus":"create","transaction":"a"}`, `"success"`)
	sid := jsonNumber(t, created, `"id":`)
	attached := roundTrip(fmt.Sprintf(`{"janus":"attach","plugin":"janus.plugin.videoroom","session_id":%s,"transaction":"b"}`, sid), `"success"`)
	hid := jsonNumber(t, attached, `"id":`)
	reply := roundTrip(fmt.Sprintf(`{"janus":"message","session_id":%s,"handle_id":%s,"transaction":"c","body":{"request":"destroy","room":%d,"secret":%q}}`,
		sid, hid, room, janustest.AdminSecret), `"transaction":"c"`)
	if !strings.Contains(reply, `"destroyed"`) {
		t.Fatalf("destroy room: %s", reply)
	}
}

func jsonNumber(t *testing.T, s, key string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, key)
	if !ok {
		t.Fatalf("no %s in %s", key, s)
	}
	rest = strings.TrimSpace(rest)
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	return rest[:end]
}

// TestRealJanusRestartICE restarts ICE on request on a room that publishes
// and subscribes: Janus must take the publisher's restart offer and answer
// a subscriber configure with restart by a fresh offer, and the media must
// keep flowing on the new credentials.
func TestRealJanusRestartICE(t *testing.T) {
	noLeaks(t)
	srv := janustest.Start(t)
	ctx := testContext(t, 60*time.Second)

	alpha := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Alpha", janustest.Room)))
	waitPublishing(t, alpha)
	beta := mustJoinReal(t, srv, wsURL(srv, fmt.Sprintf("room=%d&display=Beta", janustest.Room)))
	waitPublishing(t, beta)
	eventually(t, 15*time.Second, "alpha to receive beta's media", func() bool {
		sub := alpha.peers.peer("subscriber")
		return sub != nil && sub.connected.Load() && sub.rtp.Load() > 20
	})
	pub, sub := alpha.peers.peer("publisher"), alpha.peers.peer("subscriber")
	pubLocal, pubRemote := pub.ufrags()
	subLocal, subRemote := sub.ufrags()
	answers := sub.answers.Load()

	if err := alpha.s.RestartICE(ctx); err != nil {
		t.Fatalf("RestartICE: %v\n%s", err, alpha.log)
	}
	if n := pub.restarts.Load(); n != 1 {
		t.Errorf("publisher made %d restart offers, want 1", n)
	}
	// Janus 1.1 offers in the configure's reply, not in a later event:
	// RestartICE has answered it by the time it returns.
	if !alpha.log.has("janus subscriber restart reply", "videoroom=event", "configured=ok", "offer=true") {
		t.Errorf("Janus's reply to the subscriber's restart carried no offer:\n%s", alpha.log)
	}
	if n := sub.answers.Load(); n != answers+1 {
		t.Errorf("alpha's subscriber answered %d offers during the restart, want 1", n-answers)
	}
	eventually(t, 10*time.Second, "new ICE credentials on both peers, both ends", func() bool {
		pl, pr := pub.ufrags()
		sl, sr := sub.ufrags()
		return pl != pubLocal && pr != pubRemote && sl != subLocal && sr != subRemote && pl != "" && pr != "" && sl != "" && sr != ""
	})
	pl, pr := pub.ufrags()
	sl, sr := sub.ufrags()
	t.Logf("ufrags: publisher %s/%s → %s/%s; subscriber %s/%s → %s/%s", pubLocal, pubRemote, pl, pr, subLocal, subRemote, sl, sr)

	// Media keeps flowing to the subscriber, and Janus keeps taking the
	// publisher's (beta still receives alpha).
	subRTP := sub.rtp.Load()
	eventually(t, 15*time.Second, "RTP on alpha's subscriber after the restart", func() bool {
		return sub.connected.Load() && sub.rtp.Load() > subRTP+50
	})
	betaSub := beta.peers.peer("subscriber")
	betaRTP := betaSub.rtp.Load()
	eventually(t, 15*time.Second, "RTP from alpha's publisher at beta after the restart", func() bool {
		return betaSub.rtp.Load() > betaRTP+50
	})
	select {
	case <-alpha.s.Done():
		t.Fatalf("alpha's session ended: %v", alpha.s.Err())
	default:
	}
	if alpha.log.has("restarting ICE", "reason=") {
		t.Errorf("a peer failed around the restart:\n%s", alpha.log)
	}
}
