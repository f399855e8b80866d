package janus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
)

// These tests check the configure requests SelectVideo sends to the fake.

// videoFeed is a publisher with an audio and a video stream.
func videoFeed(id int, display string, simulcast bool, description string) map[string]any {
	video := map[string]any{"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"}
	if simulcast {
		video["simulcast"] = true
	}
	if description != "" {
		video["description"] = description
	}
	return map[string]any{
		"id": id, "display": display,
		"streams": []map[string]any{{"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"}, video},
	}
}

// selectRoom joins the fake with publishers and waits until the
// subscription is set up. layoutExtra, if not nil, adds fields to the
// subscription layout's streams (by subscription mid).
func selectRoom(t *testing.T, pubs []map[string]any, layoutExtra map[string]map[string]any) (*fakeJanus, *janus.Session, *logRecorder) {
	t.Helper()
	f := newFakeJanus(t)
	f.publishers = pubs
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() != "join subscriber" {
			return false
		}
		c.ack(r)
		layout := f.layout(r)
		for _, st := range layout {
			for k, v := range layoutExtra[st["mid"].(string)] {
				st[k] = v
			}
		}
		c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "attached", "room": 1234, "streams": layout}, f.offer())
		return true
	})
	p, _, rec := newFakeProvider(t, janus.Config{})
	s := join(t, p, f.wsURL("room=1234"))
	f.waitFor(t, "start")
	return f, s, rec
}

// configures returns the streams of every configure on the subscriber
// handle so far, as compact JSON, one string per request.
func configures(t *testing.T, f *fakeJanus) []string {
	t.Helper()
	var out []string
	for _, r := range f.find("configure") {
		if r.HandleID != f.conn().handle(1) {
			continue
		}
		b, err := json.Marshal(r.Body["streams"])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func sub(mid string, w, h int) meeting.VideoWant {
	return meeting.VideoWant{PeerLabel: "subscriber", MID: mid, Width: w, Height: h}
}

// selectVideo calls SelectVideo and returns the configures it added.
func selectVideo(t *testing.T, f *fakeJanus, s *janus.Session, wants ...meeting.VideoWant) []string {
	t.Helper()
	before := len(configures(t, f))
	if wants == nil {
		wants = []meeting.VideoWant{}
	}
	if err := s.SelectVideo(testContext(t, 5*time.Second), wants); err != nil {
		t.Fatalf("SelectVideo(%v): %v", wants, err)
	}
	return configures(t, f)[before:]
}

func wantConfigures(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: configures %q, want %q", what, got, want)
	}
}

func TestSelectVideoPauseResume(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, ""), videoFeed(8, "Eight", false, "")}, nil)

	wantConfigures(t, "pause", selectVideo(t, f, s, sub("7-1", 0, 0), sub("8-1", 1280, 720)),
		`[{"mid":"7-1","send":false}]`)
	// The same again: nothing to tell Janus.
	wantConfigures(t, "unchanged", selectVideo(t, f, s, sub("7-1", 0, 0), sub("8-1", 1280, 720)))
	// Resumed at full size: send only, the layer never changed.
	wantConfigures(t, "resume", selectVideo(t, f, s, sub("7-1", 1280, 720)),
		`[{"mid":"7-1","send":true}]`)
	// Pause both; resume one shown small: send and the layer in one go.
	wantConfigures(t, "pause both", selectVideo(t, f, s, sub("7-1", 0, 0), sub("8-1", 0, 0)),
		`[{"mid":"7-1","send":false},{"mid":"8-1","send":false}]`)
	wantConfigures(t, "resume small", selectVideo(t, f, s, sub("7-1", 320, 180)),
		`[{"mid":"7-1","send":true,"substream":0}]`)
}

