package janus_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
)

// ICE restarts against the fake Janus: what each handle sends, and when a
// failure ends the session after all.

func TestICERestartPublisher(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, peers, log := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	pub := peers.peer("publisher")
	pub.state <- meeting.PeerState{Connected: true}
	pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}

	cfg := f.waitFor(t, "configure")
	if cfg.HandleID != f.conn().handle(0) {
		t.Errorf("configure on handle %d, want the publisher's %d", cfg.HandleID, f.conn().handle(0))
	}
	if !reflect.DeepEqual(cfg.Body, map[string]any{"request": "configure"}) {
		t.Errorf("configure body = %v", cfg.Body)
	}
	if cfg.JSEP == nil || cfg.JSEP.Type != "offer" || cfg.JSEP.SDP != "fake-restart-offer-1-from-publisher" || cfg.JSEP.Trickle == nil || *cfg.JSEP.Trickle {
		t.Errorf("configure jsep = %+v, want the ICE restart offer with trickle false", cfg.JSEP)
	}
	eventually(t, 5*time.Second, "the publisher to accept the restart answer", func() bool {
		return reflect.DeepEqual(pub.accepts(), []string{"fake-answer", "fake-restart-answer"})
	})
	want := []string{"create", "attach", "join publisher", "publish", "configure"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}

	// A second Failed before any other state is the same failure, not a
	// new one; then the peer comes back.
	pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
	pub.state <- meeting.PeerState{Connected: true}
	eventually(t, 5*time.Second, "the reconnection to be logged", func() bool {
		return log.has("ICE restart reconnected", "peer=publisher")
	})
	if !log.has("restarting ICE", "peer=publisher", "reason=ICE failed") {
		t.Errorf("the restart attempt was not logged:\n%s", log)
	}
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}
	if n := len(f.find("configure")); n != 1 {
		t.Errorf("%d configure requests, want 1", n)
	}
}

func TestICERestartSubscriber(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.publishers = []map[string]any{remote(7, "Remote")}
	p, peers, log := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	f.waitFor(t, "start")
	sub := peers.peer("subscriber")
	sub.state <- meeting.PeerState{Connected: true}
	sub.state <- meeting.PeerState{Failed: true, Reason: "DTLS handshake failed"}

	eventually(t, 5*time.Second, "a second start", func() bool { return len(f.find("start")) == 2 })
	want := []string{"create", "attach", "join publisher", "publish", "attach", "join subscriber", "start", "configure", "start"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
	cfg := f.find("configure")[0]
	if cfg.HandleID != f.conn().handle(1) {
		t.Errorf("configure on handle %d, want the subscriber's %d", cfg.HandleID, f.conn().handle(1))
	}
	if !reflect.DeepEqual(cfg.Body, map[string]any{"request": "configure", "restart": true}) || cfg.JSEP != nil {
		t.Errorf("configure = %v jsep %+v, want restart without jsep", cfg.Body, cfg.JSEP)
	}
	start := f.find("start")[1]
	if start.HandleID != f.conn().handle(1) || start.JSEP == nil || start.JSEP.Type != "answer" || start.JSEP.SDP != "fake-answer-2" {
		t.Errorf("start after the restart = handle %d jsep %+v", start.HandleID, start.JSEP)
	}
	if got := sub.offers(); !reflect.DeepEqual(got, []string{"fake-offer-1", "fake-offer-2"}) {
		t.Errorf("subscriber answered %v", got)
	}
	if sub.restarts != 0 {
		t.Error("the subscriber peer made an offer: Janus offers")
	}
	sub.state <- meeting.PeerState{Connected: true}
	eventually(t, 5*time.Second, "the reconnection to be logged", func() bool {
		return log.has("ICE restart reconnected", "peer=subscriber")
	})
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}
}

