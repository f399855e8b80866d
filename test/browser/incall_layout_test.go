package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/url"
	"regexp"
	"strconv"
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

// TestKioskInCallLayouts puts the kiosk in a real Janus room with several
// Chromium guests and checks the in-call screen's layouts with real video:
//
//   - a guest sharing a screen (a second video track, described "screen"):
//     the screen takes the stage, moving, and both guests' cameras play in
//     the filmstrip beside it, each tile named;
//   - the self-view: the room's own video in a corner, mirrored and moving;
//     "Camera off" while the camera is off; hidden and back on request;
//   - what the page asks roomd for (view messages): every tile on screen at
//     its size, rounded to the ladder, the screen large and the filmstrip
//     small, and roomd's feed agreeing;
//   - audio levels from roomd for each participant;
//   - the speaker volume slider, by keyboard;
//   - with the presenter gone and a third guest in: the grid with two
//     remote cameras, both moving.
//
// It needs roomd's glue (the feed's Describe, OnView, Levels and the local
// video sink) to see "screen" and "self" tracks.
func TestKioskInCallLayouts(t *testing.T) {
	srv := janustest.Start(t)
	d := roomdtest.Start(t, roomdtest.Options{})
	ctx := roomdtest.Context(t, 4*time.Minute)
	presenter := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Presenter", Screen: true})
	alice := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Alice"})
	for _, g := range []*guest.Guest{presenter, alice} {
		if err := g.WaitJoined(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("roomd log:\n%s", d.Log())
		}
	}()

	k := startKioskFor(t, 4*time.Minute)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	k.stubVolume()
	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.Client.Join(ctx, fmt.Sprintf("janus+ws://%s/?room=%d", u.Host, janustest.Room)); err != nil {
		t.Fatalf("join: %v (%+v)", err, m)
	}
	k.waitFor("the in-call screen", `el("#meeting-state").dataset.state === "connected" && el("#call").checkVisibility()`)

	// The screen share takes the stage; the cameras play beside it.
	k.waitFor("the screen-share layout", `el("#call-stage").dataset.layout === "screen"`)
	k.waitFor("the screen playing on the main tile",
		`el(".tile.tile-main").dataset.kind === "screen" && Number(el(".tile.tile-main").dataset.frames) > 10`)
	k.waitFor("both cameras playing in the filmstrip",
		`[...document.querySelectorAll(".tile[data-kind=camera]")].filter(t => Number(t.dataset.frames) > 10).length === 2`)
	k.waitFor("the tiles' names", `text(".tile.tile-main .tile-name") === "Presenter's screen" &&
		[...document.querySelectorAll(".tile[data-kind=camera] .tile-name")].map(n => n.textContent).sort().join() === "Alice,Presenter"`)
	main := k.rect(`.tile.tile-main`)
	for _, sel := range []string{`.tile[data-kind=camera]`, `.tile[data-kind=camera] ~ .tile[data-kind=camera]`} {
		if r := k.rect(sel); r.Dx()*r.Dy()*4 > main.Dx()*main.Dy() {
			k.fatalf("filmstrip tile %s is %v, the screen only %v: the screen is not the big one", sel, r, main)
		}
	}
	screen1 := k.pictureShot(`.tile.tile-main canvas`, "layout-screen-1.png")
	time.Sleep(time.Second)
	screen2 := k.pictureShot(`.tile.tile-main canvas`, "layout-screen-2.png")
	checkScreenShare(t, screen1, screen2)
	for i, sel := range []string{`.tile[data-kind=camera] canvas`, `.tile[data-kind=camera] ~ .tile[data-kind=camera] canvas`} {
		a := k.pictureShot(sel, fmt.Sprintf("layout-film-%d-1.png", i))
		time.Sleep(500 * time.Millisecond)
		b := k.pictureShot(sel, fmt.Sprintf("layout-film-%d-2.png", i))
		checkMovingVideo(t, a, b)
	}
	k.checkCallFits()
	k.screenshot("kiosk-layout-screen.png", 1920, 1080)

	// The self-view: the room's own (simulated) camera, mirrored, moving.
	k.waitFor("the self-view playing", `el("#self-view").checkVisibility() && Number(el("#self-view .tile").dataset.frames) > 10`)
	if got := k.eval(`getComputedStyle(el("#self-view canvas")).transform`); !strings.HasPrefix(got, "matrix(-1") {
		k.fatalf("the self-view is not mirrored: transform %q", got)
	}
	self1 := k.pictureShot(`#self-view canvas`, "layout-self-1.png")
	time.Sleep(time.Second)
	self2 := k.pictureShot(`#self-view canvas`, "layout-self-2.png")
	checkPicture(t, "self-view", self1, self2)

	// What the page asked for: every tile at its size on the ladder.
	view := k.view()
	selfN := k.eval(`el("#self-view .tile").dataset.track`)
	mainN := k.eval(`el(".tile.tile-main").dataset.track`)
	if v := view[mainN]; v[0] < 1280 {
		k.fatalf("the screen is asked for at %v (view %v), want at least 1280 wide", v, view)
	}
	for _, n := range strings.Fields(k.eval(`[...document.querySelectorAll(".tile[data-kind=camera]")].map(t => t.dataset.track).join(" ")`)) {
		if v, ok := view[n]; !ok || v[0] > 640 || v[0] < 320 {
			k.fatalf("filmstrip track %s is asked for at %v (view %v), want 320 to 640 wide", n, v, view)
		}
	}
	if v, ok := view[selfN]; !ok || v[0] < 320 {
		k.fatalf("the self track %s is not in the view %v", selfN, view)
	}
	if len(view) != 4 {
		k.fatalf("the view lists %d tracks, want the screen, two cameras and the self-view: %v", len(view), view)
	}
	// roomd's feed saw the same (slog quotes a value with spaces).
	waitLog(t, d, `level=DEBUG msg="video view" subsystem=videofeed tracks="`+k.eval(`el("#call-stage").dataset.view`)+`"`)

	// Audio levels: about four a second, for both guests.
	before := k.levelCount()
	time.Sleep(1500 * time.Millisecond)
	if n := k.levelCount() - before; n < 4 || n > 9 {
		k.fatalf("%d levels messages in 1.5 s, want about 6", n)
	}
	ids := k.eval(`[...document.querySelectorAll(".tile[data-kind=camera]")].map(t => t.dataset.participant).sort().join(" ")`)
	if got := k.eval(`el("#call-stage").dataset.levelIds`); got != ids {
		k.fatalf("levels for %q, want the guests %q", got, ids)
	}

	// Camera off: the self-view says so; hidden: only its button stays,
	// and the page stops asking for it.
	k.do("press Stop camera", chromedp.Click(chromedp.CSS("#camera-button")))
	k.waitFor("Camera off in the self-view", `el("#self-view").dataset.state === "camera-off" && el(".self-view-off").checkVisibility() && text(".self-view-off") === "Camera off"`)
	k.do("press Start camera", chromedp.Click(chromedp.CSS("#camera-button")))
	k.waitFor("the self-view back", `el("#self-view").dataset.state === "on" && !el(".self-view-off").checkVisibility()`)
	k.do("hide the self-view", chromedp.Click(chromedp.CSS("#self-view-toggle")))
	k.waitFor("the self-view hidden", fmt.Sprintf(`el("#self-view").dataset.state === "hidden" && !el("#self-view .tile").checkVisibility() &&
		el("#self-view-toggle").checkVisibility() && !el("#call-stage").dataset.view.split(" ").some(v => v.startsWith(%s + ":"))`, chromium.JSString(selfN)))
	k.checkCallFits()
	k.do("show the self-view", chromedp.Click(chromedp.CSS("#self-view-toggle")))
	k.waitFor("the self-view playing again", `el("#self-view").dataset.state === "on" && Number(el("#self-view .tile").dataset.frames) > 5`)

	// The speaker volume: arrow keys on the slider set the speaker's
	// volume through the API.
	k.waitFor("the volume button", `el("#volume-button").checkVisibility() && el("#volume-slider").value === "40" && text("#volume-button") === "40%"`)
	k.do("press the volume button", chromedp.Click(chromedp.CSS("#volume-button")))
	k.waitFor("the volume slider, focused", `el("#volume-popover").checkVisibility() && document.activeElement.id === "volume-slider"`)
	for range 3 {
		k.do("press the right arrow", chromedp.KeyEvent(kb.ArrowRight))
	}
	k.waitFor("the volume sent", `el("#volume-slider").value === "43" && text("#volume-button") === "43%" && window.volumeSets.at(-1) === 43`)
	if r := k.rect(`#volume-slider`); r.Dy() < 64 || r.Dx() < 400 {
		k.fatalf("the volume slider is a small target: %v", r)
	}
	k.checkCallFits()
	k.do("press Escape", chromedp.KeyEvent(kb.Escape))
	k.waitFor("the popover closed", `!el("#volume-popover").checkVisibility() && document.activeElement.id === "volume-button"`)

	// The presenter leaves: no screen; a third guest comes: the grid with
	// two remote cameras.
	if err := presenter.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	k.waitFor("the grid without the screen", `el("#call-stage").dataset.layout === "grid" && el("#tiles").dataset.count === "1"`)
	bob := guest.Start(t, guest.Options{JanusWS: srv.WSURL, Room: janustest.Room, Display: "Bob"})
	if err := bob.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	k.waitFor("two remote cameras playing in the grid", `el("#call-stage").dataset.layout === "grid" && el("#tiles").dataset.count === "2" &&
		[...document.querySelectorAll("#tiles .tile")].filter(t => Number(t.dataset.frames) > 10).length === 2`)
	k.waitFor("the grid's names", `[...document.querySelectorAll("#tiles .tile-name")].map(n => n.textContent).sort().join() === "Alice,Bob"`)
	for i := range 2 {
		sel := fmt.Sprintf(`#tiles .tile:nth-child(%d) canvas`, i+1)
		a := k.pictureShot(sel, fmt.Sprintf("layout-grid-%d-1.png", i))
		time.Sleep(500 * time.Millisecond)
		b := k.pictureShot(sel, fmt.Sprintf("layout-grid-%d-2.png", i))
		checkMovingVideo(t, a, b)
	}
	// Two tiles side by side on 1920x1080: each about 950 pixels wide.
	waitFor(t, "the grid's view", func() bool {
		view = k.view()
		n := 0
		for _, tr := range strings.Fields(k.eval(`[...document.querySelectorAll("#tiles .tile")].map(t => t.dataset.track).join(" ")`)) {
			if v := view[tr]; v == [2]int{960, 540} {
				n++
			}
		}
		return n == 2
	}, func() string { return fmt.Sprint(view) })
	k.checkCallFits()
	k.screenshot("kiosk-layout-grid.png", 1920, 1080)
	k.checkConsole()
}

