package videofeed

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/hal"
)

// TestProtocol follows one client through the life of two tracks: the
// track list, track-added, frames with every header field, track-removed.
func TestProtocol(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f, srv := newTestFeed(t, nil)

	c := connect(t, ctx, srv)
	if got := c.control(ctx); !reflect.DeepEqual(got, map[string]any{"type": "tracks", "tracks": []any{}}) {
		t.Fatalf("first message %v, want an empty tracks list", got)
	}
	waitClients(t, ctx, f, 1)

	cam := newFakeTrack("sfu", "video-a", "stream-alice", hal.CodecVP8)
	frame := hal.EncodedFrame{
		Codec: hal.CodecVP8, Data: []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, Keyframe: true,
		CapturedAt: time.Unix(1_700_000_000, 123_456_789), Duration: 33_366_999 * time.Nanosecond,
	}
	if err := f.WriteVideo(cam.info, frame); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "track-added", "n": 1.0, "id": "video-a", "participant": "stream-alice", "display": "", "kind": "camera", "peer": "sfu", "codec": "VP8"}
	if got := c.control(ctx); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	m := c.next(ctx)
	if m.typ != websocket.MessageBinary {
		t.Fatalf("got %s, want a frame", m.data)
	}
	wantBytes := []byte{
		1,    // version
		0x01, // keyframe
		0, 1, // track 1
		0, 0x06, 0x0a, 0x24, 0x18, 0x20, 0x22, 0x40, // 1_700_000_000_123_456 µs
		0, 0, 0x82, 0x56, // 33_366 µs
		0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a,
	}
	if binary.BigEndian.Uint64(wantBytes[4:12]) != 1_700_000_000_123_456 {
		t.Fatal("test's expected capture time is wrong")
	}
	if !bytes.Equal(m.data, wantBytes) {
		t.Fatalf("frame message\n got % x\nwant % x", m.data, wantBytes)
	}

	// A delta with no capture time or duration.
	if err := f.WriteVideo(cam.info, hal.EncodedFrame{Codec: hal.CodecVP8, Data: []byte{0x31, 0x02}}); err != nil {
		t.Fatal(err)
	}
	if m := c.next(ctx); !bytes.Equal(m.data, []byte{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x31, 0x02}) {
		t.Fatalf("delta message % x", m.data)
	}

	// A second track, on another peer with the same track ID; then a
	// second client sees both in its list.
	screen := newFakeTrack("screenshare", "video-a", "stream-bob", hal.CodecH264)
	write(t, f, screen, 0, true)
	if got := c.control(ctx); got["type"] != "track-added" || got["n"] != 2.0 || got["codec"] != "H264" || got["peer"] != "screenshare" {
		t.Fatalf("second track-added: %v", got)
	}
	if g := c.frame(ctx); g.n != 2 || !g.key() || g.seq() != 0 || g.version != ProtocolVersion {
		t.Fatalf("got %s, want the second track's keyframe", g)
	}
	c2 := connect(t, ctx, srv)
	got := c2.control(ctx)
	want = map[string]any{"type": "tracks", "tracks": []any{
		map[string]any{"n": 1.0, "id": "video-a", "participant": "stream-alice", "display": "", "kind": "camera", "peer": "sfu", "codec": "VP8"},
		map[string]any{"n": 2.0, "id": "video-a", "participant": "stream-bob", "display": "", "kind": "camera", "peer": "screenshare", "codec": "H264"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second client's tracks:\n got %v\nwant %v", got, want)
	}

	f.RemoveTrack(cam.info)
	want = map[string]any{"type": "track-removed", "n": 1.0, "id": "video-a"}
	for _, cl := range []*wsClient{c, c2} {
		if got := cl.control(ctx); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	f.RemoveTrack(cam.info) // again: nothing to tell

	// The track comes back: a new number, never 1 again soon.
	write(t, f, cam, 10, true)
	for _, cl := range []*wsClient{c, c2} {
		if got := cl.control(ctx); got["type"] != "track-added" || got["n"] != 3.0 {
			t.Fatalf("track back: %v", got)
		}
		if g := cl.frame(ctx); g.n != 3 || g.seq() != 10 {
			t.Fatalf("got %s, want track 3's frame 10", g)
		}
	}
	// A codec change makes it a new track.
	cam.info.Codec = hal.CodecH264
	write(t, f, cam, 11, true)
	if got := c.control(ctx); got["type"] != "track-removed" || got["n"] != 3.0 {
		t.Fatalf("codec change: %v", got)
	}
	if got := c.control(ctx); got["type"] != "track-added" || got["n"] != 4.0 || got["codec"] != "H264" {
		t.Fatalf("codec change: %v", got)
	}
	if g := c.frame(ctx); g.n != 4 || g.seq() != 11 {
		t.Fatalf("got %s, want track 4's frame 11", g)
	}
}

// TestNewClientStartsAtKeyframe checks that a client joining a running
// track gets a keyframe requested and nothing before it.
func TestNewClientStartsAtKeyframe(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f, srv := newTestFeed(t, nil)
	cam := newFakeTrack("sfu", "cam", "alice", hal.CodecVP8)
	write(t, f, cam, 0, true)
	write(t, f, cam, 1, false)
	if n := len(cam.requests()); n != 0 {
		t.Fatalf("%d keyframe requests with no client", n)
	}

	c := connect(t, ctx, srv)
	if got := c.control(ctx); got["type"] != "tracks" || len(got["tracks"].([]any)) != 1 {
		t.Fatalf("got %v, want one track", got)
	}
	waitFor(t, ctx, "a keyframe request", func() bool { return len(cam.requests()) == 1 })
	for seq := 2; seq < 6; seq++ {
		write(t, f, cam, seq, false)
	}
	for seq := 6; seq < 9; seq++ {
		write(t, f, cam, seq, seq == 6)
	}
	for seq := 6; seq < 9; seq++ {
		if g := c.frame(ctx); g.seq() != seq || g.key() != (seq == 6) {
			t.Fatalf("got %s, want frame %d", g, seq)
		}
	}
	st := f.Stats()
	if len(st) != 1 || st[0].FramesDropped != 4 || st[0].KeyframeRequests < 1 || st[0].ID != 1 || st[0].Tracks != nil {
		t.Fatalf("stats %+v", st)
	}
	waitFor(t, ctx, "sent frames counted", func() bool {
		st := f.Stats()
		return st[0].FramesSent == 3 && st[0].BytesSent == 3*(HeaderSize+frameSize)
	})
}

// TestSubscribe checks that a client receives the tracks it subscribed to,
// each from a keyframe on.
func TestSubscribe(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f, srv := newTestFeed(t, nil)
	a := newFakeTrack("sfu", "a", "alice", hal.CodecVP8)
	b := newFakeTrack("sfu", "b", "bob", hal.CodecVP8)
	write(t, f, a, 0, true)
	write(t, f, b, 0, true)

	c := connect(t, ctx, srv)
	c.control(ctx)
	waitClients(t, ctx, f, 1)
	subscribe := func(msg string, want []uint16) {
		t.Helper()
		c.send(ctx, msg)
		waitFor(t, ctx, msg, func() bool { return reflect.DeepEqual(f.Stats()[0].Tracks, want) })
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if g := c.frame(ctx); g.String() != w {
				t.Fatalf("got %s, want %s", g, w)
			}
		}
	}

	subscribe(`{"type":"subscribe","tracks":[1]}`, []uint16{1})
	write(t, f, b, 1, true)
	write(t, f, a, 1, true)
	write(t, f, b, 2, false)
	write(t, f, a, 2, false)
	expect("track 1 key 1", "track 1 delta 2")

	// Switching to b asks for a keyframe and waits for it.
	requests := len(b.requests())
	subscribe(`{"type":"subscribe","tracks":[2, 2]}`, []uint16{2})
	waitFor(t, ctx, "a keyframe request for b", func() bool { return len(b.requests()) > requests })
	write(t, f, a, 3, false)
	write(t, f, b, 3, false)
	write(t, f, b, 4, true)
	write(t, f, a, 4, false)
	write(t, f, b, 5, false)
	expect("track 2 key 4", "track 2 delta 5")

	// A track added now is announced but not sent.
	d := newFakeTrack("sfu", "d", "dave", hal.CodecVP8)
	write(t, f, d, 0, true)
	if got := c.control(ctx); got["type"] != "track-added" || got["n"] != 3.0 {
		t.Fatalf("got %v, want track 3 added", got)
	}

	// null: everything, each newly subscribed track from a keyframe.
	subscribe(`{"type":"subscribe","tracks":null}`, nil)
	write(t, f, a, 5, false)
	write(t, f, d, 1, false)
	write(t, f, b, 6, false)
	write(t, f, a, 6, true)
	write(t, f, d, 2, true)
	expect("track 2 delta 6", "track 1 key 6", "track 3 key 2")

	// []: nothing; unknown numbers are ignored.
	subscribe(`{"type":"subscribe","tracks":[]}`, []uint16{})
	subscribe(`{"type":"subscribe","tracks":[99]}`, []uint16{})
	write(t, f, a, 7, true)
	write(t, f, b, 7, true)
	subscribe(`{"type":"subscribe"}`, nil)
	write(t, f, b, 8, true)
	expect("track 2 key 8")

	// A removed track leaves the subscription.
	subscribe(`{"type":"subscribe","tracks":[1,3]}`, []uint16{1, 3})
	f.RemoveTrack(d.info)
	if got := c.control(ctx); got["type"] != "track-removed" || got["n"] != 3.0 {
		t.Fatalf("got %v, want track 3 removed", got)
	}
	waitFor(t, ctx, "track 3 unsubscribed", func() bool { return reflect.DeepEqual(f.Stats()[0].Tracks, []uint16{1}) })
}

// TestKeyframeMessage checks that keyframe messages reach RequestKeyframe
// at most once per track per KeyframeInterval across clients, that one
// asked for within the interval is sent when it ends unless a keyframe came
// meanwhile, and that the asking client waits for that keyframe.
func TestKeyframeMessage(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	f, srv := newTestFeed(t, nil)
	cam := newFakeTrack("sfu", "cam", "alice", hal.CodecVP8)
	write(t, f, cam, 0, true)
	a := connect(t, ctx, srv)
	b := connect(t, ctx, srv)
	a.control(ctx)
	b.control(ctx)
	waitClients(t, ctx, f, 2)
	waitFor(t, ctx, "the connect request", func() bool { return len(cam.requests()) == 1 })
	write(t, f, cam, 1, true) // also answers b's request, if it was pending
	a.frame(ctx)
	b.frame(ctx)

	settle := func() int {
		t.Helper()
		reqs := cam.requests()
		time.Sleep(time.Until(reqs[len(reqs)-1].Add(KeyframeInterval + 100*time.Millisecond)))
		return len(cam.requests())
	}
	n := settle()
	a.send(ctx, `{"type":"keyframe","track":1}`)
	waitFor(t, ctx, "a request", func() bool { return len(cam.requests()) == n+1 })
	// The others wait for the interval to end, and make one request.
	for range 3 {
		a.send(ctx, `{"type":"keyframe","track":1}`)
		b.send(ctx, `{"type":"keyframe","track":1}`)
	}
	waitFor(t, ctx, "the postponed request", func() bool { return len(cam.requests()) == n+2 })
	reqs := cam.requests()
	if gap := reqs[n+1].Sub(reqs[n]); gap < KeyframeInterval-20*time.Millisecond {
		t.Errorf("requests %s apart, want at least %s", gap, KeyframeInterval)
	}
	time.Sleep(KeyframeInterval + 200*time.Millisecond)
	if got := len(cam.requests()); got != n+2 {
		t.Fatalf("%d requests after seven messages, want 2", got-n)
	}
	waitFor(t, ctx, "stats", func() bool {
		st := f.Stats()
		return st[0].KeyframeRequests >= 4 && st[1].KeyframeRequests >= 3
	})
	// Both asked, so both get no more deltas before the keyframe.
	write(t, f, cam, 2, false)
	write(t, f, cam, 3, true)
	for _, c := range []*wsClient{a, b} {
		if g := c.frame(ctx); g.seq() != 3 {
			t.Fatalf("got %s, want the keyframe", g)
		}
	}

	// A keyframe within the interval answers a pending request; the
	// asking client gets no delta before it.
	a.send(ctx, `{"type":"keyframe","track":1}`)
	waitFor(t, ctx, "a request", func() bool { return len(cam.requests()) == n+3 })
	before := f.Stats()[0].KeyframeRequests
	a.send(ctx, `{"type":"keyframe","track":1}`)
	waitFor(t, ctx, "the second message", func() bool { return f.Stats()[0].KeyframeRequests > before })
	write(t, f, cam, 4, false)
	write(t, f, cam, 5, true)
	if g := a.frame(ctx); g.seq() != 5 {
		t.Fatalf("a got %s, want the keyframe", g)
	}
	for _, want := range []int{4, 5} {
		if g := b.frame(ctx); g.seq() != want {
			t.Fatalf("b got %s, want frame %d", g, want)
		}
	}
	time.Sleep(KeyframeInterval + 200*time.Millisecond)
	if got := len(cam.requests()); got != n+3 {
		t.Fatalf("%d requests, want %d: the keyframe should have answered the pending one", got-n, 3)
	}

	// Unknown tracks are ignored.
	a.send(ctx, `{"type":"keyframe","track":7}`)
	a.send(ctx, `{"type":"subscribe"}`)
	waitFor(t, ctx, "the messages handled", func() bool { return f.Stats()[0].Tracks == nil })
}

// TestStalledClient checks that a client that does not read never slows
// WriteVideo down, and that it gets frames again, from a keyframe, once it
// reads.
func TestStalledClient(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 60*time.Second)
	f, srv := newTestFeed(t, nil)
	cam := newFakeTrack("sfu", "cam", "alice", hal.CodecVP8)
	c := dial(t, ctx, srv)
	waitClients(t, ctx, f, 1)

	// 40 MB: more than the socket buffers and the queue hold.
	const frames, size = 10_000, 4096
	var worst, total time.Duration
	for seq := range frames {
		fr := testFrame(seq, seq == 0, size)
		start := time.Now()
		if err := f.WriteVideo(cam.info, fr); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	t.Logf("WriteVideo: %s for %d frames, at most %s", total, frames, worst)
	if worst > 250*time.Millisecond || total > 5*time.Second {
		t.Errorf("WriteVideo took up to %s (%s in all): it waits for the client", worst, total)
	}
	st := f.Stats()[0]
	if st.FramesDropped == 0 || st.Queued > QueueFrames+2 || st.KeyframeRequests < 2 {
		t.Fatalf("stats after stalling: %+v", st)
	}

	// Read again; keep sending keyframes and deltas until one arrives.
	c.start()
	if got := c.control(ctx); got["type"] != "tracks" {
		t.Fatalf("got %v, want the track list", got)
	}
	if got := c.control(ctx); got["type"] != "track-added" {
		t.Fatalf("got %v, want track-added", got)
	}
	var got []gotFrame
	seq := frames
	for {
		next := seq
		write(t, f, cam, seq, true)
		seq++
		for range 5 {
			write(t, f, cam, seq, false)
			seq++
		}
		// Drain what arrived.
		wait := time.After(20 * time.Millisecond)
	drain:
		for {
			select {
			case m := <-c.msgs:
				g := parseFrame(t, m.data)
				got = append(got, g)
			case <-wait:
				break drain
			case <-ctx.Done():
				t.Fatalf("no frame after resuming: %v", ctx.Err())
			}
		}
		if len(got) > 0 && got[len(got)-1].seq() >= frames && got[len(got)-1].seq() >= next+5 {
			break
		}
	}
	checkFrameOrder(t, map[uint16][]gotFrame{1: got})
	if got[0].seq() != 0 {
		t.Errorf("first frame %s, want 0", got[0])
	}
	var after []int
	for _, g := range got {
		if g.seq() >= frames {
			after = append(after, g.seq())
		}
	}
	if len(after) < 6 || !slices.IsSorted(after) {
		t.Errorf("frames after resuming: %v", after)
	}
	t.Logf("received %d frames; %d after resuming; stats %+v", len(got), len(after), f.Stats()[0])
}

// checkFrameOrder checks each track's frames: the first is a keyframe, and
// so is every frame after a gap.
func checkFrameOrder(t *testing.T, tracks map[uint16][]gotFrame) {
	t.Helper()
	for n, frames := range tracks {
		for i, g := range frames {
			if i == 0 && !g.key() {
				t.Errorf("track %d starts with %s", n, g)
			}
			if i > 0 && g.seq() != frames[i-1].seq()+1 && !g.key() {
				t.Errorf("track %d: %s after %s", n, g, frames[i-1])
			}
			if i > 0 && g.seq() <= frames[i-1].seq() {
				t.Errorf("track %d: %s after %s", n, g, frames[i-1])
			}
		}
	}
}

// TestConcurrentTracks feeds four tracks at once to a slow client with a
// short queue: frames are dropped, but each track still reaches it in order
// and from keyframes, and keyframe requests stay spaced.
func TestConcurrentTracks(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	f, srv := newTestFeed(t, func(f *Feed) { f.queueFrames = 4 })
	c := connect(t, ctx, srv)
	c.control(ctx)
	waitClients(t, ctx, f, 1)

	const tracks, frames = 4, 300
	fts := make([]*fakeTrack, tracks)
	for i := range fts {
		fts[i] = newFakeTrack("sfu", string(rune('a'+i)), "p", hal.CodecVP8)
		write(t, f, fts[i], 0, true)
	}
	var wg sync.WaitGroup
	for _, ft := range fts {
		wg.Go(func() {
			for seq := 1; seq < frames; seq++ {
				if err := f.WriteVideo(ft.info, testFrame(seq, seq%30 == 0, 1000)); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	got := map[uint16][]gotFrame{}
	read := 0
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()
	for {
		select {
		case m := <-c.msgs:
			if m.typ == websocket.MessageBinary {
				g := parseFrame(t, m.data)
				got[g.n] = append(got[g.n], g)
			}
			read++
			time.Sleep(500 * time.Microsecond) // slower than the tracks
			continue
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		select {
		case <-written:
		default:
			continue
		}
		if len(c.msgs) == 0 && f.Stats()[0].Queued == 0 {
			break
		}
	}
	checkFrameOrder(t, got)
	st := f.Stats()[0]
	t.Logf("read %d messages; stats %+v", read, st)
	if len(got) != tracks {
		t.Errorf("frames of %d tracks, want %d", len(got), tracks)
	}
	for _, ft := range fts {
		reqs := ft.requests()
		for i := 1; i < len(reqs); i++ {
			if gap := reqs[i].Sub(reqs[i-1]); gap < KeyframeInterval-20*time.Millisecond {
				t.Errorf("track %s: keyframe requests %s apart", ft.info.ID, gap)
			}
		}
	}
}

// TestBadClientMessages checks that a client breaking the protocol is
// disconnected with the status that says why.
func TestBadClientMessages(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 20*time.Second)
	f, srv := newTestFeed(t, nil)
	pad := func(msg string, size int) string {
		return msg[:len(msg)-1] + strings.Repeat(" ", size-len(msg)) + "}"
	}
	for _, tc := range []struct {
		name   string
		typ    websocket.MessageType
		msg    string
		status websocket.StatusCode
		reason string
	}{
		{"not JSON", websocket.MessageText, `hello`, websocket.StatusPolicyViolation, "malformed message: want a JSON object with a string type"},
		{"array", websocket.MessageText, `[1]`, websocket.StatusPolicyViolation, "malformed message: want a JSON object with a string type"},
		{"no type", websocket.MessageText, `{"track":1}`, websocket.StatusPolicyViolation, "malformed message: want a JSON object with a string type"},
		{"unknown type", websocket.MessageText, `{"type":"play"}`, websocket.StatusPolicyViolation, `malformed message: unknown type "play"`},
		{"keyframe without track", websocket.MessageText, `{"type":"keyframe"}`, websocket.StatusPolicyViolation, "malformed message: keyframe without track"},
		{"track 0", websocket.MessageText, `{"type":"keyframe","track":0}`, websocket.StatusPolicyViolation, "malformed message: track must be a number from 1 to 65535"},
		{"track too big", websocket.MessageText, `{"type":"keyframe","track":65536}`, websocket.StatusPolicyViolation, "malformed message: track must be a number from 1 to 65535"},
		{"tracks not a list", websocket.MessageText, `{"type":"subscribe","tracks":"all"}`, websocket.StatusPolicyViolation, "malformed message: tracks must be null or an array of numbers from 1 to 65535"},
		{"trailing data", websocket.MessageText, `{"type":"subscribe"} {}`, websocket.StatusPolicyViolation, "malformed message: want a JSON object with a string type"},
		{"binary", websocket.MessageBinary, `{"type":"subscribe"}`, websocket.StatusUnsupportedData, "binary messages are not accepted"},
		{"too big", websocket.MessageText, pad(`{"type":"subscribe"}`, MaxClientMessage+1), websocket.StatusMessageTooBig, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, ctx, srv)
			c.control(ctx)
			if err := c.conn.Write(ctx, tc.typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if got := c.closeStatus(ctx); got != tc.status {
				t.Fatalf("closed with %v (%v), want %v", got, c.err, tc.status)
			}
			var ce websocket.CloseError
			if tc.reason != "" && (!errors.As(c.err, &ce) || ce.Reason != tc.reason) {
				t.Errorf("close reason %q, want %q", ce.Reason, tc.reason)
			}
			waitClients(t, ctx, f, 0)
		})
	}

	// The longest message allowed is fine.
	c := connect(t, ctx, srv)
	c.control(ctx)
	waitClients(t, ctx, f, 1)
	c.send(ctx, pad(`{"type":"subscribe","tracks":[]}`, MaxClientMessage))
	waitFor(t, ctx, "the subscription", func() bool { return f.Stats()[0].Tracks != nil })
}

// TestTooManyClients checks that clients over MaxClients are refused with
// 503, and that a slot frees when a client leaves.
func TestTooManyClients(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f, srv := newTestFeed(t, nil)
	clients := make([]*wsClient, MaxClients)
	for i := range clients {
		clients[i] = connect(t, ctx, srv)
	}
	waitClients(t, ctx, f, MaxClients)

	_, resp, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("client %d: err %v, response %v; want 503", MaxClients+1, err, resp)
	}
	// websocket.Dial keeps the start of the body.
	var p apiv1.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Type != apiv1.ProblemUnavailable || p.Status != 503 {
		t.Errorf("problem %+v (%v)", p, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}

	clients[0].close()
	waitClients(t, ctx, f, MaxClients-1)
	c := connect(t, ctx, srv)
	c.control(ctx)
	if st := f.Stats(); st[len(st)-1].ID != MaxClients+1 {
		t.Errorf("last client's ID %d, want %d", st[len(st)-1].ID, MaxClients+1)
	}
}

// TestOrigin checks that only same-origin pages may connect.
func TestOrigin(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	_, srv := newTestFeed(t, nil)
	_, resp, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin: err %v, response %v; want 403", err, resp)
	}
	conn, _, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {srv.URL}}})
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	_ = conn.CloseNow()
}

