package fleet_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/chromium"
	"github.com/atriumroom/atrium/test/fleettest"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// TestEndToEnd is the promise, played as IT and the room would:
// in the console (Chromium) an administrator creates the room and an
// activation code; on the kiosk (a second Chromium tab on the real roomd)
// someone types the code; the room shows up online in the console, takes a
// profile and a command; and it keeps working while fleetd is down.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	fleet := fleettest.Start(t, fleettest.Options{Binary: fleetdBinary(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := chromium.Start(t, chromium.Options{Name: "console", Parent: ctx, Width: 1400, Height: 1000})
	con := chromium.NewPage(t, b.Tab())
	con.Timeout = 40 * time.Second

	con.Do("open the console", chromedp.Navigate(fleet.ConsoleURL+"/"))
	con.WaitFor("the login form", `!document.querySelector('#login').hidden`)
	con.Fill("#login-username", fleettest.AdminUser)
	con.Fill("#login-password", fleettest.AdminPassword)
	con.Click("#login-submit")
	con.WaitFor("the device list", `!document.querySelector('#top').hidden && document.querySelector('#view').dataset.ready === 'true'`)

	goTo := func(hash string) {
		t.Helper()
		con.Do("open "+hash, chromedp.Evaluate[chromedp.Void](`location.hash = `+chromium.JSString(hash)))
		con.WaitFor(hash+" ready", `document.querySelector('#view').dataset.ready === 'true' && location.hash === `+chromium.JSString(hash))
	}
	goTo("#/hierarchy")
	con.Fill("#org-name", "Acme")
	con.Click("#org-create")
	con.WaitFor("the organisation", `document.querySelector('[data-test=org-item][data-name=Acme]')`)
	con.Fill("#site-name", "Head office")
	con.Click("#site-create")
	con.WaitFor("the site", `document.querySelector('[data-test=site-item][data-name="Head office"]')`)
	con.Fill("#room-name", "Lab 4")
	con.Click("#room-create")
	con.WaitFor("the room", `document.querySelector('[data-test=room-item][data-name="Lab 4"]')`)
	roomID := con.Eval(`document.querySelector('[data-test=room-item][data-name="Lab 4"]').dataset.id`)

	goTo("#/codes")
	con.Do("choose the room", chromedp.SetValue(chromedp.CSS("#code-scope"), "room:"+roomID))
	con.Click("#code-create")
	con.WaitFor("the code", `document.querySelector('#code-value')`)
	code := con.Eval(`document.querySelector('#code-value').textContent`) // as a person reads it, in groups

	// The room: a fresh roomd, managed by the fleet, first-setup card on
	// its kiosk.
	state := filepath.Join(t.TempDir(), "state")
	room := roomdtest.Launch(t, roomdBinary(t), roomdtest.Options{Config: func(c *config.Config) {
		c.Daemon.StateDir = state
		c.Fleet.Server = fleet.DeviceURL
		c.Fleet.CASHA256 = fleet.CAFingerprint()
	}})
	if err := room.WaitReady(roomdtest.ReadyTimeout); err != nil {
		t.Fatalf("roomd: %v\n%s", err, room.Log())
	}
	kioskTab, closeTab := chromedp.NewContext(b.Tab())
	defer closeTab()
	kiosk := chromium.NewPage(t, kioskTab)
	kiosk.Do("open the kiosk", chromedp.Navigate(room.URL+"/"))
	kiosk.WaitFor("the first-setup card", `!document.querySelector('#enroll-card').hidden`)
	kiosk.Fill("#enroll-code", "WRONG-CODE-0000")
	kiosk.Click("#enroll-button")
	kiosk.WaitFor("the refusal", `!document.querySelector('#enroll-error').hidden`)
	if msg := kiosk.Eval(`document.querySelector('#enroll-error').textContent`); !strings.Contains(strings.ToLower(msg), "code") {
		t.Errorf("a wrong code is explained as %q", msg)
	}
	kiosk.Fill("#enroll-code", code)
	kiosk.Click("#enroll-button")
	kiosk.WaitFor("the card to go", `document.querySelector('#enroll-card').hidden`)
	deviceID := fleetStatus(t, room).DeviceID

	// The console sees it online.
	goTo("#/devices")
	row := `[data-test=device-row][data-device-id="` + deviceID + `"]`
	con.WaitFor("the room online", `document.querySelector('`+row+` [data-test=device-online]')?.textContent === 'online'`)

	// A profile for the room: a mistake first, named at its field, then
	// the real one, checked in its diff.
	goTo("#/profiles/room/" + roomID)
	con.Fill("#profile-body", `{"roomName": "Lab 4 (managed)", "volume": 3}`)
	con.Click("#profile-validate")
	con.WaitFor("the field error", `document.querySelector('[data-test=profile-error][data-field=volume]')`)
	con.Fill("#profile-body", `{"roomName": "Lab 4 (managed)", "display": {"sleep": true, "days": ["mon","tue","wed","thu","fri"], "awakeFrom": "07:00", "awakeUntil": "19:00"}}`)
	con.Click("#profile-validate")
	con.WaitFor("the diff", `document.querySelector('[data-test=diff-row][data-key=roomName]') && !document.querySelector('#profile-save').disabled`)
	con.Click("#profile-save")
	con.WaitFor("the save", `document.querySelector('#profile-status').dataset.saved`)

	kiosk.Timeout = 40 * time.Second
	kiosk.WaitFor("the room's new name on the kiosk", `document.querySelector('#room-name').textContent === 'Lab 4 (managed)'`)
	st, err := room.Client.Settings(roomdtest.Context(t, 10*time.Second))
	if err != nil || !st.Display.Sleep || strings.Join(st.Managed, ",") != "roomName,display" {
		t.Fatalf("roomd's settings after the profile: %+v %v", st, err)
	}

	// A command, and its result in the console.
	goTo("#/device/" + deviceID)
	con.Do("choose the network test", chromedp.SetValue(chromedp.CSS("#command-kind"), "network-test"))
	con.Fill("#command-args", `{}`)
	con.Click("#command-send")
	con.WaitFor("the queued command", `document.querySelector('#command-result').dataset.commandId`)
	cmdID := con.Eval(`document.querySelector('#command-result').dataset.commandId`)
	status := `document.querySelector('[data-test=command-row][data-command-id="` + cmdID + `"] [data-test=command-status]')?.dataset.status`
	deadline := time.Now().Add(60 * time.Second)
	for con.Eval(status) != "succeeded" {
		if time.Now().After(deadline) {
			t.Fatalf("command status %q after 60 s\n--- roomd ---\n%s", con.Eval(status), room.Log())
		}
		con.Click("#command-refresh")
		time.Sleep(time.Second)
	}
	// The profile's outcome reaches the console after the settle period.
	con.WaitFor("the device's config source", `document.querySelector('[data-test=config-row][data-key=roomName] [data-test=config-source]')?.dataset.source === 'room'`)

	// fleetd goes away: the room keeps working and says so; fleetd comes
	// back and the room is online again.
	fleet.Stop()
	waitFor(t, 60*time.Second, "the room to notice", func() bool { return fleetStatus(t, room).LastError != "" })
	if _, err := room.Client.Status(roomdtest.Context(t, 5*time.Second)); err != nil {
		t.Fatalf("roomd without its fleet: %v", err)
	}
	fleet.Restart()
	waitFor(t, 90*time.Second, "the room back online", func() bool { return fleetStatus(t, room).LastError == "" })
	for _, m := range b.Console() {
		if m.IsException() {
			t.Errorf("page exception: %s", m.Text)
		}
	}
}
