package janus_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
)

// These tests script an in-process fake Janus; the real one is in
// integration_test.go.

func join(t *testing.T, p *janus.Provider, raw string) *janus.Session {
	t.Helper()
	s, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, raw))
	if err != nil {
		t.Fatalf("join %s: %v", raw, err)
	}
	leaveAtCleanup(t, s)
	return s
}

func joinErr(t *testing.T, p *janus.Provider, raw string) error {
	t.Helper()
	s, err := p.JoinSession(testContext(t, 10*time.Second), mustParse(t, raw))
	if err == nil {
		leaveAtCleanup(t, s)
		t.Fatalf("join %s succeeded, want an error", raw)
	}
	return err
}

func waitDone(t *testing.T, s *janus.Session) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end")
		return nil
	}
}

func remote(id int, display string) map[string]any {
	return map[string]any{
		"id": id, "display": display,
		"streams": []map[string]any{
			{"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"},
			{"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"},
		},
	}
}

func TestJoinPublishSubscribe(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.publishers = []map[string]any{remote(7, "Remote")}
	p, peers, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))

	if s.Room() != janus.NumericID(1234) || s.ParticipantID() != janus.NumericID(42) {
		t.Errorf("room %v participant %v", s.Room(), s.ParticipantID())
	}
	start := f.waitFor(t, "start")
	want := []string{"create", "attach", "join publisher", "publish", "attach", "join subscriber", "start"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}

	joinReq := f.find("join publisher")[0]
	if joinReq.Body["room"] != float64(1234) || joinReq.Body["display"] != "Atrium Test" {
		t.Errorf("join body = %v", joinReq.Body)
	}
	if _, ok := joinReq.Body["pin"]; ok {
		t.Errorf("join sent a pin the URL did not have: %v", joinReq.Body)
	}
	pub := f.find("publish")[0]
	if pub.JSEP == nil || pub.JSEP.Type != "offer" || pub.JSEP.SDP != "fake-offer-from-publisher" || pub.JSEP.Trickle == nil || *pub.JSEP.Trickle {
		t.Errorf("publish jsep = %+v, want the publisher's offer with trickle false", pub.JSEP)
	}
	if got := peers.peer("publisher").accepted; !reflect.DeepEqual(got, []string{"fake-answer"}) {
		t.Errorf("publisher accepted %v", got)
	}
	sub := f.find("join subscriber")[0]
	if sub.Body["private_id"] != float64(4242) || fmt.Sprint(sub.Body["streams"]) != "[map[feed:7]]" {
		t.Errorf("subscriber join body = %v", sub.Body)
	}
	if start.JSEP == nil || start.JSEP.Type != "answer" || start.JSEP.SDP != "fake-answer-1" {
		t.Errorf("start jsep = %+v", start.JSEP)
	}
	if got := peers.peer("subscriber").offers(); !reflect.DeepEqual(got, []string{"fake-offer-1"}) {
		t.Errorf("subscriber answered %v", got)
	}
	if peers.peer("subscriber").opts.Role != meeting.RoleReceive || peers.peer("publisher").opts.Role != meeting.RoleSend {
		t.Error("peer roles are wrong")
	}

	eventually(t, 5*time.Second, "the remote to be subscribed", func() bool {
		ps := s.Participants()
		return len(ps) == 1 && ps[0].Subscribed
	})
	ps := s.Participants()
	wantP := janus.Participant{ID: janus.NumericID(7), Display: "Remote", Subscribed: true, Streams: []janus.Stream{
		{Type: "audio", MID: "0", Codec: "opus"}, {Type: "video", MID: "1", Codec: "vp8"},
	}}
	if !reflect.DeepEqual(ps[0], wantP) {
		t.Errorf("participant = %+v, want %+v", ps[0], wantP)
	}
	// The subscription's mids map to the feed, as the offer's layout says.
	wantSub := []janus.SubscribedStream{
		{MID: "7-0", ParticipantID: janus.NumericID(7), Display: "Feed 7", Type: "audio"},
		{MID: "7-1", ParticipantID: janus.NumericID(7), Display: "Feed 7", Type: "video"},
	}
	if got := s.SubscribedStreams(); !reflect.DeepEqual(got, wantSub) {
		t.Errorf("subscribed streams = %+v, want %+v", got, wantSub)
	}
	// Participants hands out copies.
	ps[0].Streams[0].Codec = "changed"
	if s.Participants()[0].Streams[0].Codec != "opus" {
		t.Error("Participants shares its slices")
	}

	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	want = append(want, "leave", "detach", "detach", "destroy")
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
	if !peers.peer("publisher").isClosed() || !peers.peer("subscriber").isClosed() {
		t.Error("peers not closed")
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done open after Leave")
	}
	if s.Err() != nil {
		t.Errorf("Err after Leave = %v", s.Err())
	}
	if err := s.Leave(testContext(t, time.Second)); err != nil {
		t.Errorf("second Leave = %v", err)
	}
}

