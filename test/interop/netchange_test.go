package interop

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestNetworkChangeRestartsICE: an address appears on the room's interface
// mid-call (as after a DHCP renewal or a roam); roomd notices through
// netlink, restarts ICE with Janus, and the guest keeps receiving video.
func TestNetworkChangeRestartsICE(t *testing.T) {
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctl := roomdtest.Build(t, "./cmd/roomctl")
	ctx := roomdtest.Context(t, 90*time.Second)

	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Chromium guest"})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := roomctl(t, ctl, d, "join", janusRoomURL(t, srv, janustest.Room)); err != nil {
		t.Fatalf("roomctl join: %v\n%s", err, out)
	}
	before, err := g.WaitFeed(ctx, d.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > 10 })
	if err != nil {
		t.Fatal(err)
	}

	const extra = "10.231.0.77/24"
	if out, err := exec.Command("ip", "addr", "add", extra, "dev", netns.Interface).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", extra, "dev", netns.Interface).Run() })

	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.Log(), "ICE restart on request negotiated") {
		if time.Now().After(deadline) {
			t.Fatalf("no ICE restart after the address change\n--- roomd ---\n%s", d.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(d.Log(), "network changed during a meeting") {
		t.Error("the restart was not caused by the network watcher")
	}
	media, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	after, err := g.WaitFeed(media, d.Room, func(f guest.Feed) bool { return f.VideoFramesDecoded > before.VideoFramesDecoded+30 })
	if err != nil {
		t.Fatalf("video stopped after the ICE restart: %v (before %d frames, now %+v)", err, before.VideoFramesDecoded, after)
	}
	st, err := d.Client.Status(ctx)
	if err != nil || st.Meeting.State != "connected" {
		t.Fatalf("meeting after restart: %+v %v", st.Meeting, err)
	}
	t.Logf("video kept flowing: %d frames before the change, %d after", before.VideoFramesDecoded, after.VideoFramesDecoded)
}
