package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/roomdtest"
)

const (
	// browserTimeout bounds everything the browser does in one test, so a
	// hung browser fails the test instead of stalling until go test's own
	// 10-minute timeout.
	browserTimeout = 60 * time.Second

	// waitTimeout bounds each wait for the page to reach a state; it is
	// shorter than browserTimeout so that a failure names the step.
	waitTimeout = 15 * time.Second
)

// TestKiosk loads the kiosk from a real roomd with simulated devices and
// uses it as a person in the room would: reads the room name, the clock and
// the devices, tries to join a meeting and reads why roomd refused.
func TestKiosk(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	k := startKiosk(t)

	k.do("open the kiosk",
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(d.URL+"/"),
	)

	k.waitFor("the room name", fmt.Sprintf(`text("#room-name") === %s`, chromium.JSString(d.Room)))
	k.waitFor("the connection indicator to say connected",
		`el("#connection").dataset.state === "connected" && !/reconnecting/i.test(text("#connection"))`)

	// The clock ticks: its datetime (to the second) changes within a couple
	// of seconds, and it shows digits, not the placeholder.
	first := k.eval(`el("#clock").dateTime`)
	if first == "" || !strings.ContainsAny(k.eval(`text("#clock")`), "0123456789") {
		k.fatalf("clock not running: datetime %q, text %q", first, k.eval(`text("#clock")`))
	}
	k.waitFor("the clock to tick", fmt.Sprintf(`el("#clock").dateTime !== %s`, chromium.JSString(first)))

	for _, kind := range []string{"camera", "microphone", "speaker"} {
		k.waitFor("the simulated "+kind,
			fmt.Sprintf(`el("#device-%s").dataset.status === "simulated" && /simulated/i.test(text("#device-%[1]s"))`, kind))
	}
	k.waitFor("the meeting state to be idle", `el("#meeting-state").dataset.state === "idle"`)
	if k.eval(`String(el("#leave-button").checkVisibility())`) != "false" {
		k.fatalf("Leave button visible while not in a meeting")
	}
	k.checkFits("home screen at 1920x1080")
	k.screenshot("kiosk-home.png", 1920, 1080)

	// A well-formed URL that no provider takes: roomd answers 422.
	k.do("type a meeting URL and press Join",
		chromedp.SendKeys(chromedp.CSS("#join-url"), "https://meet.example.com/room/42"),
		chromedp.Click(chromedp.CSS("#join-button")),
	)
	k.waitFor("the no-provider error",
		`el("#join-error").checkVisibility() && /provider/i.test(text("#join-error"))`)
	if got := k.eval(`el("#join-error").getAttribute("role")`); got != "alert" {
		k.fatalf("#join-error role = %q, want alert", got)
	}
	t.Logf("no-provider error: %q", k.eval(`text("#join-error")`))
	if !strings.Contains(k.eval(`text("#join-error")`), "meet.example.com/room/42") {
		k.fatalf("the error does not name the URL: %q", k.eval(`text("#join-error")`))
	}
	k.checkFits("no-provider error at 1920x1080")
	k.screenshot("kiosk-join-error.png", 1920, 1080)

	// Not a URL at all: roomd answers 400 invalid-url, submitted with Enter
	// this time. The new error replaces the old one.
	k.do("type an invalid URL and press Enter",
		// Like select-all and delete; chromedp.Clear only resets the value
		// attribute, which a field that has been typed into ignores.
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#join-url").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#join-url"), "not a url\r"),
	)
	k.waitFor("the invalid-URL error",
		`el("#join-error").checkVisibility() && /invalid/i.test(text("#join-error")) && !/provider/i.test(text("#join-error"))`)
	t.Logf("invalid-URL error: %q", k.eval(`text("#join-error")`))

	k.waitFor("the page to still be connected",
		`el("#connection").dataset.state === "connected" && !/reconnecting/i.test(text("#connection"))`)

	// The smallest screen the kiosk supports still shows everything.
	k.do("resize to 1280x720", chromedp.EmulateViewport(1280, 720))
	k.checkFits("invalid-URL error at 1280x720")
	k.screenshot("kiosk-720p.png", 1280, 720)

	k.checkConsole()
}