func TestICERestartFails(t *testing.T) {
	t.Run("fails again", func(t *testing.T) {
		noLeaks(t)
		f := newFakeJanus(t)
		p, peers, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		pub := peers.peer("publisher")
		pub.state <- meeting.PeerState{Connected: true}
		pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		f.waitFor(t, "configure")
		pub.state <- meeting.PeerState{Connected: true}
		pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		err := waitDone(t, s)
		if !errors.Is(err, janus.ErrMediaFailed) || !strings.Contains(err.Error(), "publisher: ICE restart failed: ICE failed") {
			t.Errorf("Err = %v", err)
		}
		if n := len(f.find("configure")); n != 1 {
			t.Errorf("%d configure requests, want 1", n)
		}
		f.waitFor(t, "destroy")
	})

	t.Run("no restart offer", func(t *testing.T) {
		noLeaks(t)
		f := newFakeJanus(t)
		p, peers, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		pub := peers.peer("publisher")
		pub.mu.Lock()
		pub.restartErr = errors.New("peer closed")
		pub.mu.Unlock()
		pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		err := waitDone(t, s)
		if !errors.Is(err, janus.ErrMediaFailed) || !strings.Contains(err.Error(), "ICE failed; ICE restart failed") || !strings.Contains(err.Error(), "peer closed") {
			t.Errorf("Err = %v", err)
		}
	})

	t.Run("janus refuses", func(t *testing.T) {
		noLeaks(t)
		f := newFakeJanus(t)
		f.publishers = []map[string]any{remote(7, "Remote")}
		f.setHandler(func(c *fakeConn, r fakeRequest) bool {
			if r.name() != "configure" {
				return false
			}
			c.ack(r)
			c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": 424, "error": "Invalid element"}, nil)
			return true
		})
		p, peers, _ := newFakeProvider(t, janus.Config{})
		s := join(t, p, f.wsURL("room=1234"))
		f.waitFor(t, "start")
		peers.peer("subscriber").state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
		err := waitDone(t, s)
		if !errors.Is(err, janus.ErrMediaFailed) || !strings.Contains(err.Error(), "subscriber: ICE failed; ICE restart failed") || !strings.Contains(err.Error(), "424") {
			t.Errorf("Err = %v", err)
		}
	})
}

func TestRestartICEOnRequest(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.publishers = []map[string]any{remote(7, "Remote")}
	p, peers, log := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	f.waitFor(t, "start")

	if err := s.RestartICE(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	want := []string{"create", "attach", "join publisher", "publish", "attach", "join subscriber", "start", "configure", "configure", "start"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
	cfgs := f.find("configure")
	if cfgs[0].HandleID != f.conn().handle(0) || cfgs[0].JSEP == nil || cfgs[0].JSEP.SDP != "fake-restart-offer-1-from-publisher" {
		t.Errorf("first configure = handle %d jsep %+v, want the publisher's restart offer", cfgs[0].HandleID, cfgs[0].JSEP)
	}
	if cfgs[1].HandleID != f.conn().handle(1) || !reflect.DeepEqual(cfgs[1].Body, map[string]any{"request": "configure", "restart": true}) {
		t.Errorf("second configure = handle %d %v, want restart on the subscriber", cfgs[1].HandleID, cfgs[1].Body)
	}
	if got := peers.peer("publisher").accepts(); !reflect.DeepEqual(got, []string{"fake-answer", "fake-restart-answer"}) {
		t.Errorf("publisher accepted %v", got)
	}
	if got := peers.peer("subscriber").offers(); !reflect.DeepEqual(got, []string{"fake-offer-1", "fake-offer-2"}) {
		t.Errorf("subscriber answered %v", got)
	}
	if !log.has("ICE restart on request negotiated") {
		t.Errorf("the restart was not logged:\n%s", log)
	}

	// A requested restart is not the failed peer's restart: a failure
	// afterwards still gets one.
	pub := peers.peer("publisher")
	pub.state <- meeting.PeerState{Failed: true, Reason: "ICE failed"}
	eventually(t, 5*time.Second, "a restart after the failure", func() bool { return len(f.find("configure")) == 3 })
	select {
	case <-s.Done():
		t.Fatalf("the session ended: %v", s.Err())
	default:
	}
}

func TestRestartICEOnRequestWithoutSubscription(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	if err := s.RestartICE(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	want := []string{"create", "attach", "join publisher", "publish", "configure"}
	if got := f.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
}

func TestRestartICEOnRequestRefused(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() != "configure" {
			return false
		}
		c.ack(r)
		c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": 424, "error": "Invalid element"}, nil)
		return true
	})
	p, _, _ := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	err := s.RestartICE(testContext(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "publisher") || !strings.Contains(err.Error(), "424") {
		t.Errorf("RestartICE = %v, want Janus's refusal for the publisher", err)
	}
	select {
	case <-s.Done():
		t.Fatalf("a refused restart ended the session: %v", s.Err())
	default:
	}

	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.RestartICE(testContext(t, 5*time.Second)); !errors.Is(err, janus.ErrClosed) {
		t.Errorf("RestartICE after Leave = %v, want ErrClosed", err)
	}
}
