package videofeed

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/hal"
)

// fakeClock hands out timers that fire when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	tickers []*fakeTimer
	timers  []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	c       chan time.Time
	stopped atomic.Bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop()               { t.stopped.Store(true) }

// fire delivers one tick (it never blocks: a tick not taken yet stands).
func (t *fakeTimer) fire() {
	select {
	case t.c <- time.Now():
	default:
	}
}

func (c *fakeClock) NewTicker(d time.Duration) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	c.tickers = append(c.tickers, t)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) counts() (tickers, timers int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tickers), len(c.timers)
}

func (c *fakeClock) ticker(i int) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tickers[i]
}

func (c *fakeClock) timer(i int) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timers[i]
}

// newOptsFeed is newTestFeed with Options and a fake clock.
func newOptsFeed(t *testing.T, opts Options, clk *fakeClock) (*Feed, *httptest.Server) {
	t.Helper()
	opts.Logger = testLogger(t)
	f := newFeed(opts, clk)
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(func() {
		_ = f.Close()
		srv.Close()
	})
	return f, srv
}

// viewLog records OnView calls.
type viewLog struct {
	mu    sync.Mutex
	calls [][]View
}

func (l *viewLog) onView(v []View) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, v)
}

func (l *viewLog) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// last renders the latest call as "id WxH" items; "nil" for nil.
func (l *viewLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == 0 {
		return "no call"
	}
	v := l.calls[len(l.calls)-1]
	if v == nil {
		return "nil"
	}
	var parts []string
	for _, x := range v {
		parts = append(parts, fmt.Sprintf("%s/%s %dx%d", x.Track.PeerLabel, x.Track.ID, x.Width, x.Height))
	}
	return strings.Join(parts, ", ")
}

// TestDescribe checks the track objects: Describe's participant, name and
// kind, the defaults, local tracks as "self", Describe called for new
// tracks and keyframes only, and a track whose description changes coming
// back as a new track.
func TestDescribe(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	var (
		mu    sync.Mutex
		calls int
		metas = map[string]TrackMeta{
			"cam":    {Participant: "1001", Display: "Alice", Kind: KindCamera},
			"screen": {Participant: "1001", Display: "Alice", Kind: KindScreen},
			// The glue says camera, but a local track is always the self-view.
			"publisher": {Kind: KindCamera},
		}
	)
	describe := func(info rtc.TrackInfo) TrackMeta {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return metas[info.ID]
	}
	f, srv := newOptsFeed(t, Options{Describe: describe}, &fakeClock{})
	c := connect(t, ctx, srv)
	c.control(ctx)

	cam := newFakeTrack("subscriber", "cam", "janus", hal.CodecVP8)
	screen := newFakeTrack("subscriber", "screen", "janus", hal.CodecVP8)
	unknown := newFakeTrack("subscriber", "other", "stream-x", hal.CodecVP8)
	self := newFakeTrack(rtc.LocalPeerLabel, "publisher", "atrium", hal.CodecVP8)
	for i, ft := range []*fakeTrack{cam, screen, unknown, self} {
		write(t, f, ft, 0, true)
		got := c.control(ctx)
		delete(got, "type")
		want := []map[string]any{
			{"n": 1.0, "id": "cam", "participant": "1001", "display": "Alice", "kind": "camera", "peer": "subscriber", "codec": "VP8"},
			{"n": 2.0, "id": "screen", "participant": "1001", "display": "Alice", "kind": "screen", "peer": "subscriber", "codec": "VP8"},
			{"n": 3.0, "id": "other", "participant": "stream-x", "display": "", "kind": "camera", "peer": "subscriber", "codec": "VP8"},
			{"n": 4.0, "id": "publisher", "participant": "atrium", "display": "", "kind": "self", "peer": "local", "codec": "VP8"},
		}[i]
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("track %d:\n got %v\nwant %v", i, got, want)
		}
		c.frame(ctx)
	}
	mu.Lock()
	before := calls
	mu.Unlock()
	for seq := 1; seq <= 5; seq++ {
		write(t, f, cam, seq, false)
		c.frame(ctx)
	}
	write(t, f, cam, 6, true)
	c.frame(ctx)
	mu.Lock()
	if calls != before+1 {
		t.Errorf("Describe called %d times for 5 deltas and a keyframe, want 1", calls-before)
	}
	// The mid went to another participant: at its next keyframe the track
	// is a new one.
	metas["cam"] = TrackMeta{Participant: "2002", Display: "Bob"}
	mu.Unlock()
	write(t, f, cam, 7, false)
	if g := c.frame(ctx); g.n != 1 {
		t.Fatalf("got %s, want track 1's delta", g)
	}
	write(t, f, cam, 8, true)
	if got := c.control(ctx); got["type"] != "track-removed" || got["n"] != 1.0 {
		t.Fatalf("got %v, want track 1 removed", got)
	}
	if got := c.control(ctx); got["type"] != "track-added" || got["n"] != 5.0 || got["participant"] != "2002" || got["display"] != "Bob" || got["kind"] != "camera" {
		t.Fatalf("got %v, want track 5 of Bob added", got)
	}
	if g := c.frame(ctx); g.n != 5 || g.seq() != 8 {
		t.Fatalf("got %s, want track 5's keyframe 8", g)
	}
}

