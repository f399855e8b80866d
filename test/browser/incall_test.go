package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/guest"
	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// guestName is the far-end participant's display name, which the kiosk
// must show on its tile.
const guestName = "Far-end guest"

// TestKioskInCall joins a real Janus room from the kiosk's own Join form,
// with a headless Chromium guest sending its fake camera, and checks what
// the room sees: the in-call screen, the guest's video decoded by the page
// (WebCodecs) and moving on its tile, the guest's name, the layout switch
// (also by keyboard), the participant list, the stats panel and the
// connection indicator; then Leave returns home and closes the video feed.
func TestKioskInCall(t *testing.T) {
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctx := roomdtest.Context(t, 2*time.Minute)
	g := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: guestName})
	if err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}

	k := startKioskFor(t, 2*time.Minute)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	if k.eval(`String(el("#call").checkVisibility())`) != "false" {
		k.fatalf("the in-call screen shows before any meeting")
	}

	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	meetingURL := fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, janustest.Room)
	start := time.Now()
	k.do("type the meeting link and press Join",
		chromedp.SendKeys(chromedp.CSS("#join-url"), meetingURL),
		chromedp.Click(chromedp.CSS("#join-button")),
	)
	k.waitFor("the in-call screen", `el("#meeting-state").dataset.state === "connected" && el("#call").checkVisibility() && !el(".screen").checkVisibility()`)
	k.waitFor("the guest's video decoded on a tile", `Number(el("#tiles .tile[data-state=playing]").dataset.frames) > 10`)
	t.Logf("first decoded remote video %v after Join", time.Since(start).Round(10*time.Millisecond))
	if got := k.eval(`document.querySelectorAll("#tiles .tile").length + " " + el("#tiles").dataset.count`); got != "1 1" {
		k.fatalf("tiles (count, data-count) = %q, want one tile for the one guest", got)
	}
	// The name comes with the call status, every few seconds.
	k.waitFor("the guest's name on the tile", fmt.Sprintf(`text("#tiles .tile .tile-name") === %s`, chromium.JSString(guestName)))

	// Moving video: the tile is far from uniform and changes between shots.
	first := k.tileShot("kiosk-call-1.png")
	time.Sleep(time.Second)
	second := k.tileShot("kiosk-call-2.png")
	checkMovingVideo(t, first, second)

	// The remote's focus starts on the call controls; Enter on the layout
	// button switches to the speaker view, which shows the guest alone.
	if got := k.eval(`document.activeElement.id`); got != "layout-button" {
		k.fatalf("focus on entering the call is on %q, want layout-button", got)
	}
	k.do("press Enter on the layout button", chromedp.KeyEvent("\r"))
	k.waitFor("the speaker view", `el("#call-stage").dataset.layout === "speaker" && el("#layout-button").getAttribute("aria-pressed") === "true"`)
	k.waitFor("the guest's video in the speaker view", fmt.Sprintf(`el("#tiles .tile[data-state=playing]").checkVisibility() && text("#tiles .tile .tile-name") === %s`, chromium.JSString(guestName)))
	// Arrow keys move between the controls, as a TV remote does.
	k.do("press the right arrow", chromedp.KeyEvent(kb.ArrowRight))
	if got := k.eval(`document.activeElement.id`); got != "participants-button" {
		k.fatalf("the right arrow moved focus to %q, want participants-button", got)
	}
	k.do("press Enter on People", chromedp.KeyEvent("\r"))
	k.waitFor("the participant list with the guest", fmt.Sprintf(`el("#participants-panel").checkVisibility() && text("#participant-list").includes(%s)`, chromium.JSString(guestName)))
	k.do("open the stats panel", chromedp.Click(chromedp.CSS("#stats-button")))
	k.waitFor("the stats panel", `el("#stats-panel").checkVisibility() && /kbit\/s/.test(text("#stats-body")) && /VP8 \d+×\d+/.test(text("#stats-body"))`)
	k.waitFor("a connection-quality grade", `el("#quality").dataset.quality !== "unknown"`)
	t.Logf("connection indicator: %s %q; stats: %q", k.eval(`el("#quality").dataset.quality`), k.eval(`text("#quality")`), k.eval(`text("#stats-body")`))
	k.checkCallFits()
	k.screenshot("kiosk-call-panels.png", 1920, 1080)
	k.do("back to the grid", chromedp.Click(chromedp.CSS("#layout-button")))
	k.waitFor("the grid view", `el("#call-stage").dataset.layout === "grid" && el("#tiles .tile[data-state=playing]").checkVisibility()`)

	// The privacy switches: the page shows what roomd says, and roomd's
	// call status agrees.
	k.do("press Mute", chromedp.Click(chromedp.CSS("#mute-button")))
	k.waitFor("the muted state", `el("#mute-button").getAttribute("aria-pressed") === "true" && el("#muted-badge").checkVisibility() && text("#mute-button") === "Unmute"`)
	k.do("press Stop camera", chromedp.Click(chromedp.CSS("#camera-button")))
	k.waitFor("the camera off", `el("#camera-button").getAttribute("aria-pressed") === "true" && text("#camera-button") === "Start camera"`)
	if st, err := d.Client.Status(ctx); err != nil || st.Call == nil || !st.Call.MicrophoneMuted || !st.Call.CameraOff {
		k.fatalf("roomd's call status after the kiosk's switches: %+v, %v", st.Call, err)
	}
	k.screenshot("kiosk-call-muted.png", 1920, 1080)
	k.do("press Unmute", chromedp.Click(chromedp.CSS("#mute-button")))
	k.do("press Start camera", chromedp.Click(chromedp.CSS("#camera-button")))
	k.waitFor("unmuted, camera on", `el("#mute-button").getAttribute("aria-pressed") === "false" && !el("#muted-badge").checkVisibility() && el("#camera-button").getAttribute("aria-pressed") === "false"`)

	k.do("press Leave", chromedp.Click(chromedp.CSS("#call-leave-button")))
	k.waitFor("the home screen after leaving", `el("#meeting-state").dataset.state === "left" && !el("#call").checkVisibility() && el("#join-button").checkVisibility()`)
	if got := k.eval(`document.querySelectorAll(".tile").length`); got != "0" {
		k.fatalf("%s tiles left after leaving", got)
	}
	// The page closed its video WebSocket, as roomd saw.
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(d.Log(), "video client disconnected") {
		if time.Now().After(deadline) {
			k.fatalf("roomd never saw the kiosk's video feed close:\n%s", d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := g.WaitFeedGone(ctx, d.Room); err != nil {
		t.Fatalf("the guest still sees the room after Leave: %v", err)
	}
	k.checkConsole()
}

// tileShot takes a screenshot, saves it and returns the pixels of the
// playing tile's canvas: what a person sees of the far end.
func (k *kiosk) tileShot(name string) image.Image {
	k.t.Helper()
	var r struct{ X, Y, W, H float64 }
	if err := json.Unmarshal([]byte(k.eval(`JSON.stringify((() => {
		const b = el("#tiles .tile[data-state=playing] canvas").getBoundingClientRect();
		return {X: b.x, Y: b.y, W: b.width, H: b.height};
	})())`)), &r); err != nil {
		k.fatalf("tile rectangle: %v", err)
	}
	buf, err := chromedp.Run(k.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		k.fatalf("screenshot: %v", err)
	}
	k.save(name, buf)
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		k.t.Fatalf("screenshot %s: %v", name, err)
	}
	rect := image.Rect(int(r.X)+4, int(r.Y)+4, int(r.X+r.W)-4, int(r.Y+r.H)-4).Intersect(img.Bounds())
	if rect.Dx() < 200 || rect.Dy() < 100 {
		k.fatalf("the tile is only %v on screen", rect)
	}
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(rect)
}

func (k *kiosk) save(name string, buf []byte) {
	dir := os.Getenv("ATRIUM_ARTIFACTS")
	if dir == "" {
		dir = k.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		k.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		k.t.Fatal(err)
	}
	k.t.Logf("screenshot: %s", path)
}

// checkMovingVideo fails unless both shots of the tile show a picture (luma
// spread well beyond a flat colour) and they differ in a fair share of
// pixels: the far end's video is playing, not frozen or blank.
func checkMovingVideo(t *testing.T, a, b image.Image) {
	t.Helper()
	for i, img := range []image.Image{a, b} {
		if sd := lumaStdDev(img); sd < 8 {
			t.Errorf("tile shot %d is nearly uniform (luma standard deviation %.1f): no picture", i+1, sd)
		} else {
			t.Logf("tile shot %d: %v, luma standard deviation %.1f", i+1, img.Bounds().Size(), sd)
		}
	}
	// Chromium's fake camera paints green: the tile shows the guest's
	// camera, not some other picture.
	green, all := 0, 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y += 2 {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x += 2 {
			r, g, b, _ := a.At(x, y).RGBA()
			all++
			if g>>8 > r>>8+40 && g>>8 > b>>8+40 {
				green++
			}
		}
	}
	if share := float64(green) / float64(all); share < 0.5 {
		t.Errorf("only %.1f%% of the tile is the guest camera's green", 100*share)
	}
	changed, total := 0, 0
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			total++
			if math.Abs(luma(a, x, y)-luma(b, x, y)) > 16 {
				changed++
			}
		}
	}
	if share := float64(changed) / float64(max(total, 1)); changed < 500 {
		t.Errorf("only %d pixels (%.2f%%) of the tile changed in a second: the video is not moving", changed, 100*share)
	} else {
		t.Logf("%d pixels (%.2f%%) of the tile changed in a second", changed, 100*share)
	}
}