// TestInCallLogic runs the in-call screen's decisions in the kiosk page on
// inputs of its own (call.js's exports, imported into the page): the
// active-speaker choice from levels over time, the view-size ladder, and
// the layouts with more tracks than the guests a test can afford (grid
// paging past 3x3, the filmstrip's limit and order).
func TestInCallLogic(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	k := startKiosk(t)
	k.do("open the kiosk", chromedp.Navigate(d.URL+"/"))
	k.waitFor("the page", `el("#connection").dataset.state === "connected"`)
	got := k.evalAsync(`(async () => {
		const { SpeakerPicker, viewSize } = await import("/call.js");
		const p = new SpeakerPicker();
		const out = [];
		const step = (t, levels) => out.push(t + ":" + p.update(levels, t));
		step(0, {a: -127, b: -127});      // nobody yet
		step(100, {a: -30, b: -60});      // a speaks: takes the empty stage
		step(200, {a: -30, b: -20});      // b leads by 10 dB...
		step(1000, {a: -30, b: -20});     // ...not long enough yet
		step(1700, {a: -30, b: -20});     // 1.5 s of lead: b
		step(1800, {a: -127, b: -127});   // silence keeps b
		step(5000, {a: -127, b: -127});
		step(5100, {a: -25, b: -20});     // a speaks, but 5 dB under b
		step(8000, {a: -25, b: -20});
		step(8100, {a: -10, b: -127});    // a leads
		step(9000, {a: -10, b: -12});     // the lead breaks
		step(9100, {a: -10, b: -127});    // and starts again
		step(10000, {a: -10, b: -127});   // 0.9 s: not yet
		step(10700, {a: -10, b: -127});   // 1.6 s: a
		step(10800, {b: -20});            // a left: b at once
		const sizes = [[950, 534], [1900, 940], [300, 300], [418, 230], [4000, 3000], [640, 2000]]
			.map(([w, h]) => { const v = viewSize(w, h); return v.width + "x" + v.height; });
		return out.join(" ") + " | " + sizes.join(" ");
	})()`)
	want := "0:null 100:a 200:a 1000:a 1700:b 1800:b 5000:b 5100:b 8000:b 8100:b 9000:b 9100:b 10000:b 10700:a 10800:b" +
		" | 960x540 1920x1080 320x180 640x360 1920x1080 640x360"
	if got != want {
		t.Errorf("speaker picks and sizes:\n got %s\nwant %s", got, want)
	}

	got = k.evalAsync(`(async () => {
		const { arrangeTracks } = await import("/call.js");
		// Eleven cameras (participant "p<n>"), the self-view, maybe a screen.
		const cams = Array.from({length: 11}, (_, i) => ({n: i + 2, kind: "camera", participant: "p" + (i + 2)}));
		const self = {n: 1, kind: "self", participant: ""};
		const screen = {n: 20, kind: "screen", participant: "p5"};
		const opts = (o) => ({layout: "grid", page: 0, speaker: null, speakerOf: (t) => t.participant, ...o});
		const show = (a) => a.layout + " page " + a.page + "/" + a.pages + " self " + (a.self ? a.self.n : "-") + ": " + a.shown.map((t) => t.n).join(",");
		return [
			show(arrangeTracks([self, ...cams], opts({}))),
			show(arrangeTracks([...cams, self], opts({page: 1}))),
			show(arrangeTracks(cams, opts({page: 7}))),
			show(arrangeTracks([self, ...cams], opts({layout: "speaker", speaker: "p9"}))),
			show(arrangeTracks([self, ...cams], opts({layout: "speaker", speaker: "gone"}))),
			show(arrangeTracks([self, screen, ...cams], opts({speaker: "p9"}))),
			show(arrangeTracks([self, screen, ...cams], opts({layout: "speaker"}))),
		].join(" | ");
	})()`)
	want = "grid page 0/2 self 1: 2,3,4,5,6,7,8,9,10 | grid page 1/2 self 1: 11,12 | grid page 1/2 self -: 11,12" +
		" | speaker page 0/1 self 1: 9 | speaker page 0/1 self 1: 2" +
		" | screen page 0/1 self 1: 20,9,2,3,4 | screen page 0/1 self 1: 20,2,3,4,5"
	if got != want {
		t.Errorf("layouts:\n got %s\nwant %s", got, want)
	}
}

