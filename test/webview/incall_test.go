package webview

import (
	"errors"
	"fmt"
	"image"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// videoArea is a rectangle inside the in-call screen's only tile that the
// far end's 16:9 video covers whatever its size: the stage fills the screen
// above the call bar, and the picture is scaled to fit it.
var videoArea = image.Rect(660, 200, 1260, 760)

// selfArea is a rectangle inside the self-view in the stage's top right
// corner: the room's simulated camera (colour bars, and a frame counter in
// black and white blocks along the top), mirrored.
var selfArea = image.Rect(1450, 40, 1870, 270)

// TestRoomkioskInCall runs the shell against a real roomd in a real Janus
// room with a Chromium guest sending its fake camera (a moving green
// pattern), joins, and judges the screen by its pixels: WebKit's own
// WebCodecs VideoDecoder must decode the guest's VP8 and the page draw it,
// so the tile shows the guest's green, far from uniform, and moving between
// shots; and the self-view in the corner shows the room's own camera,
// moving too. Leaving brings the home screen back.
func TestRoomkioskInCall(t *testing.T) {
	requireTools(t)
	root := roomdtest.RepoRoot(t)
	art := artifactDir(t)
	bin := buildKiosk(t, root)
	display := startXvfb(t, art)
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctx := roomdtest.Context(t, 3*time.Minute)
	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Far-end guest", Artifacts: art})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	k := startKiosk(t, bin, display, d.URL+"/", art)
	defer func() {
		if t.Failed() {
			t.Logf("roomkiosk log:\n%s\n--- roomd log ---\n%s", k.logs(), d.Log())
		}
	}()
	waitScreen(t, display, art, "20-call-home", 60*time.Second, checkHome)

	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if m, err := d.Client.Join(ctx, fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, janustest.Room)); err != nil {
		t.Fatalf("join: %v (%+v)", err, m)
	}
	var first image.Image
	waitScreen(t, display, art, "21-call-video", 30*time.Second, func(img image.Image) error {
		first = img
		return checkRemoteVideo(img)
	})
	t.Logf("the guest's video on screen %v after the join", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(time.Second)
	waitScreen(t, display, art, "22-call-video-later", 10*time.Second, func(img image.Image) error {
		if err := checkRemoteVideo(img); err != nil {
			return err
		}
		changed := 0
		for y := videoArea.Min.Y; y < videoArea.Max.Y; y++ {
			for x := videoArea.Min.X; x < videoArea.Max.X; x++ {
				if math.Abs(lumaAt(first, x, y)-lumaAt(img, x, y)) > 16 {
					changed++
				}
			}
		}
		if changed < 500 {
			return fmt.Errorf("only %d pixels of the video changed: not moving", changed)
		}
		t.Logf("%d pixels of the video area changed between shots", changed)
		return nil
	})

	// The self-view: the room's own video, decoded by WebKit too.
	var self image.Image
	waitScreen(t, display, art, "24-call-self-view", 20*time.Second, func(img image.Image) error {
		self = img
		return checkSelfView(img)
	})
	time.Sleep(time.Second)
	waitScreen(t, display, art, "25-call-self-view-later", 10*time.Second, func(img image.Image) error {
		if err := checkSelfView(img); err != nil {
			return err
		}
		changed := 0
		for y := selfArea.Min.Y; y < selfArea.Max.Y; y++ {
			for x := selfArea.Min.X; x < selfArea.Max.X; x++ {
				if math.Abs(lumaAt(self, x, y)-lumaAt(img, x, y)) > 16 {
					changed++
				}
			}
		}
		if changed < 100 {
			return fmt.Errorf("only %d pixels of the self-view changed: not moving", changed)
		}
		t.Logf("%d pixels of the self-view changed between shots", changed)
		return nil
	})

	if _, err := d.Client.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitScreen(t, display, art, "23-call-left", 20*time.Second, checkHome)
}

// checkRemoteVideo accepts a screen whose video area shows Chromium's fake
// camera: mostly its green, with enough detail (the moving pie and the
// text) to be a picture rather than a flat fill.
func checkRemoteVideo(img image.Image) error {
	if err := checkSize(img); err != nil {
		return err
	}
	var errs []error
	green, n := 0, 0
	var sum, sq float64
	for y := videoArea.Min.Y; y < videoArea.Max.Y; y++ {
		for x := videoArea.Min.X; x < videoArea.Max.X; x++ {
			c := rgbAt(img, x, y)
			if int(c.g) > int(c.r)+40 && int(c.g) > int(c.b)+40 {
				green++
			}
			l := lumaAt(img, x, y)
			sum += l
			sq += l * l
			n++
		}
	}
	if share := float64(green) / float64(n); share < 0.5 {
		errs = append(errs, fmt.Errorf("only %.1f%% of the video area is the guest's green: no remote video on screen", 100*share))
	}
	mean := sum / float64(n)
	if sd := math.Sqrt(max(sq/float64(n)-mean*mean, 0)); sd < 8 {
		errs = append(errs, fmt.Errorf("the video area is nearly uniform (luma standard deviation %.1f)", sd))
	}
	return errors.Join(errs...)
}

// checkSelfView accepts a screen whose self-view area shows the simulated
// camera's colour bars: red, blue and other colours side by side, where
// the far end's video is all green.
func checkSelfView(img image.Image) error {
	if err := checkSize(img); err != nil {
		return err
	}
	red, blue, n := 0, 0, 0
	for y := selfArea.Min.Y; y < selfArea.Max.Y; y++ {
		for x := selfArea.Min.X; x < selfArea.Max.X; x++ {
			c := rgbAt(img, x, y)
			n++
			switch {
			case int(c.r) > int(c.g)+80 && int(c.r) > int(c.b)+80:
				red++
			case int(c.b) > int(c.r)+80 && int(c.b) > int(c.g)+80:
				blue++
			}
		}
	}
	if red*50 < n || blue*50 < n {
		return fmt.Errorf("the self-view area has %.1f%% red and %.1f%% blue: not the room's colour bars", 100*float64(red)/float64(n), 100*float64(blue)/float64(n))
	}
	return nil
}

func lumaAt(img image.Image, x, y int) float64 {
	c := rgbAt(img, x, y)
	return 0.299*float64(c.r) + 0.587*float64(c.g) + 0.114*float64(c.b)
}
