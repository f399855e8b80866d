package guest_test

import (
	"context"
	"image"
	"image/png"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
)

const (
	// testTimeout bounds each test, so that a hung browser or Janus fails
	// the test instead of stalling until go test's own timeout.
	testTimeout = 60 * time.Second
	// mediaTimeout bounds the wait for media to flow both ways.
	mediaTimeout = 20 * time.Second
	// leaveTimeout bounds the wait for a departure to reach the others.
	leaveTimeout = 10 * time.Second
)

// flowing is media that has really arrived: decoded video and audio
// packets, more than a keyframe's or a first packet's worth.
func flowing(f guest.Feed) bool {
	return f.VideoFramesDecoded > 10 && f.AudioPacketsReceived > 10
}

// TestTwoGuestsSeeEachOther puts two browsers in one room: each receives
// and decodes the other's audio and video, the video is a picture rather
// than black, and a guest that leaves disappears from the other's feeds.
func TestTwoGuestsSeeEachOther(t *testing.T) {
	j := janustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// Screenshots and console logs go where CI collects them, if it does.
	artifacts := os.Getenv("ATRIUM_ARTIFACTS")
	if artifacts != "" {
		artifacts = filepath.Join(artifacts, t.Name())
	}
	alice := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.Room, Display: "alice", Artifacts: artifacts})
	bob := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.Room, Display: "bob", Artifacts: artifacts})
	for _, g := range []*guest.Guest{alice, bob} {
		if err := g.WaitJoined(ctx); err != nil {
			t.Fatal(err)
		}
	}

	mctx, mcancel := context.WithTimeout(ctx, mediaTimeout)
	defer mcancel()
	for _, c := range []struct {
		g    *guest.Guest
		name string
		sees string
	}{{alice, "alice", "bob"}, {bob, "bob", "alice"}} {
		f, err := c.g.WaitFeed(mctx, c.sees, flowing)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s receives %s: %+v", c.name, c.sees, f)
		if f.Codec != "VP8" {
			t.Errorf("%s receives %s in %q, want VP8 (the room's codec)", c.name, c.sees, f.Codec)
		}
		if f.VideoWidth == 0 || f.VideoHeight == 0 {
			t.Errorf("%s receives %s with no frame size: %+v", c.name, c.sees, f)
		}
	}
	// Alice was in the room first, so her first frame of Bob includes the
	// wait for Bob to start; Bob's of Alice is the join as a user sees it.
	for _, c := range []struct {
		g         *guest.Guest
		name, ofs string
	}{{alice, "alice", "bob"}, {bob, "bob", "alice"}} {
		d, err := c.g.FirstRemoteFrame(ctx, c.ofs)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: first frame of %s %v after starting to join", c.name, c.ofs, d.Round(time.Millisecond))
	}

	s, err := alice.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Publishing || s.VideoFramesSent == 0 || s.AudioPacketsSent == 0 {
		t.Errorf("alice's own stats: %+v, want publishing and sending", s)
	}

	for _, g := range []*guest.Guest{alice, bob} {
		checkPaths(ctx, t, g, j.ICEAddr)
	}

	checkPicture(ctx, t, alice, "bob")

	if err := bob.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, leaveTimeout)
	defer lcancel()
	if err := alice.WaitFeedGone(lctx, "bob"); err != nil {
		t.Fatal(err)
	}
	s, err = bob.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Publishing || len(s.RemoteFeeds) != 0 {
		t.Errorf("bob's stats after leaving: %+v, want not publishing and no feeds", s)
	}

	for _, g := range []*guest.Guest{alice, bob} {
		for _, e := range g.ConsoleErrors() {
			t.Errorf("browser console: %s", e)
		}
	}
}