func TestNewPublisherUnpublishedAndLeaving(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, peers, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	c := f.conn()
	pubHandle := c.handle(0)

	// Nobody there: no subscriber yet.
	if peers.peer("subscriber") != nil {
		t.Fatal("a subscriber peer for an empty room")
	}

	c.event(pubHandle, "", map[string]any{"videoroom": "event", "room": 1234, "publishers": []any{remote(7, "Seven")}}, nil)
	f.waitFor(t, "start")
	c.event(pubHandle, "", map[string]any{"videoroom": "event", "room": 1234, "publishers": []any{remote(8, "Eight")}}, nil)
	sub := f.waitFor(t, "subscribe")
	if fmt.Sprint(sub.Body["streams"]) != "[map[feed:8]]" {
		t.Errorf("subscribe body = %v", sub.Body)
	}
	eventually(t, 5*time.Second, "the second offer to be answered on the same peer", func() bool {
		return len(f.find("start")) == 2
	})
	if got := peers.peer("subscriber").offers(); !reflect.DeepEqual(got, []string{"fake-offer-1", "fake-offer-2"}) {
		t.Errorf("subscriber answered %v", got)
	}
	if peers.created != 2 {
		t.Errorf("%d peers created, want 2 (renegotiation reuses the subscriber)", peers.created)
	}
	eventually(t, 5*time.Second, "both subscribed", func() bool {
		ps := s.Participants()
		return len(ps) == 2 && ps[0].Subscribed && ps[1].Subscribed
	})

	// Eight unpublishes: unsubscribed by its subscription mids, and listed
	// without streams.
	c.event(pubHandle, "", map[string]any{"videoroom": "event", "room": 1234, "unpublished": 8}, nil)
	unsub := f.waitFor(t, "unsubscribe")
	got := fmt.Sprint(unsub.Body["streams"])
	if got != "[map[sub_mid:8-0] map[sub_mid:8-1]]" && got != "[map[sub_mid:8-1] map[sub_mid:8-0]]" {
		t.Errorf("unsubscribe streams = %v", got)
	}
	eventually(t, 5*time.Second, "eight to lose its streams", func() bool {
		ps := s.Participants()
		i := slices.IndexFunc(ps, func(p janus.Participant) bool { return p.ID == janus.NumericID(8) })
		return i >= 0 && len(ps[i].Streams) == 0 && !ps[i].Subscribed && len(f.find("start")) == 3
	})

	// Seven leaves: gone from the list.
	c.event(pubHandle, "", map[string]any{"videoroom": "event", "room": 1234, "leaving": 7}, nil)
	eventually(t, 5*time.Second, "seven to leave", func() bool {
		return !slices.ContainsFunc(s.Participants(), func(p janus.Participant) bool { return p.ID == janus.NumericID(7) })
	})
	// A listener joining (notify_joining rooms) is listed without streams.
	c.event(pubHandle, "", map[string]any{"videoroom": "event", "room": 1234, "joining": map[string]any{"id": 9, "display": "Nine"}}, nil)
	eventually(t, 5*time.Second, "nine to join", func() bool {
		return slices.ContainsFunc(s.Participants(), func(p janus.Participant) bool { return p.ID == janus.NumericID(9) && p.Display == "Nine" })
	})
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
}

func TestPostponedRenegotiation(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.publishers = []map[string]any{remote(7, "Seven")}
	p, peers, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	f.waitFor(t, "start")
	c := f.conn()

	// "subscribe" answered with "updating"; the offer follows as an event.
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() != "subscribe" {
			return false
		}
		c.ack(r)
		c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "updating", "room": 1234}, nil)
		c.event(r.HandleID, "", map[string]any{"videoroom": "updated", "room": 1234}, map[string]any{"type": "offer", "sdp": "late-offer"})
		return true
	})
	c.event(c.handle(0), "", map[string]any{"videoroom": "event", "publishers": []any{remote(8, "Eight")}}, nil)
	eventually(t, 5*time.Second, "the late offer to be answered", func() bool {
		return slices.Contains(peers.peer("subscriber").offers(), "late-offer") && len(f.find("start")) == 2
	})
	_ = s
}

