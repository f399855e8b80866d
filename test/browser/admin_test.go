package browser

import (
	"context"
	"fmt"
	"image"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// testPIN is the admin PIN the tests set through roomd's unix socket.
const testPIN = "2468"

// setAdminPIN sets the PIN as an administrator on the device would
// (roomctl admin set-pin): over the unix socket, without the current one.
func setAdminPIN(t *testing.T, d *roomdtest.Daemon, pin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := d.Client.SetAdminPIN(ctx, "", pin); err != nil {
		t.Fatalf("set the admin PIN over the unix socket: %v\n--- roomd log ---\n%s", err, d.Log())
	}
}

// TestAdminSettings unlocks the settings with the PIN pad and uses every
// pane as an administrator in the room would: a wrong PIN first, then the
// room name (saved, shown on the home screen, kept by roomd), a field roomd
// refuses (the error next to the field, Cancel discards), a STUN server
// added and the network test run with it, the camera preview decoded in
// the page and moving, the microphone level meter moving, a camera control
// applied, and Escape closing the dialog and the session.
func TestAdminSettings(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	setAdminPIN(t, d, testPIN)
	ctx := roomdtest.Context(t, 2*time.Minute)

	k := startKioskFor(t, 2*time.Minute)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	k.checkFits("home screen with the settings button")
	k.checkTargets("home screen", "#admin-open")

	// The PIN pad, with the number of attempts roomd allows.
	k.click("#admin-open")
	k.waitFor("the PIN pad", `el("#admin").open && el("#admin-pin").checkVisibility() && !el("#admin-settings").checkVisibility()`)
	k.waitFor("the attempts left", `/\d+ attempts? before the pad locks/.test(text("#admin-pin-status"))`)
	k.checkTargets("PIN pad", "#admin button")
	k.screenshot("admin-pin.png", 1920, 1080)

	k.pressPIN("1111")
	k.waitFor("four masked digits", `el("#admin-pin-dots").dataset.count === "4" && !/1/.test(text("#admin-pin-dots"))`)
	k.click("#pin-ok")
	k.waitFor("the wrong-PIN message with the attempts left", `/Wrong PIN\. \d+ attempts? left/.test(text("#admin-pin-status"))`)
	t.Logf("wrong PIN: %q", k.eval(`text("#admin-pin-status")`))
	st, err := d.Client.AdminState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("Wrong PIN. %d ", st.AttemptsLeft); !strings.HasPrefix(k.eval(`text("#admin-pin-status")`), want) {
		k.fatalf("the pad says %q, roomd says %d attempts left", k.eval(`text("#admin-pin-status")`), st.AttemptsLeft)
	}

	// The right PIN, typed on a keyboard (or a remote's digit keys) this time.
	k.do("type the PIN", chromedp.KeyEvent(testPIN))
	k.waitFor("four digits typed", `el("#admin-pin-dots").dataset.count === "4"`)
	k.click("#pin-ok")
	k.waitFor("the settings", `el("#admin-settings").checkVisibility() && !el("#admin-pin").checkVisibility()`)
	k.waitFor("the room name in its field", fmt.Sprintf(`el("#set-room-name").value === %s`, chromium.JSString(d.Room)))
	k.checkTargets("settings", "#admin button, #admin select, #admin .admin-input, #admin .admin-check")
	k.screenshot("admin-room.png", 1920, 1080)

	// Room name: saved, shown at once on the home screen, and kept by roomd.
	const newName = "Boardroom 7"
	k.setValue("#set-room-name", newName)
	k.click("#admin-save")
	k.waitFor("the saved message", `el("#admin-message").dataset.kind === "ok" && /Saved/.test(text("#admin-message"))`)
	k.waitFor("the new room name on the home screen", fmt.Sprintf(`text("#room-name") === %s`, chromium.JSString(newName)))
	s, err := d.Client.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.RoomName != newName {
		t.Errorf("roomd's settings have room name %q after Save, want %q", s.RoomName, newName)
	}

	// A calendar address roomd refuses: the reason shows next to the field
	// and nothing is saved; Cancel puts the form back.
	k.click("#tab-calendar")
	k.waitFor("the calendar pane", `el("#pane-calendar").checkVisibility()`)
	k.do("choose an iCalendar link", chromedp.SetValue(chromedp.CSS("#set-cal-source"), "url"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#set-cal-source").dispatchEvent(new Event("change"))`))
	k.waitFor("the address field", `el("#set-cal-url").checkVisibility()`)
	k.setValue("#set-cal-url", "ftp://calendar.example.com/room.ics")
	k.click("#admin-save")
	k.waitFor("the refusal", `el("#admin-message").dataset.kind === "bad" && /Not saved/.test(text("#admin-message"))`)
	k.waitFor("the error next to the address", `el('[data-field="calendar.url"]').classList.contains("has-error") && text('[data-field="calendar.url"] .admin-field-error') !== ""`)
	t.Logf("refused: %q next to the field: %q", k.eval(`text("#admin-message")`), k.eval(`text('[data-field="calendar.url"] .admin-field-error')`))
	k.screenshot("admin-calendar-error.png", 1920, 1080)
	if s2, err := d.Client.Settings(ctx); err != nil || s2.Calendar.URL != s.Calendar.URL || s2.Version != s.Version {
		t.Errorf("a refused save changed the settings: %+v (err %v), was %+v", s2.Calendar, err, s.Calendar)
	}
	k.click("#admin-cancel")
	k.waitFor("the form back as saved", `el("#set-cal-source").value === "none" && el("#set-cal-url").value === "" && !document.querySelector(".has-error")`)

	// A STUN server nobody answers, added in the Network pane and saved; the
	// network test then fails on it, and says so plainly.
	deadPort := freeUDPPort(t)
	k.click("#tab-network")
	k.waitFor("the network pane", `el("#pane-network").checkVisibility()`)
	k.click("#set-ice-add")
	k.waitFor("a server row", `document.querySelectorAll("#set-ice .ice-row").length === 1`)
	k.do("type the server address", chromedp.SendKeys(chromedp.CSS("#set-ice .ice-urls"), fmt.Sprintf("stun:127.0.0.1:%d", deadPort)))
	k.click("#admin-save")
	k.waitFor("the server saved", `el("#admin-message").dataset.kind === "ok"`)
	if s, err = d.Client.Settings(ctx); err != nil || len(s.ICEServers) != 1 || s.ICEServers[0].URLs[0] != fmt.Sprintf("stun:127.0.0.1:%d", deadPort) {
		t.Fatalf("roomd's ICE servers after Save: %+v (err %v)", s.ICEServers, err)
	}
	k.click("#nettest-run")
	k.waitFor("the test running", `el("#nettest").dataset.level === "running"`)
	k.waitForLong("the network test's verdict", 40*time.Second,
		`["ok", "warning", "fail"].includes(el("#nettest").dataset.level) && document.querySelectorAll("#nettest-checks li").length > 0`)
	verdict := k.eval(`text("#nettest-verdict")`)
	t.Logf("network test: %s %q; checks: %q", k.eval(`el("#nettest").dataset.level`), verdict, k.eval(`text("#nettest-checks")`))
	last, err := lastNetworkTest(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if verdict != last.Verdict.Text || k.eval(`el("#nettest").dataset.level`) != last.Verdict.Level {
		t.Errorf("the page shows %q, roomd's last result is %s %q", verdict, last.Verdict.Level, last.Verdict.Text)
	}
	if last.Verdict.Level != "fail" || !strings.Contains(k.eval(`text("#nettest-checks")`), fmt.Sprintf("127.0.0.1:%d", deadPort)) {
		t.Errorf("a dead STUN server and no TURN: want a failing verdict naming the server, got %s %q", last.Verdict.Level, k.eval(`text("#nettest")`))
	}
	k.screenshot("admin-network.png", 1920, 1080)

	// Devices: the preview shows the simulated camera, moving; the level
	// meter follows its microphone.
	k.click("#tab-devices")
	k.waitFor("the devices pane", `el("#pane-devices").checkVisibility()`)
	k.waitFor("the camera choices", `[...el("#set-dev-camera").options].map(o => o.text).join() === "Automatic,Simulated camera (simulated)"`)
	k.waitForLong("the camera preview decoded (roomd must serve daemon/preview at /api/v1/media/preview)", 20*time.Second, `el("#admin-preview").dataset.state === "playing" && Number(el("#admin-preview").dataset.frames) > 10`)
	if got := k.eval(`el("#admin-preview").dataset.camera + " " + el("#admin-preview").width + "x" + el("#admin-preview").height`); got != "sim:camera0 640x360" {
		k.fatalf("the preview shows %q, want sim:camera0 640x360", got)
	}
	first := k.elementShot("admin-preview-1.png", "#admin-preview")
	time.Sleep(time.Second)
	second := k.elementShot("admin-preview-2.png", "#admin-preview")
	for i, img := range []image.Image{first, second} {
		if sd := lumaStdDev(img); sd < 8 {
			t.Errorf("preview shot %d is nearly uniform (luma standard deviation %.1f)", i+1, sd)
		} else {
			t.Logf("preview shot %d: %v, luma standard deviation %.1f", i+1, img.Bounds().Size(), sd)
		}
	}
	if changed, total := changedPixels(first, second); changed < 500 {
		t.Errorf("only %d of %d preview pixels changed in a second: the preview is not moving", changed, total)
	} else {
		t.Logf("%d of %d preview pixels changed in a second", changed, total)
	}

	// The simulated microphone plays a tone with a beep every second: the
	// meter goes up and down.
	levels := map[string]bool{}
	changes, lastDB := 0, ""
	deadline := time.Now().Add(6 * time.Second)
	for changes < 4 && time.Now().Before(deadline) {
		if v := k.eval(`el("#admin-level-text").dataset.db`); v != "" {
			levels[v] = true
			if lastDB != "" && v != lastDB {
				changes++
			}
			lastDB = v
		}
		time.Sleep(100 * time.Millisecond)
	}
	if changes < 4 || len(levels) < 2 {
		k.fatalf("the level meter did not move: %d changes among levels %v, text %q", changes, levels, k.eval(`text("#admin-level-text")`))
	}
	if w := k.eval(`el("#admin-level-fill").getBoundingClientRect().width`); w == "0" {
		k.fatalf("the level bar is empty while the meter reads %v", levels)
	}
	t.Logf("level meter readings (dBFS): %v", keys(levels))

	// A camera control applies at once, and roomd reports the new value.
	k.waitFor("the camera's controls", `el('#admin-controls [data-control="brightness"]').checkVisibility() && el('#admin-nudge').checkVisibility()`)
	dev, err := d.Client.Device(ctx, "sim:camera0")
	if err != nil {
		t.Fatal(err)
	}
	zoom := controlValue(dev, "zoom")
	k.click(`#admin-nudge [aria-label="Zoom up"]`)
	waitUntil(ctx, t, 10*time.Second, func() bool {
		dev, err := d.Client.Device(ctx, "sim:camera0")
		return err == nil && controlValue(dev, "zoom") > zoom
	})
	k.screenshot("admin-devices.png", 1920, 1080)

	// A preset saved from the pane is roomd's, and goes away again.
	k.setValue("#admin-preset-name", "Wide")
	k.click("#admin-preset-save")
	k.waitFor("the preset listed", `text("#admin-presets").includes("Wide") && /Saved preset/.test(text("#admin-controls-status"))`)
	if ps, err := d.Client.Presets(ctx, "sim:camera0"); err != nil || len(ps) != 1 || ps[0].Name != "Wide" {
		t.Fatalf("roomd's presets after Save position: %+v (err %v)", ps, err)
	}
	k.click(`#admin-presets [aria-label="Delete preset Wide"]`)
	k.waitFor("the preset gone", `!text("#admin-presets").includes("Wide")`)

	// The display schedule's days and hours are saved as chosen.
	k.click("#tab-display")
	k.waitFor("the display pane", `el("#pane-display").checkVisibility() && el("#set-disp-days").children.length === 7`)
	k.do("choose Saturday too, 06:30 to 20:00",
		chromedp.Click(chromedp.CSS(`#set-disp-days input[value="sat"]`)),
		chromedp.SetValue(chromedp.CSS("#set-disp-from"), "06:30"),
		chromedp.SetValue(chromedp.CSS("#set-disp-until"), "20:00"))
	k.click("#admin-save")
	k.waitFor("the schedule saved", `el("#admin-message").dataset.kind === "ok"`)
	if s, err = d.Client.Settings(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %s %s %v", s.Display.Days, s.Display.AwakeFrom, s.Display.AwakeUntil, s.Display.Sleep); got != "[mon tue wed thu fri sat] 06:30 20:00 false" {
		t.Errorf("roomd's display schedule after Save: %s", got)
	}

	// The remote's arrows move focus inside the dialog only.
	k.click("#tab-about")
	k.waitFor("the about pane with the device IDs", `el("#pane-about").checkVisibility() && text("#about-devices").includes("sim:camera0") && text("#about-facts").includes("Version")`)
	k.do("press the down arrow", chromedp.KeyEvent(kb.ArrowDown))
	if got := k.eval(`el("#admin").contains(document.activeElement)`); got != "true" {
		k.fatalf("the arrow key moved focus out of the dialog, to %q", k.eval(`document.activeElement.id || document.activeElement.tagName`))
	}
	// From the About tab, up and OK open the Display pane.
	k.do("focus the About tab", chromedp.Focus(chromedp.CSS("#tab-about")))
	k.do("press up", chromedp.KeyEvent(kb.ArrowUp))
	if got := k.eval(`document.activeElement.id`); got != "tab-display" {
		k.fatalf("up from the About tab went to %q, want tab-display", got)
	}
	k.do("press OK", chromedp.KeyEvent("\r"))
	k.waitFor("the display pane", `el("#pane-display").checkVisibility() && el("#tab-display").getAttribute("aria-selected") === "true"`)

	// Escape closes the dialog and ends the session: the preview stops and
	// the next visit starts at the PIN pad.
	k.do("press Escape", chromedp.KeyEvent(kb.Escape))
	k.waitFor("the dialog closed and focus back on the gear", `!el("#admin").open && document.activeElement.id === "admin-open"`)
	k.click("#admin-open")
	k.waitFor("the PIN pad again", `el("#admin").open && el("#admin-pin").checkVisibility()`)
	k.do("close", chromedp.Click(chromedp.CSS("#admin-close")))
	k.waitFor("the dialog closed", `!el("#admin").open`)

	// What was saved survives a reload: the name comes from roomd.
	k.do("reload", chromedp.Reload())
	k.waitFor("the saved room name after a reload", fmt.Sprintf(`text("#room-name") === %s`, chromium.JSString(newName)))
	k.checkConsole()
}

// TestAdminNoPIN: without a PIN the pad says how to set one, and takes no
// digits.
func TestAdminNoPIN(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	k := startKiosk(t)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	k.click("#admin-open")
	k.waitFor("the no-PIN message", "text(\"#admin-pin-status\").includes(\"Settings are locked. Set an admin PIN with `roomctl admin set-pin` or from the fleet console.\")")
	if got := k.eval(`el('#admin-pin-pad [data-digit="5"]').disabled`); got != "true" {
		k.fatalf("the pad takes digits without a PIN set")
	}
	k.do("press Escape", chromedp.KeyEvent(kb.Escape))
	k.waitFor("the dialog closed", `!el("#admin").open`)
	k.checkConsole()
}

// TestDisplaySleep: when roomd's schedule puts the display to sleep, the
// kiosk (told by a display.changed event) goes black but for a faint
// clock; a tap wakes it, through roomd, and does nothing else: the
// settings button under the tap stays closed. A page loaded while the
// display sleeps starts black.
func TestDisplaySleep(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	ctx := roomdtest.Context(t, time.Minute)

	k := startKiosk(t)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	if k.eval(`el("#sleep").checkVisibility()`) != "false" {
		k.fatalf("the sleep overlay shows while the display is awake")
	}

	s, err := d.Client.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Awake one hour on a day three days away: asleep now, whatever the
	// time zone.
	day := [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}[(int(time.Now().Weekday())+3)%7]
	s.Display = apiv1.DisplaySchedule{Sleep: true, Days: []string{day}, AwakeFrom: "07:00", AwakeUntil: "08:00"}
	// A new name, saved elsewhere, reaches this screen by the
	// settings.changed event.
	s.RoomName = "Quiet Room"
	if _, err := d.Client.PutSettings(ctx, s); err != nil {
		t.Fatalf("put the sleep schedule: %v", err)
	}
	if st, err := d.Client.Display(ctx); err != nil || st.State != apiv1.DisplayAsleep {
		t.Fatalf("display after the schedule: %+v (err %v), want asleep", st, err)
	}
	k.waitFor("the sleep overlay", `el("#sleep").checkVisibility() && /\d/.test(text("#sleep-clock"))`)
	k.waitFor("the new room name", `text("#room-name") === "Quiet Room"`)
	shot := k.elementShot("display-asleep.png", "#sleep")
	if sd := lumaStdDev(shot); sd > 3 {
		t.Errorf("the sleeping screen is not black: luma standard deviation %.1f", sd)
	}

	// A reload while asleep starts black.
	k.do("reload", chromedp.Reload())
	k.waitFor("the sleep overlay after a reload", `el("#sleep").checkVisibility() && el("#connection").dataset.state === "connected"`)

	// Tap where the settings button is.
	var x, y float64
	if _, err := fmt.Sscanf(k.eval(`(() => { const r = el("#admin-open").getBoundingClientRect(); return (r.x + r.width / 2) + " " + (r.y + r.height / 2); })()`), "%g %g", &x, &y); err != nil {
		t.Fatal(err)
	}
	k.do("tap the sleeping screen", chromedp.MouseClickXY(x, y))
	k.waitFor("the screen awake", `!el("#sleep").checkVisibility() && el(".screen").checkVisibility()`)
	time.Sleep(300 * time.Millisecond)
	if k.eval(`el("#admin").open`) != "false" {
		k.fatalf("the waking tap went through to the settings button")
	}
	st, err := d.Client.Display(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != apiv1.DisplayAwake || st.Reason != apiv1.DisplayReasonTouched {
		t.Errorf("roomd's display after the tap: %+v, want awake (touched)", st)
	}
	// Awake again, the next tap works as usual.
	k.click("#admin-open")
	k.waitFor("the settings dialog", `el("#admin").open`)
	k.checkConsole()
}

// freeUDPPort returns a UDP port on 127.0.0.1 that nothing listens on.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func controlValue(d apiv1.Device, id string) int64 {
	for _, c := range d.Controls {
		if c.ID == id {
			return c.Value
		}
	}
	return -1
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if f, err := strconv.ParseFloat(k, 64); err == nil {
			k = strconv.FormatFloat(f, 'f', 1, 64)
		}
		out = append(out, k)
	}
	return out
}

// waitForLong is waitFor with a longer bound, for steps that take seconds.
func (k *kiosk) waitForLong(what string, timeout time.Duration, cond string) {
	k.t.Helper()
	_, err := chromedp.Run(k.ctx, chromedp.PollFunction[bool](
		fmt.Sprintf("() => { %s; return Boolean(%s); }", pageHelpers, cond),
		chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(timeout),
	))
	if err != nil {
		k.fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}

// TestAdminSessionAndLockout: a session that roomd ends (here: the PIN
// changed on the device) sends the dialog back to the PIN pad, and wrong
// PINs lock the pad with a countdown until it is unlocked on the device.
func TestAdminSessionAndLockout(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	setAdminPIN(t, d, testPIN)
	ctx := roomdtest.Context(t, time.Minute)

	k := startKiosk(t)
	k.do("open the kiosk", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(d.URL+"/"))
	k.waitFor("the connection indicator to say connected", `el("#connection").dataset.state === "connected"`)
	k.click("#admin-open")
	k.waitFor("the PIN pad", `el("#admin-pin").checkVisibility() && /attempts? before/.test(text("#admin-pin-status"))`)
	k.pressPIN(testPIN)
	k.click("#pin-ok")
	k.waitFor("the settings", `el("#admin-settings").checkVisibility()`)

	// A new PIN set on the device ends every kiosk session.
	const newPIN = "97531"
	setAdminPIN(t, d, newPIN)
	k.setValue("#set-room-name", "Not saved")
	k.click("#admin-save")
	k.waitFor("the PIN pad after the session ended", `el("#admin-pin").checkVisibility() && /session ended/i.test(text("#admin-pin-status"))`)
	if s, err := d.Client.Settings(ctx); err != nil || s.RoomName == "Not saved" {
		t.Errorf("a save without a session changed the room name: %q (err %v)", s.RoomName, err)
	}

	// Wrong PINs until the pad locks.
	st, err := d.Client.AdminState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.AttemptsLeft {
		k.pressPIN("0000")
		k.click("#pin-ok")
		if i < st.AttemptsLeft-1 {
			k.waitFor("the attempts left", fmt.Sprintf(`text("#admin-pin-status").startsWith("Wrong PIN. %d ")`, st.AttemptsLeft-1-i))
		}
	}
	k.waitFor("the lock countdown", `/Too many wrong PINs\. Try again in \d+:\d\d\./.test(text("#admin-pin-status")) && el('#admin-pin-pad [data-digit="1"]').disabled`)
	first := k.eval(`text("#admin-pin-status")`)
	k.waitFor("the countdown to count", fmt.Sprintf(`text("#admin-pin-status") !== %s`, chromium.JSString(first)))
	t.Logf("locked: %q", k.eval(`text("#admin-pin-status")`))
	k.screenshot("admin-locked.png", 1920, 1080)

	// Unlocked on the device (roomctl admin unlock), the next visit takes
	// the new PIN.
	if err := d.Client.ClearAdminLockout(ctx); err != nil {
		t.Fatal(err)
	}
	k.click("#admin-close")
	k.waitFor("the dialog closed", `!el("#admin").open`)
	k.click("#admin-open")
	k.waitFor("the PIN pad unlocked", `!el('#admin-pin-pad [data-digit="1"]').disabled && /attempts? before/.test(text("#admin-pin-status"))`)
	k.pressPIN(newPIN)
	k.click("#pin-ok")
	k.waitFor("the settings with the new PIN", `el("#admin-settings").checkVisibility()`)
	k.checkConsole()
}
