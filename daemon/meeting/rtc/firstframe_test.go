package rtc

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal"
)

func TestNoteFrameKeepsTheFirst(t *testing.T) {
	var rt remoteTrack
	if at := rt.firstFrameAt(); !at.IsZero() {
		t.Fatalf("before any frame: %v", at)
	}
	t1 := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	rt.noteFrame(t1)
	rt.noteFrame(t1.Add(time.Second))
	if at, n := rt.firstFrameAt(), rt.frames.Load(); !at.Equal(t1) || n != 2 {
		t.Errorf("after two frames: first %v, frames %d; want %v, 2", at, n, t1)
	}

	// The JSON leaves the time out until there is one.
	b, err := json.Marshal(TrackStats{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "firstFrameAt") {
		t.Errorf("zero FirstFrameAt is encoded: %s", b)
	}
}

// firstWrites is a VideoSink and AudioSink that notes, by a clock, when it
// got each kind's first frame.
type firstWrites struct {
	now func() time.Time
	mu  sync.Mutex
	at  map[string]time.Time // by kind
}

func (f *firstWrites) WriteVideo(t TrackInfo, _ hal.EncodedFrame) error { return f.note(t) }
func (f *firstWrites) WriteAudio(t TrackInfo, _ hal.EncodedFrame) error { return f.note(t) }
func (f *firstWrites) RemoveTrack(TrackInfo)                            {}

func (f *firstWrites) note(t TrackInfo) error {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.at[t.Kind]; !ok {
		f.at[t.Kind] = now
	}
	return nil
}

func (f *firstWrites) first(kind string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.at[kind]
	return at, ok
}

// TestFirstFrameAtInStats: each received track's FirstFrameAt is taken from
// the factory's clock when its first frame reaches the sinks, and stays put.
func TestFirstFrameAtInStats(t *testing.T) {
	checkLeaks(t)
	ctx := testContext(t, 30*time.Second)
	camSim := newSim(t)
	// A clock an hour ahead shows that the stat follows Config.Now.
	clock := func() time.Time { return time.Now().Add(time.Hour) }
	sink := &firstWrites{now: clock, at: map[string]time.Time{}}
	recvCfg := testConfig()
	recvCfg.Now = clock
	c := newCall(t, testConfig(), recvCfg,
		Media{
			Camera:        camSim.Camera(),
			Microphone:    camSim.Microphone(),
			VideoEncoders: []hal.VideoEncoderFactory{&fakeVideoEncoderFactory{id: "fake:vp8", codecs: []hal.Codec{hal.CodecVP8}}},
			AudioEncoders: []hal.AudioEncoderFactory{fakeAudioEncoderFactory{id: "fake:opus"}},
		},
		Media{VideoSinks: []VideoSink{sink}, AudioSinks: []AudioSink{sink}})
	send := newTestPeer(t, ctx, c.send, meeting.RoleSend, "publisher")
	recv := newTestPeer(t, ctx, c.recv, meeting.RoleReceive, "subscriber")
	before := clock()
	connect(t, ctx, send, recv)

	tracks := func() map[string]TrackStats {
		m := map[string]TrackStats{}
		for _, tr := range recv.Stats().Tracks {
			m[tr.Kind] = tr
		}
		return m
	}
	waitFor(t, ctx, "10 video frames and audio", func() bool {
		m := tracks()
		return m["video"].Frames >= 10 && m["audio"].Frames >= 10
	})
	first := tracks()
	for _, kind := range []string{"video", "audio"} {
		got := first[kind].FirstFrameAt
		sunk, ok := sink.first(kind)
		if !ok {
			t.Fatalf("%s: the sink got no frame", kind)
		}
		// Taken at the arrival of the completing packet, before the sinks
		// are called.
		if got.Before(before) || got.After(sunk) {
			t.Errorf("%s FirstFrameAt %v, want between %v (connect) and %v (first sink write)", kind, got, before, sunk)
		}
	}

	waitFor(t, ctx, "more video frames", func() bool { return tracks()["video"].Frames > first["video"].Frames })
	for kind, tr := range tracks() {
		if !tr.FirstFrameAt.Equal(first[kind].FirstFrameAt) {
			t.Errorf("%s FirstFrameAt moved from %v to %v", kind, first[kind].FirstFrameAt, tr.FirstFrameAt)
		}
	}
}