func TestSelectVideoSubstreamFromSize(t *testing.T) {
	noLeaks(t)
	f, s, rec := selectRoom(t, []map[string]any{
		videoFeed(7, "Seven", true, ""), videoFeed(8, "Eight", true, ""), videoFeed(9, "Nine", false, ""),
	}, nil)

	// 180 → layer 0, 360 → layer 1, 720 → layer 2 (Janus's default: no
	// change); a stream without simulcast has no layer to pick.
	wantConfigures(t, "sizes", selectVideo(t, f, s, sub("7-1", 320, 180), sub("8-1", 640, 360), sub("9-1", 320, 180)),
		`[{"mid":"7-1","substream":0},{"mid":"8-1","substream":1}]`)
	// At the edges: 200 is still small, 201 is medium, 400 medium, 401 full.
	wantConfigures(t, "edges", selectVideo(t, f, s, sub("7-1", 356, 200), sub("8-1", 712, 401)),
		`[{"mid":"8-1","substream":2}]`)
	wantConfigures(t, "edges 2", selectVideo(t, f, s, sub("7-1", 358, 201), sub("8-1", 712, 400)),
		`[{"mid":"7-1","substream":1},{"mid":"8-1","substream":1}]`)
	// Growing again asks for the larger layer.
	wantConfigures(t, "grow", selectVideo(t, f, s, sub("7-1", 1920, 1080)),
		`[{"mid":"7-1","substream":2}]`)
	if !rec.has("video selection", "7-1:substream=2/temporal=2") {
		t.Errorf("the selection is not logged:\n%s", rec)
	}
}

func TestSelectVideoIgnoresUnknown(t *testing.T) {
	noLeaks(t)
	f, s, rec := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, "")}, nil)
	wantConfigures(t, "unknown", selectVideo(t, f, s,
		sub("99-1", 0, 0), // no such mid
		sub("7-0", 0, 0),  // audio
		meeting.VideoWant{PeerLabel: "publisher", MID: "1"}, // receives nothing
	))
	if !rec.has("video want for no current video stream", "mid=99-1") {
		t.Errorf("the unknown mid is not logged:\n%s", rec)
	}
	// Known and unknown together: only the known one goes out.
	wantConfigures(t, "mixed", selectVideo(t, f, s, sub("98-1", 0, 0), sub("7-1", 0, 0)),
		`[{"mid":"7-1","send":false}]`)
}