func TestJoinOptions(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, _ := newFakeProvider(t, janus.Config{})
	join(t, p, f.wsURL("room=lobby&pin=s%C3%A9cret&display=Board+Room"))
	r := f.find("join publisher")[0]
	if r.Body["room"] != "lobby" || r.Body["pin"] != "sécret" || r.Body["display"] != "Board Room" {
		t.Errorf("join body = %v", r.Body)
	}
}

func TestStringIDServer(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() == "join publisher" {
			if _, isNum := r.Body["room"].(float64); isNum {
				c.ack(r)
				c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": 430, "error": "Invalid element type (room should be a string)"}, nil)
				return true
			}
		}
		return false
	})
	p, _, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	if s.Room() != janus.StringID("1234") {
		t.Errorf("room = %#v, want the string id 1234", s.Room())
	}
	if joins := f.find("join publisher"); len(joins) != 2 || joins[1].Body["room"] != "1234" {
		t.Errorf("joins = %+v", joins)
	}
}

func TestJanusErrors(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name    string
		code    int
		reason  string
		is      error
		inError []string
	}{
		{"no such room", 426, "No such room (1234)", janus.ErrNoSuchRoom, []string{"426", "no such room", "No such room (1234)", "room 1234 at ws://"}},
		{"wrong pin", 433, "Unauthorized (wrong pin)", janus.ErrUnauthorized, []string{"433", "wrong pin"}},
		{"missing pin", 429, "Missing element (pin)", janus.ErrUnauthorized, []string{"429"}},
		{"full", 432, "Maximum number of publishers (6) already reached", janus.ErrRoomFull, []string{"432", "publishers full"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeJanus(t)
			f.setHandler(func(fc *fakeConn, r fakeRequest) bool {
				if r.name() != "join publisher" {
					return false
				}
				fc.ack(r)
				fc.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": c.code, "error": c.reason}, nil)
				return true
			})
			p, peers, _ := newFakeProvider(t, janus.Config{})
			err := joinErr(t, p, f.wsURL("room=1234"))
			var jerr *janus.Error
			if !errors.Is(err, c.is) || !errors.As(err, &jerr) || jerr.Code != c.code {
				t.Errorf("err = %v, want %v with code %d", err, c.is, c.code)
			}
			for _, s := range c.inError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if peers.created != 0 {
				t.Error("peers created for a room that refused us")
			}
			// The half-made session is cleaned up on the server.
			f.waitFor(t, "destroy")
		})
	}

	t.Run("core error", func(t *testing.T) {
		f := newFakeJanus(t)
		f.setHandler(func(fc *fakeConn, r fakeRequest) bool {
			if r.Janus != "attach" {
				return false
			}
			fc.send(map[string]any{"janus": "error", "transaction": r.Transaction, "error": map[string]any{"code": 460, "reason": "No such plugin 'janus.plugin.videoroom'"}})
			return true
		})
		p, _, _ := newFakeProvider(t, janus.Config{})
		err := joinErr(t, p, f.wsURL("room=1234"))
		var jerr *janus.Error
		if !errors.As(err, &jerr) || jerr.Code != 460 || !strings.Contains(err.Error(), "no such plugin") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMalformedReplies(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name  string
		reply func(tx string) string
		is    error
	}{
		{"not json", func(string) string { return "this is not json" }, janus.ErrProtocol},
		{"array", func(string) string { return `[1,2,3]` }, janus.ErrProtocol},
		{"no janus field", func(tx string) string { return `{"transaction":"` + tx + `"}` }, janus.ErrProtocol},
		{"janus not a string", func(tx string) string { return `{"janus":5,"transaction":"` + tx + `"}` }, janus.ErrProtocol},
		{"id not a number", func(tx string) string { return `{"janus":"success","transaction":"` + tx + `","data":{"id":"abc"}}` }, janus.ErrProtocol},
		{"no id", func(tx string) string { return `{"janus":"success","transaction":"` + tx + `","data":{}}` }, janus.ErrProtocol},
		{"fractional id", func(tx string) string { return `{"janus":"success","transaction":"` + tx + `","data":{"id":1.5}}` }, janus.ErrProtocol},
		{"error without code", func(tx string) string { return `{"janus":"error","transaction":"` + tx + `"}` }, janus.ErrProtocol},
		{"huge", func(tx string) string {
			return `{"janus":"success","transaction":"` + tx + `","pad":"` + strings.Repeat("x", janus.MaxMessageSize) + `"}`
		}, janus.ErrMessageTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeJanus(t)
			f.setHandler(func(fc *fakeConn, r fakeRequest) bool {
				if r.Janus != "create" {
					return false
				}
				fc.sendRaw([]byte(c.reply(r.Transaction)))
				return true
			})
			p, _, _ := newFakeProvider(t, janus.Config{})
			start := time.Now()
			err := joinErr(t, p, f.wsURL("room=1234"))
			if !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			if time.Since(start) > time.Second {
				t.Errorf("took %s: a bad reply must fail at once, not time out", time.Since(start))
			}
		})
	}

	t.Run("bad videoroom data", func(t *testing.T) {
		f := newFakeJanus(t)
		f.setHandler(func(fc *fakeConn, r fakeRequest) bool {
			if r.name() != "join publisher" {
				return false
			}
			fc.ack(r)
			fc.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "joined", "id": "forty-two", "publishers": "nobody"}, nil)
			return true
		})
		p, _, _ := newFakeProvider(t, janus.Config{})
		if err := joinErr(t, p, f.wsURL("room=1234")); !errors.Is(err, janus.ErrProtocol) {
			t.Errorf("err = %v, want ErrProtocol", err)
		}
	})

	t.Run("publish without answer", func(t *testing.T) {
		f := newFakeJanus(t)
		f.setHandler(func(fc *fakeConn, r fakeRequest) bool {
			if r.name() != "publish" {
				return false
			}
			fc.ack(r)
			fc.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "configured": "ok"}, nil)
			return true
		})
		p, peers, _ := newFakeProvider(t, janus.Config{})
		if err := joinErr(t, p, f.wsURL("room=1234")); !errors.Is(err, janus.ErrProtocol) {
			t.Errorf("err = %v, want ErrProtocol", err)
		}
		if !peers.peer("publisher").isClosed() {
			t.Error("the publisher peer of a failed join is still open")
		}
	})

	t.Run("garbage event after join", func(t *testing.T) {
		f := newFakeJanus(t)
		p, _, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		f.conn().sendRaw([]byte(`{"janus":"event","sender":`))
		if err := waitDone(t, s); !errors.Is(err, janus.ErrProtocol) {
			t.Errorf("Err = %v, want ErrProtocol", err)
		}
	})
}

