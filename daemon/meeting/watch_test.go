package meeting

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// clock is a hand-moved clock for the media watch.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestWatchMedia(t *testing.T) {
	p := &fakeProvider{name: "web", scheme: "https"}
	h := newHarness(p)
	clk := &clock{t: epoch}
	h.e.now = clk.now
	h.run(t)
	if _, err := h.e.Join(ctxT(t), "https://meet.example.com/r"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	last := &clock{} // when media last arrived
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.e.WatchMedia(ctx, last.now, 10*time.Second, tick)
	}()
	step := func(d time.Duration, media bool) apiv1.Meeting {
		clk.add(d)
		if media {
			last.mu.Lock()
			last.t = clk.now()
			last.mu.Unlock()
		}
		tick <- clk.now()
		tick <- clk.now() // the second send returns after the first check is done
		return h.e.State()
	}

	// No media yet: measured from connecting.
	if m := step(4*time.Second, false); m.State != apiv1.MeetingConnected {
		t.Fatalf("after 4 s: %+v", m)
	}
	if m := step(2*time.Second, false); m.State != apiv1.MeetingReconnecting || !strings.Contains(m.Reason, "no media for 6s") {
		t.Fatalf("after 6 s without media: %+v, want reconnecting", m)
	}
	if m := step(time.Second, true); m.State != apiv1.MeetingConnected {
		t.Fatalf("media came back: %+v, want connected", m)
	}
	if m := step(5*time.Second, false); m.State != apiv1.MeetingReconnecting {
		t.Fatalf("5 s silent again: %+v", m)
	}
	m := step(5*time.Second, false)
	if m.State != apiv1.MeetingFailed || !strings.Contains(m.Reason, "no media from the meeting for 10s") {
		t.Fatalf("10 s silent: %+v, want failed", m)
	}
	if n := p.session(t, 0).leaveCount(); n != 1 {
		t.Errorf("session left %d times, want 1", n)
	}
	if h.e.Session() != nil {
		t.Error("a failed session is still current")
	}
	// Idle: nothing more happens.
	if m := step(time.Minute, false); m.State != apiv1.MeetingFailed {
		t.Errorf("idle engine changed: %+v", m)
	}
	cancel()
	<-done
	want := []apiv1.MeetingState{apiv1.MeetingJoining, apiv1.MeetingConnected, apiv1.MeetingReconnecting,
		apiv1.MeetingConnected, apiv1.MeetingReconnecting, apiv1.MeetingFailed}
	if got := h.rec.kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
}

// restartingSession is a fake session that counts ICE restarts.
type restartingSession struct {
	*fakeSession
	mu       sync.Mutex
	restarts int
}

func (r *restartingSession) RestartICE(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts++
	return nil
}

func (r *restartingSession) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts
}

func TestWatchMediaRestartsOncePerSilence(t *testing.T) {
	clk := &clock{t: epoch}
	e := NewEngine(slog.New(slog.DiscardHandler), clk.now, nil)
	sess := &restartingSession{fakeSession: &fakeSession{done: make(chan struct{})}}
	e.mu.Lock()
	e.session, e.connectedAt = sess, clk.now()
	e.state = apiv1.Meeting{State: apiv1.MeetingConnected, Since: clk.now()}
	e.mu.Unlock()

	ctx := context.Background()
	last := clk.now()
	check := func(d time.Duration, media bool) {
		clk.add(d)
		if media {
			last = clk.now()
		}
		e.checkMedia(ctx, last, 10*time.Second)
	}
	check(6*time.Second, false) // silent: reconnecting, one restart
	check(time.Second, false)   // still silent: no second restart
	if n := sess.count(); n != 1 {
		t.Fatalf("%d restarts in one silent spell, want 1", n)
	}
	check(time.Second, true) // media back: connected
	if st := e.State().State; st != apiv1.MeetingConnected {
		t.Fatalf("state %s after media came back", st)
	}
	check(6*time.Second, false) // a new silent spell: one more restart
	if n := sess.count(); n != 2 {
		t.Fatalf("%d restarts after two silent spells, want 2", n)
	}
}