func TestSelectVideoNoPreference(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{
		videoFeed(7, "Seven", true, ""), videoFeed(8, "Eight", true, ""), videoFeed(9, "Nine", false, ""),
	}, nil)
	// Nothing was ever changed: nothing to undo.
	wantConfigures(t, "nil at first", selectVideo(t, f, s))

	selectVideo(t, f, s, sub("7-1", 0, 0), sub("8-1", 320, 180), sub("9-1", 0, 0))
	if err := s.SelectVideo(testContext(t, 5*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	got := configures(t, f)
	wantConfigures(t, "nil undoes everything", got[len(got)-1:],
		`[{"mid":"7-1","send":true},{"mid":"8-1","substream":2},{"mid":"9-1","send":true}]`)
	wantConfigures(t, "nil again", selectVideo(t, f, s))
}

func TestSelectVideoBudget(t *testing.T) {
	noLeaks(t)
	var pubs []map[string]any
	for id := 11; id <= 19; id++ {
		pubs = append(pubs, videoFeed(id, fmt.Sprint("P", id), true, ""))
	}
	f, s, _ := selectRoom(t, pubs, nil)

	// A 3x3 grid of 640x360 tiles is 9 × 500 kbit/s: over 4 Mbit/s. The
	// two smallest tiles (ties by mid) drop to layer 0: 7 × 500 + 2 × 150.
	var grid []meeting.VideoWant
	for id := 11; id <= 19; id++ {
		w, h := 640, 360
		if id == 15 {
			w, h = 600, 338 // a little smaller: first to drop
		}
		grid = append(grid, sub(fmt.Sprintf("%d-1", id), w, h))
	}
	wantConfigures(t, "grid", selectVideo(t, f, s, grid...),
		`[{"mid":"11-1","substream":0},{"mid":"12-1","substream":1},{"mid":"13-1","substream":1},{"mid":"14-1","substream":1},`+
			`{"mid":"15-1","substream":0},{"mid":"16-1","substream":1},{"mid":"17-1","substream":1},{"mid":"18-1","substream":1},{"mid":"19-1","substream":1}]`)

	// Speaker view: one large tile at layer 2 and eight thumbnails of
	// 360 px would be 1.5 + 8 × 0.5 = 5.5 Mbit/s. The thumbnails drop a
	// step each, smallest area first (ties by mid), until it fits: five
	// drops of 0.35 → 3.75. 15-1 is at layer 0 already.
	speaker := []meeting.VideoWant{sub("11-1", 1920, 1080)}
	for id := 12; id <= 19; id++ {
		speaker = append(speaker, sub(fmt.Sprintf("%d-1", id), 640, 360))
	}
	wantConfigures(t, "speaker", selectVideo(t, f, s, speaker...),
		`[{"mid":"11-1","substream":2},{"mid":"12-1","substream":0},{"mid":"13-1","substream":0},{"mid":"14-1","substream":0},{"mid":"16-1","substream":0}]`)

	// Nine 720p tiles: 13.5 Mbit/s. A first round takes all to layer 1
	// (4.5), a second takes two to layer 0 (3.8).
	var many []meeting.VideoWant
	for id := 11; id <= 19; id++ {
		many = append(many, sub(fmt.Sprintf("%d-1", id), 1280, 720))
	}
	wantConfigures(t, "nine 720p tiles", selectVideo(t, f, s, many...),
		`[{"mid":"11-1","substream":0},{"mid":"13-1","substream":1},{"mid":"14-1","substream":1},{"mid":"15-1","substream":1},{"mid":"16-1","substream":1}]`)
}

// When layer 0 is not cheap enough, the budget lowers the frame rate of
// the smallest tiles (the temporal layer), and says so when even that
// cannot fit.
func TestSelectVideoBudgetTemporal(t *testing.T) {
	noLeaks(t)
	pubs := []map[string]any{videoFeed(1, "Screen", false, "screen"), videoFeed(2, "Camera", false, "")}
	for id := 11; id <= 19; id++ {
		pubs = append(pubs, videoFeed(id, fmt.Sprint("P", id), true, ""))
	}
	f, s, rec := selectRoom(t, pubs, nil)

	// Two streams without simulcast: 3 Mbit/s; nine thumbnails at layer
	// 0: 1.35. Seven of them drop to temporal layer 1 (each saves 50
	// kbit/s) to come to 4.0.
	wants := []meeting.VideoWant{sub("1-1", 1920, 1080), sub("2-1", 640, 360)}
	for id := 11; id <= 19; id++ {
		wants = append(wants, sub(fmt.Sprintf("%d-1", id), 320, 180))
	}
	var want []string
	for id := 11; id <= 19; id++ {
		if id <= 17 {
			want = append(want, fmt.Sprintf(`{"mid":"%d-1","substream":0,"temporal":1}`, id))
		} else {
			want = append(want, fmt.Sprintf(`{"mid":"%d-1","substream":0}`, id))
		}
	}
	wantConfigures(t, "temporal", selectVideo(t, f, s, wants...), "["+strings.Join(want, ",")+"]")
	if rec.has("over budget") {
		t.Errorf("a selection that fits is logged as over budget:\n%s", rec)
	}

	// A third large stream without simulcast cannot fit at all: everything
	// with layers goes to the bottom, and the log says so.
	f2, s2, rec2 := selectRoom(t, append(pubs, videoFeed(3, "Other", false, "")), nil)
	wants = append(wants, sub("3-1", 1280, 720))
	got := selectVideo(t, f2, s2, wants...)
	if len(got) != 1 || strings.Count(got[0], `"temporal":0`) != 9 {
		t.Errorf("over budget: configures %q, want all nine at temporal 0", got)
	}
	if !rec2.has("video selection over budget") {
		t.Errorf("over budget, not logged:\n%s", rec2)
	}
}

func TestSelectVideoRefused(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, "")}, nil)
	refuse := true
	f.setHandler(func(c *fakeConn, r fakeRequest) bool {
		if r.name() != "configure" || !refuse {
			return false
		}
		c.ack(r)
		c.event(r.HandleID, r.Transaction, map[string]any{"videoroom": "event", "error_code": 428, "error": "No such mid '7-1' in subscription"}, nil)
		return true
	})
	err := s.SelectVideo(testContext(t, 5*time.Second), []meeting.VideoWant{sub("7-1", 0, 0)})
	var jerr *janus.Error
	if !errors.As(err, &jerr) || jerr.Code != 428 || !strings.Contains(err.Error(), "select video") {
		t.Fatalf("SelectVideo = %v, want Janus's 428, wrapped", err)
	}
	select {
	case <-s.Done():
		t.Fatalf("a refused selection ended the session: %v", s.Err())
	case <-time.After(100 * time.Millisecond):
	}
	// Nothing was recorded as applied: the same wants go out again.
	refuse = false
	wantConfigures(t, "retry", selectVideo(t, f, s, sub("7-1", 0, 0)), `[{"mid":"7-1","send":false}]`)
}