func TestSocketClosedMidJoin(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() == "join publisher" {
			c.close()
			return true
		}
		return false
	})
	p, _, _ := newFakeProvider(t, janus.Config{})
	start := time.Now()
	err := joinErr(t, p, f.wsURL("room=1234"))
	if !errors.Is(err, janus.ErrClosed) || !strings.Contains(err.Error(), "join") {
		t.Errorf("err = %v, want ErrClosed during join", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %s to notice the closed socket", time.Since(start))
	}
}

func TestNoReply(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() == "join publisher" {
			c.ack(r) // and then nothing
			return true
		}
		return false
	})
	p, _, _ := newFakeProvider(t, janus.Config{RequestTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := joinErr(t, p, f.wsURL("room=1234"))
	if !errors.Is(err, janus.ErrNoReply) || !strings.Contains(err.Error(), "join") {
		t.Errorf("err = %v, want ErrNoReply naming the join", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s; the request timeout is 200ms (plus clean-up)", d)
	}
}

func TestJoinCanceled(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.setHandler(func(c *fakeConn, r fakeRequest) bool { return r.name() == "join publisher" })
	p, _, _ := newFakeProvider(t, janus.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.JoinSession(ctx, mustParse(t, f.wsURL("room=1234")))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
}

func TestKeepAlive(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, _ := newFakeProvider(t, janus.Config{KeepAlive: 30 * time.Millisecond})
	s := join(t, p, f.wsURL("room=1234"))
	eventually(t, 5*time.Second, "three keepalives", func() bool { return len(f.find("keepalive")) >= 3 })
	for _, k := range f.find("keepalive") {
		if k.SessionID == 0 {
			t.Errorf("keepalive without session: %+v", k)
		}
	}
	select {
	case <-s.Done():
		t.Fatalf("ended: %v", s.Err())
	default:
	}

	// Janus stops acking: the session ends, saying why.
	f.setHandler(func(c *fakeConn, r fakeRequest) bool { return r.Janus == "keepalive" })
	err := waitDone(t, s)
	if !errors.Is(err, janus.ErrNoReply) || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("Err = %v, want ErrNoReply for a keepalive", err)
	}
}

func TestSessionEnds(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name string
		send func(c *fakeConn)
		is   error
	}{
		{"session timeout", func(c *fakeConn) {
			c.send(map[string]any{"janus": "timeout", "session_id": c.session})
		}, janus.ErrSessionTimeout},
		{"room destroyed", func(c *fakeConn) {
			c.event(c.handle(0), "", map[string]any{"videoroom": "destroyed", "room": 1234}, nil)
		}, janus.ErrRoomDestroyed},
		{"kicked", func(c *fakeConn) {
			c.event(c.handle(0), "", map[string]any{"videoroom": "event", "room": 1234, "leaving": "ok", "reason": "kicked"}, nil)
		}, janus.ErrKicked},
		{"kicked by id", func(c *fakeConn) {
			c.event(c.handle(0), "", map[string]any{"videoroom": "event", "room": 1234, "kicked": 42}, nil)
		}, janus.ErrKicked},
		{"hangup", func(c *fakeConn) {
			c.core("hangup", c.handle(0), map[string]any{"reason": "DTLS alert"})
		}, janus.ErrHangup},
		{"detached", func(c *fakeConn) {
			c.core("detached", c.handle(0), nil)
		}, janus.ErrHangup},
		{"socket closed", func(c *fakeConn) { c.close() }, janus.ErrClosed},
		{"destroyed then closed", func(c *fakeConn) {
			c.event(c.handle(0), "", map[string]any{"videoroom": "destroyed", "room": 1234}, nil)
			c.close()
		}, janus.ErrRoomDestroyed},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeJanus(t)
			p, peers, _ := newFakeProvider(t, janus.Config{})
			s := join(t, p, f.wsURL("room=1234"))
			c.send(f.conn())
			err := waitDone(t, s)
			if !errors.Is(err, c.is) {
				t.Errorf("Err = %v, want %v", err, c.is)
			}
			if !peers.peer("publisher").isClosed() {
				t.Error("publisher peer still open")
			}
			if err := s.Leave(testContext(t, time.Second)); err != nil {
				t.Errorf("Leave after the end = %v", err)
			}
		})
	}

	t.Run("media failed", func(t *testing.T) {
		f := newFakeJanus(t)
		p, peers, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		peers.peer("publisher").state <- meeting.PeerState{Connected: true}
		peers.peer("publisher").state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		// The ICE restart (restart_test.go) gets through, and fails too.
		f.waitFor(t, "configure")
		peers.peer("publisher").state <- meeting.PeerState{}
		peers.peer("publisher").state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		err := waitDone(t, s)
		if !errors.Is(err, janus.ErrMediaFailed) || !strings.Contains(err.Error(), "ICE failed") {
			t.Errorf("Err = %v", err)
		}
		// The room was still there: the session was destroyed on the server.
		f.waitFor(t, "destroy")
	})

	t.Run("answer fails", func(t *testing.T) {
		f := newFakeJanus(t)
		p, peers, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		c := f.conn()
		c.event(c.handle(0), "", map[string]any{"videoroom": "event", "publishers": []any{remote(7, "Seven")}}, nil)
		eventually(t, 5*time.Second, "a subscriber", func() bool { return peers.peer("subscriber") != nil })
		// Too late for the first offer maybe, so fail the next one.
		sp := peers.peer("subscriber")
		sp.mu.Lock()
		sp.answerErr = errors.New("no decoder")
		sp.mu.Unlock()
		c.event(c.handle(0), "", map[string]any{"videoroom": "event", "publishers": []any{remote(8, "Eight")}}, nil)
		if err := waitDone(t, s); err == nil || !strings.Contains(err.Error(), "no decoder") {
			t.Errorf("Err = %v", err)
		}
	})
}

