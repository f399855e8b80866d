package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
	"github.com/atriumroom/atrium/test/whiptest"
)

// TestRoomPublishesOverWHIP: roomd publishes to Debian's simple-whip-server
// (a WHIP endpoint in front of Janus) from a whip+ meeting URL, and a
// Chromium subscriber in the Janus room sees and hears the room.
func TestRoomPublishesOverWHIP(t *testing.T) {
	srv := janustest.Start(t)
	whip := whiptest.Start(t, srv.WSURL)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	ctx := roomdtest.Context(t, 90*time.Second)

	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Chromium subscriber"})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	const endpoint = "atrium-room"
	meetingURL := "whip+" + whip.EndpointURL(endpoint, janustest.Room)
	out, err := roomctl(t, ctl, d, "join", meetingURL)
	if err != nil || !strings.Contains(out, "connected") || !strings.Contains(out, "whip") {
		t.Fatalf("roomctl join %s: %v\n%s\n--- roomd ---\n%s\n--- simple-whip-server ---\n%s", meetingURL, err, out, d.Log(), whip.Log())
	}

	// simple-whip-server names the Janus publisher after the endpoint.
	media, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	feed, err := g.WaitFeed(media, endpoint, func(f guest.Feed) bool {
		return f.VideoFramesDecoded > 10 && f.AudioPacketsReceived > 10
	})
	if err != nil {
		t.Fatalf("the Chromium subscriber does not see the room's WHIP stream: %v (last %+v)\n--- roomd ---\n%s", err, feed, d.Log())
	}
	t.Logf("Chromium receives the room over WHIP: %d frames (%dx%d %s), %d audio packets",
		feed.VideoFramesDecoded, feed.VideoWidth, feed.VideoHeight, feed.Codec, feed.AudioPacketsReceived)

	if out, err := roomctl(t, ctl, d, "leave"); err != nil || !strings.Contains(out, "left") {
		t.Fatalf("roomctl leave: %v\n%s", err, out)
	}
	if err := g.WaitFeedGone(ctx, endpoint); err != nil {
		t.Fatalf("the room's stream outlives leave (no DELETE?): %v", err)
	}
	if st, err := d.Client.Status(ctx); err != nil || st.Meeting.State != apiv1.MeetingLeft {
		t.Fatalf("after leave: %+v %v", st.Meeting, err)
	}
}
