package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestRoomSendsH264: in a Janus room that allows only H.264, roomd sends its
// camera with its H.264 encoder (x264, constrained baseline, packetization
// mode 1) and a Chromium guest decodes it; roomd receives the guest's H.264.
func TestRoomSendsH264(t *testing.T) {
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	ctx := roomdtest.Context(t, 90*time.Second)

	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.H264Room, Display: "Chromium H.264 guest"})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := roomctl(t, ctl, d, "join", janusRoomURL(t, srv, janustest.H264Room)); err != nil || !strings.Contains(out, "connected") {
		t.Fatalf("roomctl join: %v\n%s\n--- roomd ---\n%s", err, out, d.Log())
	}
	media, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	feed, err := g.WaitFeed(media, d.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > 10 })
	if err != nil {
		t.Fatalf("Chromium does not decode the room's video: %v (last %+v)\n--- roomd ---\n%s", err, feed, d.Log())
	}
	if !strings.Contains(strings.ToLower(feed.Codec), "h264") {
		t.Fatalf("the room's video reached Chromium as %q, want H.264", feed.Codec)
	}
	t.Logf("Chromium decodes the room's H.264: %d frames, %dx%d", feed.VideoFramesDecoded, feed.VideoWidth, feed.VideoHeight)

	call, err := waitCall(media, d, func(c *apiv1.Call) error {
		var sent, received bool
		for _, p := range c.Peers {
			for _, s := range p.Sent {
				sent = sent || s.Kind == "video" && s.Codec == "H264" && s.FramesSent > 10
			}
			for _, r := range p.Recv {
				received = received || r.Kind == "video" && r.Codec == "H264" && r.Frames > 10
			}
		}
		if !sent || !received {
			return fmt.Errorf("H.264 sent %v, received %v", sent, received)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("roomd's status: %v\n%+v", err, call)
	}
}
