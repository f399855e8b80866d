package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
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

func TestBuildCallSpeaking(t *testing.T) {
	seven, eight, nine := janus.NumericID(7), janus.NumericID(8), janus.NumericID(9)
	parts := []janus.Participant{
		{ID: seven, Display: "Seven", Streams: []janus.Stream{{Type: "audio", MID: "0"}, {Type: "video", MID: "1"}}},
		{ID: eight, Display: "Eight", Streams: []janus.Stream{{Type: "audio", MID: "0"}}},
		{ID: nine, Display: "Nine"}, // listens only
	}
	// The subscription's mids, not the publishers' (all "0" and "1").
	subs := []janus.SubscribedStream{
		{MID: "0", ParticipantID: seven, Display: "Seven", Type: "audio"},
		{MID: "1", ParticipantID: seven, Display: "Seven", Type: "video"},
		{MID: "2", ParticipantID: eight, Display: "Eight", Type: "audio"},
	}
	peers := func(seven, eight float64) []rtc.PeerStats {
		return []rtc.PeerStats{
			{Label: "publisher", Role: "send"},
			{Label: "subscriber", Role: "receive", Tracks: []rtc.TrackStats{
				{ID: "janus0", StreamID: "janus", MID: "0", Kind: "audio", AudioLevel: seven},
				{ID: "janus1", StreamID: "janus", MID: "1", Kind: "video"},
				{ID: "janus2", StreamID: "janus", MID: "2", Kind: "audio", AudioLevel: eight},
				{ID: "janus3", StreamID: "janus", MID: "3", Kind: "audio", AudioLevel: -10}, // no longer subscribed
			}},
		}
	}
	summary := func(c *apiv1.Call) string {
		var b strings.Builder
		for _, p := range c.Participants {
			fmt.Fprintf(&b, "%s level=%g speaking=%v; ", p.Display, p.AudioLevel, p.Speaking)
		}
		for _, p := range c.Peers {
			for _, r := range p.Recv {
				fmt.Fprintf(&b, "%s/%s=%q ", p.Label, r.ID, r.Participant)
			}
		}
		return strings.TrimSpace(b.String())
	}
	const tracks = `subscriber/janus0="7" subscriber/janus1="7" subscriber/janus2="8" subscriber/janus3=""`
	for _, tc := range []struct {
		name         string
		seven, eight float64
		want         string
	}{
		{"eight loudest", -40, -20, "Seven level=-40 speaking=false; Eight level=-20 speaking=true; Nine level=0 speaking=false; " + tracks},
		{"seven loudest", -30, -45, "Seven level=-30 speaking=true; Eight level=-45 speaking=false; Nine level=0 speaking=false; " + tracks},
		{"all quiet", -60, rtc.SilenceDBov, "Seven level=-60 speaking=false; Eight level=-127 speaking=false; Nine level=0 speaking=false; " + tracks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summary(buildCall(parts, subs, peers(tc.seven, tc.eight))); got != tc.want {
				t.Errorf("call\n got %s\nwant %s", got, tc.want)
			}
		})
	}

	// Outside a Janus meeting nothing maps and nobody speaks.
	c := buildCall(nil, nil, peers(-10, -10))
	if len(c.Participants) != 0 || c.Peers[1].Recv[0].Participant != "" {
		t.Errorf("without a janus session: %+v", c)
	}
}