// TestKioskFollowsRestart restarts roomd under an open kiosk, as an upgrade
// does: the page must say it lost roomd, come back by itself, and reload
// because the new roomd has a new boot ID (and maybe a new UI).
func TestKioskFollowsRestart(t *testing.T) {
	first := roomdtest.Start(t, roomdtest.Options{})
	k := startKiosk(t)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(first.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	// A reload forgets this; nothing else does.
	k.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.atriumTestMarker = true`))

	if _, err := first.Stop(); err != nil {
		t.Fatalf("stop roomd: %v\n--- roomd log ---\n%s", err, first.Log())
	}
	k.waitFor("the reconnecting notice",
		`el("#connection").dataset.state === "reconnecting" && /Reconnecting to roomd/.test(text("#connection"))`)
	k.screenshot("kiosk-reconnecting.png", 1920, 1080)

	addr := strings.TrimPrefix(first.URL, "http://")
	second := roomdtest.Start(t, roomdtest.Options{Config: func(c *config.Config) {
		c.API.Listen = []string{addr}
	}})
	k.waitFor("the page to reload for the new roomd", `window.atriumTestMarker === undefined`)
	k.waitFor("the room name after the restart", fmt.Sprintf(`text("#room-name") === %s`, chromium.JSString(second.Room)))
	k.waitFor("the connection indicator to say connected again", `el("#connection").dataset.state === "connected"`)
	k.checkConsole()
}

// kiosk is one headless Chromium tab and the test that drives it.
type kiosk struct {
	t       *testing.T
	ctx     context.Context
	browser *chromium.Browser
}

// pageHelpers is evaluated before each expression the test runs in the page,
// so that the expressions stay short.
const pageHelpers = `
const el = (sel) => document.querySelector(sel) || document.createElement("div");
const text = (sel) => el(sel).textContent.replace(/\s+/g, " ").trim();
`

// startKiosk launches Chromium with a fresh profile, bounded by
// browserTimeout.
func startKiosk(t *testing.T) *kiosk {
	t.Helper()
	return startKioskFor(t, browserTimeout)
}

// startKioskFor is startKiosk bounded by timeout instead.
func startKioskFor(t *testing.T, timeout time.Duration) *kiosk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel) // after the browser has closed: cleanups run last-in first-out
	b := chromium.Start(t, chromium.Options{
		Name:   "kiosk",
		Parent: ctx,
		Flags:  []chromedp.ExecAllocatorOption{chromedp.Flag("mute-audio", true)},
	})
	return &kiosk{t: t, ctx: b.Tab(), browser: b}
}

func (k *kiosk) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	k.t.Helper()
	if err := chromedp.Do(k.ctx, actions...); err != nil {
		k.fatalf("%s: %v", step, err)
	}
}

// eval returns the value of a JavaScript expression as a string.
func (k *kiosk) eval(expr string) string {
	k.t.Helper()
	v, err := chromedp.Run(k.ctx, chromedp.Evaluate[string](
		fmt.Sprintf("(() => { %s; return String(%s); })()", pageHelpers, expr)))
	if err != nil {
		k.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript condition holds in the page. A poll
// does not survive a navigation, and the kiosk reloads itself, so a poll that
// the page cut short is started again until waitTimeout.
func (k *kiosk) waitFor(what, cond string) {
	k.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := chromedp.Run(k.ctx, chromedp.PollFunction[bool](
			fmt.Sprintf("() => { %s; return Boolean(%s); }", pageHelpers, cond),
			chromedp.WithPollingInterval(100*time.Millisecond),
			chromedp.WithPollingTimeout(time.Until(deadline)),
		))
		if err == nil {
			return
		}
		if k.ctx.Err() != nil || errors.Is(err, chromedp.ErrPollingTimeout) || time.Now().After(deadline) {
			k.fatalf("waiting for %s (%s): %v", what, cond, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fatalf fails the test with what the page shows, which is usually the
// quickest way to see why.
func (k *kiosk) fatalf(format string, args ...any) {
	k.t.Helper()
	state, err := chromedp.Run(k.ctx, chromedp.Evaluate[string](`(() => { `+pageHelpers+`
		return JSON.stringify({
			url: location.href,
			connection: text("#connection"),
			room: text("#room-name"),
			clock: text("#clock"),
			meeting: el("#meeting-state").dataset.state + ": " + text("#meeting-state"),
			devices: [...document.querySelectorAll("#devices > *")].map(d => d.id + "=" + d.dataset.status),
			joinError: el("#join-error").hidden ? "(hidden)" : text("#join-error"),
		}, null, 1);
	})()`))
	if err != nil {
		state = "(page state unavailable: " + err.Error() + ")"
	}
	k.t.Fatalf(format+"\npage state: %s", append(args, state)...)
}

// checkFits fails the test if the page scrolls or a key element lies
// outside the viewport: a kiosk has no scroll bar to reach it.
func (k *kiosk) checkFits(what string) {
	k.t.Helper()
	got := k.eval(`(() => {
		const bad = [];
		const de = document.documentElement;
		if (de.scrollWidth > innerWidth || de.scrollHeight > innerHeight) {
			bad.push("page scrolls: " + de.scrollWidth + "x" + de.scrollHeight + " in " + innerWidth + "x" + innerHeight);
		}
		for (const sel of ["#room-name", "#clock", "#meeting-state", ".join-card", "#join-url", "#join-button", "#join-error", "#devices", "#connection"]) {
			const e = document.querySelector(sel);
			if (!e || !e.checkVisibility()) continue;
			const r = e.getBoundingClientRect();
			const card = e.parentElement.closest(".join-card");
			const box = card ? card.getBoundingClientRect() : {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
			if (r.left < box.left - 1 || r.top < box.top - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1) {
				bad.push(sel + " overflows: " + JSON.stringify(r));
			}
		}
		return bad.join("; ");
	})()`)
	if got != "" {
		k.fatalf("%s does not fit: %s", what, got)
	}
}

// screenshot saves the viewport as a PNG in $ATRIUM_ARTIFACTS, or in a
// temporary directory that lasts as long as the test.
func (k *kiosk) screenshot(name string, wantW, wantH int) {
	k.t.Helper()
	buf, err := chromedp.Run(k.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		k.fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		k.t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if cfg.Width != wantW || cfg.Height != wantH {
		k.t.Errorf("screenshot %s is %dx%d, want %dx%d", name, cfg.Width, cfg.Height, wantW, wantH)
	}
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

// checkConsole fails the test on uncaught exceptions and on anything the
// Content-Security-Policy blocked: both would break the kiosk in the
// webview without any other sign. The page's own failed requests (roomd's
// 4xx answers to the joins above) are expected and allowed.
func (k *kiosk) checkConsole() {
	k.t.Helper()
	for _, m := range k.browser.Console() {
		s := m.String()
		if m.IsException() || strings.Contains(s, "Content Security Policy") || strings.Contains(s, "Refused to") {
			k.t.Errorf("browser console: %s", s)
		}
	}
}