func TestSelectVideoInvalid(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, "")}, nil)
	err := s.SelectVideo(testContext(t, 5*time.Second), []meeting.VideoWant{sub("7-1", 0, 10)})
	if !errors.Is(err, meeting.ErrInvalidVideoWant) {
		t.Errorf("SelectVideo(0x10) = %v, want ErrInvalidVideoWant", err)
	}
	if got := configures(t, f); len(got) != 0 {
		t.Errorf("an invalid list sent %q", got)
	}
}

func TestSelectVideoAfterLeave(t *testing.T) {
	noLeaks(t)
	_, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, "")}, nil)
	if err := s.Leave(testContext(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	err := s.SelectVideo(testContext(t, 5*time.Second), []meeting.VideoWant{sub("7-1", 0, 0)})
	if !errors.Is(err, janus.ErrClosed) {
		t.Errorf("SelectVideo after Leave = %v, want ErrClosed", err)
	}
}

// A paused mid that Janus reuses for another publisher's stream starts
// over: Janus's "send" in the layout says what it does now.
func TestSelectVideoMidReused(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", true, "")}, nil)
	wantConfigures(t, "pause", selectVideo(t, f, s, sub("7-1", 0, 0)), `[{"mid":"7-1","send":false}]`)

	// Janus sends a new layout in which 7-1 carries feed 8, forwarded.
	f.conn().event(f.conn().handle(1), "", map[string]any{"videoroom": "updated", "room": 1234, "streams": []map[string]any{
		{"mid": "7-1", "type": "video", "active": true, "send": true, "feed_id": 8, "feed_mid": "1", "feed_display": "Eight"},
	}}, nil)
	eventually(t, 5*time.Second, "the new layout", func() bool {
		st := s.SubscribedStreams()
		return len(st) == 1 && st[0].ParticipantID == janus.NumericID(8)
	})
	// Pausing it is a change again.
	wantConfigures(t, "pause the new stream", selectVideo(t, f, s, sub("7-1", 0, 0)), `[{"mid":"7-1","send":false}]`)
}

func TestSubscribedStreamDescription(t *testing.T) {
	noLeaks(t)
	_, s, _ := selectRoom(t, []map[string]any{
		videoFeed(7, "Seven", false, "screen"), // only in the publisher's list
		videoFeed(8, "Eight", true, "camera"),
	}, map[string]map[string]any{
		"8-1": {"feed_description": "front camera"}, // the layout's wins
	})
	want := map[string]string{"7-0": "", "7-1": "screen", "8-0": "", "8-1": "front camera"}
	got := map[string]string{}
	for _, st := range s.SubscribedStreams() {
		got[st.MID] = st.Description
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("descriptions %v, want %v", got, want)
	}
	var simulcast []bool
	for _, p := range s.Participants() {
		simulcast = append(simulcast, p.Streams[1].Simulcast)
	}
	if !reflect.DeepEqual(simulcast, []bool{false, true}) {
		t.Errorf("participants' video simulcast = %v, want [false true]", simulcast)
	}
}

// Janus may say a subscription stream is simulcast in the layout itself,
// as an object; an unknown shape is not simulcast and fails nothing.
func TestSelectVideoSimulcastFromLayout(t *testing.T) {
	noLeaks(t)
	f, s, _ := selectRoom(t, []map[string]any{videoFeed(7, "Seven", false, ""), videoFeed(8, "Eight", false, "")},
		map[string]map[string]any{
			"7-1": {"simulcast": map[string]any{"substream": 2, "temporal": 2}},
			"8-1": {"simulcast": 5},
		})
	wantConfigures(t, "small", selectVideo(t, f, s, sub("7-1", 320, 180), sub("8-1", 320, 180)),
		`[{"mid":"7-1","substream":0}]`)
}