func TestInformationalEvents(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, log := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	c := f.conn()
	c.core("webrtcup", c.handle(0), nil)
	c.core("media", c.handle(0), map[string]any{"type": "video", "mid": "1", "receiving": true})
	c.core("slowlink", c.handle(0), map[string]any{"media": "video", "mid": "1", "uplink": true, "lost": 12})
	c.core("trickle", c.handle(0), map[string]any{"candidate": map[string]any{"completed": true}})
	c.core("webrtcup", 999, nil) // not ours
	c.event(c.handle(0), "", map[string]any{"videoroom": "talking", "id": 7}, nil)
	c.event(c.handle(0), "", map[string]any{"videoroom": "event", "error_code": 499, "error": "something odd"}, nil)
	c.send(map[string]any{"janus": "error", "error": map[string]any{"code": 490, "reason": "stray"}})
	eventually(t, 5*time.Second, "the events to be logged", func() bool {
		return log.has("janus media up", "handle=publisher") && log.has("slow link", "lost=12", "uplink=true") &&
			log.has("janus videoroom error", "code=499") && log.has("janus error outside any request", "code=490")
	})
	select {
	case <-s.Done():
		t.Fatalf("ended: %v", s.Err())
	default:
	}
}

func TestLeaveDeadline(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, peers, _ := newFakeProvider(t, janus.Config{RequestTimeout: 10 * time.Second})
	s := join(t, p, f.wsURL("room=1234"))
	// The server stops answering anything.
	f.setHandler(func(*fakeConn, fakeRequest) bool { return true })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Leave(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Leave = %v, want the deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Leave took %s with a 200ms deadline", d)
	}
	if !peers.peer("publisher").isClosed() {
		t.Error("peer not closed after a forced leave")
	}
}