// TestView checks what OnView gets: nil with no view, the largest size
// over two clients, 0x0 for what nobody shows, a change when a client
// leaves or goes back to subscribe, debounced and only when it changed;
// and that a view subscribes the client to the tracks it lists.
func TestView(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	clk := &fakeClock{}
	views := &viewLog{}
	f, srv := newOptsFeed(t, Options{OnView: views.onView}, clk)
	a := newFakeTrack("subscriber", "a", "alice", hal.CodecVP8)
	b := newFakeTrack("subscriber", "b", "bob", hal.CodecVP8)
	self := newFakeTrack(rtc.LocalPeerLabel, "publisher", "atrium", hal.CodecVP8)
	for _, ft := range []*fakeTrack{a, b, self} {
		write(t, f, ft, 0, true)
	}

	// debounce fires the i-th debounce timer, which must exist, and waits
	// for the loop to take it.
	debounce := func(i int) {
		t.Helper()
		waitFor(t, ctx, fmt.Sprintf("debounce timer %d", i), func() bool { _, n := clk.counts(); return n > i })
		tm := clk.timer(i)
		if tm.d != ViewDebounce {
			t.Fatalf("debounce timer of %s", tm.d)
		}
		tm.fire()
		waitFor(t, ctx, "the debounce timer taken", func() bool { return tm.stopped.Load() })
	}
	expect := func(want string, calls int) {
		t.Helper()
		waitFor(t, ctx, fmt.Sprintf("OnView call %d", calls), func() bool { return views.n() >= calls })
		time.Sleep(20 * time.Millisecond)
		if n := views.n(); n != calls {
			t.Fatalf("%d OnView calls, want %d", n, calls)
		}
		if got := views.last(); got != want {
			t.Fatalf("OnView got %q, want %q", got, want)
		}
	}

	// Tracks came, nobody shows anything: no preference.
	debounce(0)
	expect("nil", 1)

	c1 := connect(t, ctx, srv)
	c2 := connect(t, ctx, srv)
	c1.control(ctx)
	c2.control(ctx)
	waitClients(t, ctx, f, 2)
	c1.send(ctx, `{"type":"view","tracks":[{"n":1,"width":640,"height":360}]}`)
	c2.send(ctx, `{"type":"view","tracks":[{"n":1,"width":1280,"height":720},{"n":2,"width":320,"height":180}]}`)
	waitFor(t, ctx, "both views", func() bool {
		st := f.Stats()
		return len(st[0].View) == 1 && len(st[1].View) == 2
	})
	// Several changes, one timer, no call before it fires.
	if _, n := clk.counts(); n != 2 {
		t.Fatalf("%d debounce timers for one burst of changes, want 1 more", n-1)
	}
	if views.n() != 1 {
		t.Fatal("OnView called before the debounce timer fired")
	}
	debounce(1)
	expect("subscriber/a 1280x720, subscriber/b 320x180, local/publisher 0x0", 2)
	if st := f.Stats(); !reflect.DeepEqual(st[1].View, []TrackView{{1, 1280, 720}, {2, 320, 180}}) || !reflect.DeepEqual(st[1].Tracks, []uint16{1, 2}) {
		t.Fatalf("client 2's stats: %+v", st[1])
	}

	// The same view again: no call.
	c1.send(ctx, `{"type":"view","tracks":[{"n":1,"width":640,"height":360}]}`)
	debounce(2)
	time.Sleep(50 * time.Millisecond)
	if views.n() != 2 {
		t.Fatalf("OnView called for an unchanged view: %s", views.last())
	}

	// A view subscribes: c1 gets a's frames, not b's.
	write(t, f, b, 1, true)
	write(t, f, a, 1, true)
	if g := c1.frame(ctx); g.n != 1 || g.seq() != 1 {
		t.Fatalf("c1 got %s, want track 1's keyframe 1", g)
	}

	// c2 leaves: only c1's view counts.
	c2.close()
	waitClients(t, ctx, f, 1)
	debounce(3)
	expect("subscriber/a 640x360, subscriber/b 0x0, local/publisher 0x0", 3)

	// A track added: left out (nobody said yet whether it is shown) until
	// the viewing client sends a view again; then in the list, unshown.
	d := newFakeTrack("subscriber", "d", "dave", hal.CodecVP8)
	write(t, f, d, 0, true)
	debounce(4)
	time.Sleep(50 * time.Millisecond)
	if views.n() != 3 {
		t.Fatalf("OnView called for a track no view knew of: %s", views.last())
	}
	c1.send(ctx, `{"type":"view","tracks":[{"n":1,"width":640,"height":360}]}`)
	debounce(5)
	expect("subscriber/a 640x360, subscriber/b 0x0, local/publisher 0x0, subscriber/d 0x0", 4)

	// c1 goes back to subscribe: no client has a view.
	c1.send(ctx, `{"type":"subscribe","tracks":[1]}`)
	debounce(6)
	expect("nil", 5)
}