// evalAsync returns the value of a JavaScript expression, a promise of a
// string, once it settles.
func (k *kiosk) evalAsync(expr string) string {
	k.t.Helper()
	v, err := chromedp.Run(k.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		k.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// stubVolume gives the page a speaker with a volume control, which the
// simulated speaker lacks: GET /api/v1/devices gains "test-speaker" at
// 40%, and the page's PUTs of its volume are recorded in
// window.volumeSets and answered as a driver would. Everything else goes to
// roomd.
func (k *kiosk) stubVolume() {
	k.t.Helper()
	k.evalAsync(`(async () => {
		window.volumeSets = [];
		const real = window.fetch.bind(window);
		const device = (value) => ({id: "test-speaker", kind: "speaker", name: "Test speaker", driver: "test", simulated: false,
			echoCancelled: true, controls: [{id: "volume", name: "Volume", type: "int", min: 0, max: 100, step: 1, default: 50, value}]});
		const json = (v) => new Response(JSON.stringify(v), {status: 200, headers: {"Content-Type": "application/json"}});
		window.fetch = async (url, opts = {}) => {
			const u = String(url);
			if (u === "/api/v1/devices" && (opts.method || "GET") === "GET") {
				const list = await (await real(url, opts)).json();
				list.devices.push(device(40));
				return json(list);
			}
			if (u === "/api/v1/devices/test-speaker/controls/volume" && opts.method === "PUT") {
				const v = JSON.parse(opts.body).value;
				window.volumeSets.push(v);
				return json(device(v));
			}
			return real(url, opts);
		};
		return "";
	})()`)
}

// rect is where an element is on the page, in CSS pixels (the viewport is
// at one device pixel per CSS pixel).
func (k *kiosk) rect(sel string) image.Rectangle {
	k.t.Helper()
	var r struct{ X, Y, W, H float64 }
	js := fmt.Sprintf(`JSON.stringify((() => { const b = el(%s).getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })())`, chromium.JSString(sel))
	if err := json.Unmarshal([]byte(k.eval(js)), &r); err != nil {
		k.fatalf("rectangle of %s: %v", sel, err)
	}
	return image.Rect(int(r.X), int(r.Y), int(r.X+r.W), int(r.Y+r.H))
}

// pictureShot takes a screenshot, saves it and returns the pixels of the
// picture a canvas shows: the canvas is scaled to fit its box
// (object-fit: contain), so the bars beside the picture are left out.
func (k *kiosk) pictureShot(canvasSel, name string) image.Image {
	k.t.Helper()
	var r struct{ X, Y, W, H float64 }
	js := fmt.Sprintf(`JSON.stringify((() => {
		const c = el(%s);
		const b = c.getBoundingClientRect();
		const ar = c.width / c.height;
		let w = b.width, h = b.height;
		if (w / h > ar) w = h * ar; else h = w / ar;
		return {X: b.x + (b.width - w) / 2, Y: b.y + (b.height - h) / 2, W: w, H: h};
	})())`, chromium.JSString(canvasSel))
	if err := json.Unmarshal([]byte(k.eval(js)), &r); err != nil {
		k.fatalf("picture of %s: %v", canvasSel, err)
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
	rect := image.Rect(int(r.X)+3, int(r.Y)+3, int(r.X+r.W)-3, int(r.Y+r.H)-3).Intersect(img.Bounds())
	if rect.Dx() < 150 || rect.Dy() < 80 {
		k.fatalf("the picture of %s is only %v on screen", canvasSel, rect)
	}
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(rect)
}

// viewPattern reads #call-stage's data-view: "n:WxH" items.
var viewPattern = regexp.MustCompile(`^(\d+):(\d+)x(\d+)$`)

// view is what the page last asked roomd for: track number → size.
func (k *kiosk) view() map[string][2]int {
	k.t.Helper()
	out := map[string][2]int{}
	for _, item := range strings.Fields(k.eval(`el("#call-stage").dataset.view || ""`)) {
		m := viewPattern.FindStringSubmatch(item)
		if m == nil {
			k.fatalf("view item %q", item)
		}
		w, _ := strconv.Atoi(m[2])
		h, _ := strconv.Atoi(m[3])
		out[m[1]] = [2]int{w, h}
	}
	return out
}

func (k *kiosk) levelCount() int {
	k.t.Helper()
	n, _ := strconv.Atoi(k.eval(`el("#call-stage").dataset.levelCount || "0"`))
	return n
}

// waitLog waits until roomd's log has a line containing s.
func waitLog(t *testing.T, d interface{ Log() string }, s string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(d.Log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("roomd never logged %s", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until waitTimeout; detail says what was seen last.
func waitFor(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last %s", what, detail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkScreenShare fails unless both shots show the guest's shared screen
// (white with dark blue bars, no camera green) and it moves between them.
func checkScreenShare(t *testing.T, a, b image.Image) {
	t.Helper()
	white, blue, green, all := 0, 0, 0, 0
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := a.At(x, y).RGBA()
			cr, cg, cb = cr>>8, cg>>8, cb>>8
			all++
			switch {
			case cr > 200 && cg > 200 && cb > 200:
				white++
			case cb > cr+40 && cb > cg+40:
				blue++
			case cg > cr+40 && cg > cb+40:
				green++
			}
		}
	}
	if float64(white)/float64(all) < 0.5 || blue == 0 || float64(green)/float64(all) > 0.05 {
		t.Errorf("the main tile is not the shared screen: %d%% white, %d%% blue, %d%% green",
			100*white/all, 100*blue/all, 100*green/all)
	} else {
		t.Logf("screen tile %v: %d%% white, %d%% blue", r.Size(), 100*white/all, 100*blue/all)
	}
	checkPicture(t, "screen share", a, b)
}

// checkPicture fails unless both shots are pictures (not a flat fill) and
// they differ in a fair number of pixels: the video plays.
func checkPicture(t *testing.T, what string, a, b image.Image) {
	t.Helper()
	for i, img := range []image.Image{a, b} {
		if sd := lumaStdDev(img); sd < 8 {
			t.Errorf("%s shot %d is nearly uniform (luma standard deviation %.1f)", what, i+1, sd)
		}
	}
	changed := 0
	r := a.Bounds().Intersect(b.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if math.Abs(luma(a, x, y)-luma(b, x, y)) > 16 {
				changed++
			}
		}
	}
	if changed < 200 {
		t.Errorf("only %d pixels of the %s changed: not moving", changed, what)
	} else {
		t.Logf("%s %v: %d pixels changed between shots", what, r.Size(), changed)
	}
}