func TestLeaveWhileBusy(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, _ := newFakeProvider(t, janus.Config{RequestTimeout: 10 * time.Second})
	s := join(t, p, f.wsURL("room=1234"))
	c := f.conn()
	// The loop is stuck waiting for a subscription Janus never answers.
	f.setHandler(func(c *fakeConn, r fakeRequest) bool { return r.name() == "join subscriber" })
	c.event(c.handle(0), "", map[string]any{"videoroom": "event", "publishers": []any{remote(7, "Seven")}}, nil)
	f.waitFor(t, "join subscriber")
	start := time.Now()
	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Errorf("Leave = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Leave took %s: it must interrupt the loop", d)
	}
	f.waitFor(t, "destroy")
}

func TestPeerFactoryFails(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	logger, _ := newLogger(t)
	p, err := janus.New(janus.Config{}, func(context.Context) (meeting.PeerFactory, error) {
		return nil, errors.New("camera busy")
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	err = joinErr(t, p, f.wsURL("room=1234"))
	if !strings.Contains(err.Error(), "camera busy") {
		t.Errorf("err = %v", err)
	}
	f.waitFor(t, "destroy")
}

func TestNotJanusWebSocket(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, _ := newFakeProvider(t, janus.Config{})
	// /janus is the fake's HTTP API: no WebSocket there.
	raw := "janus+ws://" + strings.TrimPrefix(f.srv.URL, "http://") + "/janus?room=1"
	if err := joinErr(t, p, raw); !strings.Contains(err.Error(), "connect to") {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPLongPoll(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.publishers = []map[string]any{remote(7, "Seven")}
	p, peers, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.httpURL("room=1234"))
	f.waitFor(t, "start")
	eventually(t, 5*time.Second, "seven subscribed", func() bool {
		ps := s.Participants()
		return len(ps) == 1 && ps[0].Subscribed
	})
	// An event through the long poll.
	c := f.conn()
	c.event(c.handle(0), "", map[string]any{"videoroom": "event", "publishers": []any{remote(8, "Eight")}}, nil)
	eventually(t, 5*time.Second, "eight subscribed", func() bool {
		return len(peers.peer("subscriber").offers()) == 2
	})
	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	want := []string{"create", "attach", "join publisher", "publish", "attach", "join subscriber", "start", "subscribe", "start", "leave", "detach", "detach", "destroy"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
}

func TestHTTPErrors(t *testing.T) {
	noLeaks(t)
	t.Run("huge poll", func(t *testing.T) {
		f := newFakeJanus(t)
		p, _, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.httpURL("room=1234"))
		f.conn().sendRaw([]byte(`{"janus":"event","pad":"` + strings.Repeat("x", janus.MaxMessageSize) + `"}`))
		if err := waitDone(t, s); !errors.Is(err, janus.ErrMessageTooLarge) {
			t.Errorf("Err = %v", err)
		}
	})
	t.Run("wrong endpoint", func(t *testing.T) {
		f := newFakeJanus(t)
		p, _, _ := newFakeProvider(t, janus.Config{})
		raw := "janus+http://" + strings.TrimPrefix(f.srv.URL, "http://") + "/nothing?room=1"
		if err := joinErr(t, p, raw); !errors.Is(err, janus.ErrClosed) || !strings.Contains(err.Error(), "404") {
			t.Errorf("err = %v", err)
		}
	})
}