// checkPaths fails the test unless all of g's media flows between an
// address of this host and Janus's: a test must not send media anywhere
// else.
func checkPaths(ctx context.Context, t *testing.T, g *guest.Guest, janus net.IP) {
	t.Helper()
	s, err := g.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The guest's own feed plus one per remote feed.
	if len(s.Paths) != 1+len(s.RemoteFeeds) {
		t.Errorf("ICE paths %q, want one for publishing and one per remote feed (%d)", s.Paths, len(s.RemoteFeeds))
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	isLocal := func(ip net.IP) bool {
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, p := range s.Paths {
		l, r, ok := strings.Cut(p, " -> ")
		lhost, _, lerr := net.SplitHostPort(l)
		rhost, _, rerr := net.SplitHostPort(r)
		if !ok || lerr != nil || rerr != nil {
			t.Errorf("ICE path %q: not local -> remote", p)
			continue
		}
		if !net.ParseIP(rhost).Equal(janus) || !isLocal(net.ParseIP(lhost)) {
			t.Errorf("ICE path %q: want from an address of this host to Janus at %s", p, janus)
		}
	}
	t.Logf("ICE paths: %q", s.Paths)
}

// checkPicture takes a screenshot of g and fails the test if the video of
// display is flat: black, or one color, is what a dead decoder shows.
func checkPicture(ctx context.Context, t *testing.T, g *guest.Guest, display string) {
	t.Helper()
	rect, err := g.VideoRect(ctx, display)
	if err != nil {
		t.Fatal(err)
	}
	path, err := g.Screenshot(ctx, "sees-"+display)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (video of %s at %v)", path, display, rect)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if !rect.In(img.Bounds()) || rect.Empty() {
		t.Fatalf("video rectangle %v is not inside the %v screenshot", rect, img.Bounds())
	}
	mean, stddev, lit := lumaStats(img, rect)
	t.Logf("video of %s: luma mean %.1f, stddev %.1f, %.0f%% of pixels above black", display, mean, stddev, 100*lit)
	// The fake camera draws a moving pattern on a colored background: far
	// from black and far from flat.
	if mean < 20 || stddev < 10 || lit < 0.5 {
		t.Errorf("video of %s looks black or flat: luma mean %.1f, stddev %.1f, lit %.2f (see %s)", display, mean, stddev, lit, path)
	}
}

// lumaStats returns the mean and standard deviation of the luma (0-255) of
// the pixels of img in r, and the fraction of them brighter than near-black.
func lumaStats(img image.Image, r image.Rectangle) (mean, stddev, lit float64) {
	var sum, sumSq float64
	var n, bright int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			// BT.601 luma from 16-bit channels.
			l := (0.299*float64(cr) + 0.587*float64(cg) + 0.114*float64(cb)) / 257
			sum += l
			sumSq += l * l
			n++
			if l > 16 {
				bright++
			}
		}
	}
	mean = sum / float64(n)
	return mean, math.Sqrt(max(sumSq/float64(n)-mean*mean, 0)), float64(bright) / float64(n)
}

// TestPIN joins the room that needs a PIN: with the right one the guest
// publishes, with a wrong one WaitJoined reports Janus's refusal.
func TestPIN(t *testing.T) {
	j := janustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	wrong := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.PINRoom, Pin: "not-" + janustest.PIN, Display: "mallory"})
	err := wrong.WaitJoined(ctx)
	if err == nil {
		t.Fatal("joined with a wrong PIN")
	}
	t.Logf("wrong PIN: %v", err)
	// Janus's VideoRoom answers 433, "Unauthorized (wrong pin)".
	if msg := err.Error(); !strings.Contains(msg, "433") || !strings.Contains(strings.ToLower(msg), "pin") {
		t.Errorf("the error does not carry Janus's refusal: %v", err)
	}

	right := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.PINRoom, Pin: janustest.PIN, Display: "carol"})
	if err := right.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestScreenAndSimulcast has a guest publish its camera in simulcast and a
// shared "screen": four video streams leave it (three camera layers, the
// screen), and another guest receives and decodes its video.
func TestScreenAndSimulcast(t *testing.T) {
	j := janustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	presenter := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.Room, Display: "presenter", Screen: true, Simulcast: true})
	viewer := guest.Start(t, guest.Options{JanusWS: j.WSURL, Room: janustest.Room, Display: "viewer"})
	for _, g := range []*guest.Guest{presenter, viewer} {
		if err := g.WaitJoined(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mctx, mcancel := context.WithTimeout(ctx, mediaTimeout)
	defer mcancel()
	f, err := viewer.WaitFeed(mctx, "presenter", flowing)
	if err != nil {
		t.Fatal(err)
	}
	st, err := presenter.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.VideoStreamsSent != 4 || st.VideoFramesSent == 0 {
		t.Errorf("the presenter sends %d video streams (%d frames), want 4: three simulcast layers and the screen", st.VideoStreamsSent, st.VideoFramesSent)
	}
	t.Logf("presenter: %d video streams, %d frames sent; the viewer decoded %d frames", st.VideoStreamsSent, st.VideoFramesSent, f.VideoFramesDecoded)
}