// TestViewWithoutClients checks that OnView goes back to nil when the
// last viewing client leaves, and that it is never called under the
// Feed's lock (it calls the Feed).
func TestViewWithoutClients(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	clk := &fakeClock{}
	views := &viewLog{}
	var f *Feed
	var statsSeen atomic.Int32
	f, srv := newOptsFeed(t, Options{OnView: func(v []View) {
		f.Stats() // deadlocks if called under the lock
		statsSeen.Add(1)
		views.onView(v)
	}}, clk)
	a := newFakeTrack("subscriber", "a", "alice", hal.CodecVP8)
	write(t, f, a, 0, true)
	c := connect(t, ctx, srv)
	c.control(ctx)
	c.send(ctx, `{"type":"view","tracks":[{"n":1,"width":320,"height":180}]}`)
	waitFor(t, ctx, "the view", func() bool { return len(f.Stats()[0].View) == 1 })
	waitFor(t, ctx, "a debounce timer", func() bool { _, n := clk.counts(); return n >= 1 })
	clk.timer(0).fire()
	waitFor(t, ctx, "the view delivered", func() bool { return views.last() == "subscriber/a 320x180" })
	c.close()
	waitClients(t, ctx, f, 0)
	waitFor(t, ctx, "a debounce timer", func() bool { _, n := clk.counts(); return n >= 2 })
	clk.timer(1).fire()
	waitFor(t, ctx, "no preference", func() bool { return views.last() == "nil" })
	if statsSeen.Load() != 2 {
		t.Fatalf("%d calls", statsSeen.Load())
	}
}

// TestLevels checks the levels messages: a ticker of LevelsInterval only
// while a client is connected, one message per tick to every client, the
// values rounded to 0.1 dB and numbers JSON cannot carry left out.
func TestLevels(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	clk := &fakeClock{}
	var calls atomic.Int32
	levels := func() map[string]float64 {
		calls.Add(1)
		return map[string]float64{"1001": -23.54, "2002": -127, "3003": math.NaN(), "4004": math.Inf(-1)}
	}
	f, srv := newOptsFeed(t, Options{Levels: levels}, clk)
	time.Sleep(50 * time.Millisecond)
	if n, _ := clk.counts(); n != 0 {
		t.Fatalf("%d tickers with no client", n)
	}

	c1 := connect(t, ctx, srv)
	c2 := connect(t, ctx, srv)
	c1.control(ctx)
	c2.control(ctx)
	waitClients(t, ctx, f, 2)
	waitFor(t, ctx, "a ticker", func() bool { n, _ := clk.counts(); return n == 1 })
	tk := clk.ticker(0)
	if tk.d != LevelsInterval {
		t.Fatalf("ticker of %s, want %s", tk.d, LevelsInterval)
	}
	if calls.Load() != 0 {
		t.Fatal("Levels called before a tick")
	}
	want := map[string]any{"type": "levels", "levels": map[string]any{"1001": -23.5, "2002": -127.0}}
	for i := range 3 {
		tk.fire()
		for _, c := range []*wsClient{c1, c2} {
			if got := c.control(ctx); !reflect.DeepEqual(got, want) {
				t.Fatalf("tick %d: got %v, want %v", i, got, want)
			}
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("Levels called %d times for 3 ticks", n)
	}
	// The raw message, as a page parses it.
	tk.fire()
	m := c1.next(ctx)
	var raw struct {
		Type   string             `json:"type"`
		Levels map[string]float64 `json:"levels"`
	}
	if err := json.Unmarshal(m.data, &raw); err != nil || raw.Levels["1001"] != -23.5 {
		t.Fatalf("levels message %s: %v", m.data, err)
	}
	c2.next(ctx)

	// The ticker stops with the last client, and a new client starts one.
	c1.close()
	c2.close()
	waitClients(t, ctx, f, 0)
	waitFor(t, ctx, "the ticker stopped", tk.stopped.Load)
	c3 := connect(t, ctx, srv)
	c3.control(ctx)
	waitFor(t, ctx, "a new ticker", func() bool { n, _ := clk.counts(); return n == 2 })
	clk.ticker(1).fire()
	if got := c3.control(ctx); got["type"] != "levels" {
		t.Fatalf("got %v, want levels", got)
	}
}

// TestRealClockLevels checks the real cadence: about four levels messages
// a second.
func TestRealClockLevels(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f := NewWithOptions(Options{Logger: testLogger(t), Levels: func() map[string]float64 { return map[string]float64{"7": -30} }})
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(func() {
		_ = f.Close()
		srv.Close()
	})
	c := connect(t, ctx, srv)
	c.control(ctx)
	start := time.Now()
	for range 4 {
		if got := c.control(ctx); got["type"] != "levels" {
			t.Fatalf("got %v", got)
		}
	}
	if d := time.Since(start); d < 3*LevelsInterval-50*time.Millisecond || d > 8*LevelsInterval {
		t.Errorf("4 levels messages in %s, want about %s", d, 4*LevelsInterval)
	}
}