// TestClose checks that Close ends every connection with 1001 and that the
// Feed refuses everything afterwards.
func TestClose(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f, srv := newTestFeed(t, nil)
	cam := newFakeTrack("sfu", "cam", "alice", hal.CodecVP8)
	write(t, f, cam, 0, true)
	a := connect(t, ctx, srv)
	b := dial(t, ctx, srv) // does not read, nor answer the close
	c := dial(t, ctx, srv) // does not read, and its socket is full
	a.control(ctx)
	waitClients(t, ctx, f, 3)
	a.send(ctx, `{"type":"subscribe","tracks":[]}`)
	b.send(ctx, `{"type":"subscribe","tracks":[]}`)
	waitFor(t, ctx, "subscriptions", func() bool {
		st := f.Stats()
		return st[0].Tracks != nil && st[1].Tracks != nil && st[2].Tracks == nil
	})
	for seq := range 200 {
		if err := f.WriteVideo(cam.info, testFrame(seq, true, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "client 3 to fall behind", func() bool { return f.Stats()[2].FramesDropped > 0 })

	start := time.Now()
	done := make(chan error)
	go func() { done <- f.Close() }()
	if got := a.closeStatus(ctx); got != websocket.StatusGoingAway {
		t.Errorf("closed with %v (%v), want going away", got, a.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	if d := time.Since(start); d > 3*closeTimeout {
		t.Errorf("Close took %s with unresponsive clients", d)
	}
	b.start()
	if got := b.closeStatus(ctx); got != websocket.StatusGoingAway {
		t.Errorf("client that did not answer: closed with %v (%v), want going away", got, b.err)
	}
	c.start()
	c.closeStatus(ctx)
	if err := f.WriteVideo(cam.info, testFrame(1, true, 10)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteVideo after Close: %v", err)
	}
	f.RemoveTrack(cam.info)
	if _, resp, err := websocket.Dial(ctx, wsURL(srv), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v, %v; want 503", err, resp)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRequestContext checks that a handler returns when its request's
// context ends.
func TestRequestContext(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 10*time.Second)
	f := New(testLogger(t))
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewUnstartedServer(f.Handler())
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(func() {
		_ = f.Close()
		srv.Close()
	})
	c := connect(t, ctx, srv)
	c.control(ctx)
	waitClients(t, ctx, f, 1)
	cancel()
	if got := c.closeStatus(ctx); got != websocket.StatusGoingAway {
		t.Errorf("closed with %v (%v), want going away", got, c.err)
	}
	waitClients(t, ctx, f, 0)
}

// TestWithoutClients checks that frames with no client go nowhere and ask
// for nothing.
func TestWithoutClients(t *testing.T) {
	checkLeaks(t)
	f := New(nil)
	defer f.Close()
	cam := newFakeTrack("sfu", "cam", "alice", hal.CodecVP8)
	for seq := range 100 {
		write(t, f, cam, seq, seq%10 == 5)
	}
	f.RemoveTrack(cam.info)
	if n := len(cam.requests()); n != 0 {
		t.Errorf("%d keyframe requests", n)
	}
}