func luma(img image.Image, x, y int) float64 {
	r, g, b, _ := img.At(x, y).RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}

func lumaStdDev(img image.Image) float64 {
	var n, sum, sq float64
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			l := luma(img, x, y)
			n++
			sum += l
			sq += l * l
		}
	}
	mean := sum / n
	return math.Sqrt(max(sq/n-mean*mean, 0))
}

// checkCallFits fails the test if the in-call screen scrolls or a control
// lies outside the viewport.
func (k *kiosk) checkCallFits() {
	k.t.Helper()
	got := k.eval(`(() => {
		const bad = [];
		const de = document.documentElement;
		if (de.scrollWidth > innerWidth || de.scrollHeight > innerHeight) bad.push("page scrolls");
		for (const e of document.querySelectorAll("#call button, #quality, .tile, .panel")) {
			if (!e.checkVisibility()) continue;
			const r = e.getBoundingClientRect();
			if (r.left < -1 || r.top < -1 || r.right > innerWidth + 1 || r.bottom > innerHeight + 1) bad.push((e.id || e.className) + " " + JSON.stringify(r));
			if (e.tagName === "BUTTON" && (r.width < 64 || r.height < 64)) bad.push((e.id || e.className) + " is a small touch target " + r.width + "x" + r.height);
		}
		return bad.join("; ");
	})()`)
	if got != "" {
		k.fatalf("the in-call screen does not fit: %s", got)
	}
}
