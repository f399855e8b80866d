package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting/rtc"
	"github.com/atriumroom/atrium/hal"
)

// TestConvertPeerStatsFirstFrame: a received track's first-frame time
// reaches the API, and a track without one leaves the field out.
func TestConvertPeerStatsFirstFrame(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 123_000_000, time.UTC)
	out := convertPeerStats(rtc.PeerStats{Label: "subscriber", Tracks: []rtc.TrackStats{
		{ID: "a", Kind: "audio", Codec: hal.CodecOpus, Frames: 0},
		{ID: "v", Kind: "video", Codec: hal.CodecVP8, Frames: 3, FirstFrameAt: at},
	}})
	if len(out.Recv) != 2 {
		t.Fatalf("received tracks: %+v", out.Recv)
	}
	audio, video := out.Recv[0], out.Recv[1]
	if !video.FirstFrameAt.Equal(at) || !audio.FirstFrameAt.IsZero() {
		t.Errorf("first frames: video %v, audio %v; want %v and zero", video.FirstFrameAt, audio.FirstFrameAt, at)
	}
	vj, err := json.Marshal(video)
	if err != nil {
		t.Fatal(err)
	}
	aj, err := json.Marshal(audio)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vj), `"firstFrameAt":"2025-06-07T08:09:10.123Z"`) || strings.Contains(string(aj), "firstFrameAt") {
		t.Errorf("JSON: video %s, audio %s", vj, aj)
	}
}
