package console

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/test/chromium"
)

// page drives the console in Debian's headless Chromium.
type page struct {
	*chromium.Page
	t *testing.T
}

func (p *page) goTo(hash string) {
	p.t.Helper()
	p.Do("open "+hash, chromedp.Evaluate[chromedp.Void](`location.hash = `+chromium.JSString(hash)))
	p.WaitFor(hash+" ready", `document.querySelector('#view').dataset.ready === 'true' && location.hash === `+chromium.JSString(hash))
}

// TestBrowserWalkthrough walks the console in Chromium the way the
// end-to-end test will: log in, create a site and a room, create a code
// and read it, open the device that enrolled with it, push a profile, send
// a command and read its status, set the site's maintenance window, start
// a rollout from the form, pause and resume it, and read the device's
// update status. The device side is played through the
// store. It also fails on any console error, such as a CSP violation.
func TestBrowserWalkthrough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if _, err := st.CreateAccount(ctx, "setup", "alice", store.RoleAdmin, string(hash)); err != nil {
		t.Fatal(err)
	}
	con, err := New(Options{Store: st, Releases: testCatalog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con.Handler())
	t.Cleanup(srv.Close)

	b := chromium.Start(t, chromium.Options{Name: "console", Parent: ctx, Width: 1400, Height: 1000})
	p := &page{Page: chromium.NewPage(t, b.Tab()), t: t}

	p.Do("open the console", chromedp.Navigate(srv.URL+"/"))
	p.WaitFor("the login form", `!document.querySelector('#login').hidden`)
	p.Fill("#login-username", "alice")
	p.Fill("#login-password", "wrong password!")
	p.Click("#login-submit")
	p.WaitFor("the login error", `!document.querySelector('#login-error').hidden`)
	p.Fill("#login-password", adminPassword)
	p.Click("#login-submit")
	p.WaitFor("the device list", `!document.querySelector('#top').hidden && document.querySelector('#view').dataset.page === 'devices' && document.querySelector('#view').dataset.ready === 'true'`)
	if who := p.Eval(`document.querySelector('#whoami').textContent`); who != "alice (admin)" {
		t.Fatalf("whoami %q", who)
	}

	p.goTo("#/hierarchy")
	p.Fill("#org-name", "Acme")
	p.Click("#org-create")
	p.WaitFor("the organisation", `document.querySelector('[data-test=org-item]')`)
	p.Fill("#site-name", "Amsterdam")
	p.Click("#site-create")
	p.WaitFor("the site", `document.querySelector('[data-test=site-item][data-name=Amsterdam]')`)
	p.Fill("#room-name", "Board room")
	p.Click("#room-create")
	p.WaitFor("the room", `document.querySelector('[data-test=room-item][data-name="Board room"]')`)
	roomID := p.Eval(`document.querySelector('[data-test=room-item][data-name="Board room"]').dataset.id`)

	p.goTo("#/codes")
	p.Do("choose the room", chromedp.SetValue(chromedp.CSS("#code-scope"), "room:"+roomID))
	p.Click("#code-create")
	p.WaitFor("the code", `document.querySelector('#code-value')`)
	code := p.Eval(`document.querySelector('#code-value').dataset.code`)
	grouped := p.Eval(`document.querySelector('#code-value').textContent`)
	if store.NormaliseCode(grouped) != code || len(code) != 20 {
		t.Fatalf("code %q shown as %q", code, grouped)
	}
	p.WaitFor("the code in the list", `document.querySelector('[data-test=code-row][data-status=active]')`)

	// The device enrolls with the code and checks in.
	dev, err := st.Redeem(ctx, store.Redemption{Code: grouped, Hardware: json.RawMessage(`{"model":"x1","serial":"S1"}`),
		CertSerial: "01", CertNotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatalf("redeem the code read from the page: %v", err)
	}
	if err := st.RecordCheckIn(ctx, dev.ID, store.CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.0.0"}`), MeetingState: "idle",
		HealthSample: json.RawMessage(`{"status":"ok"}`), Inventory: json.RawMessage(`{"hostname":"board-room"}`)}); err != nil {
		t.Fatal(err)
	}

	p.goTo("#/devices")
	row := `[data-test=device-row][data-device-id="` + dev.ID + `"]`
	p.WaitFor("the device row", `document.querySelector('`+row+` [data-test=device-online]')?.textContent === 'online'`)
	p.Click(row + " [data-test=device-link]")
	p.WaitFor("the device page", `document.querySelector('#device-page') && document.querySelector('#device-id').textContent === `+chromium.JSString(dev.ID))

	p.goTo("#/profiles/room/" + roomID)
	p.Fill("#profile-body", `{"roomName": "Board room", "ntp": "yes"}`)
	p.Click("#profile-validate")
	p.WaitFor("the field error", `document.querySelector('[data-test=profile-error][data-field=ntp]')`)
	if p.Eval(`document.querySelector('#profile-save').disabled`) != "true" {
		t.Fatal("save enabled for an invalid profile")
	}
	p.Fill("#profile-body", `{"roomName": "Board room", "adminPin": "4321"}`)
	p.Click("#profile-validate")
	p.WaitFor("the diff", `document.querySelector('[data-test=diff-row][data-key=roomName][data-change=added]') && !document.querySelector('#profile-save').disabled`)
	p.Click("#profile-save")
	p.WaitFor("the save", `document.querySelector('#profile-status').dataset.saved === '1'`)
	if body := p.Eval(`document.querySelector('#profile-body').value`); strings.Contains(body, "4321") || !strings.Contains(body, Mask) {
		t.Fatalf("editor after save shows %s", body)
	}
	prof, err := st.Profile(ctx, store.Scope{Kind: store.ScopeRoom, ID: roomID})
	if err != nil || prof.CreatedBy != "alice" || !strings.Contains(string(prof.Body), `"adminPin":"4321"`) {
		t.Fatalf("stored profile %+v: %v", prof, err)
	}

	p.goTo("#/device/" + dev.ID)
	p.WaitFor("the configuration", `document.querySelector('[data-test=config-row][data-key=roomName] [data-test=config-source]')?.dataset.source === 'room'`)
	p.Do("choose join", chromedp.SetValue(chromedp.CSS("#command-kind"), "join"))
	p.Fill("#command-args", `{"url": "https://meet.example/board"}`)
	p.Click("#command-send")
	p.WaitFor("the queued command", `document.querySelector('#command-result').dataset.commandId`)
	cmdID := p.Eval(`document.querySelector('#command-result').dataset.commandId`)
	status := `document.querySelector('[data-test=command-row][data-command-id="` + cmdID + `"] [data-test=command-status]')?.dataset.status`
	p.WaitFor("status queued", status+` === 'queued'`)
	// The device reports the result; the page shows it after a refresh.
	if _, err := st.SetCommandStatus(ctx, "device:"+dev.ID, cmdID, store.CommandSucceeded, "joined"); err != nil {
		t.Fatal(err)
	}
	p.Click("#command-refresh")
	p.WaitFor("status succeeded", status+` === 'succeeded'`)

	rolloutID := browseUpdates(ctx, t, p, st, dev)

	p.goTo("#/audit")
	p.WaitFor("the audit log", `document.querySelectorAll('[data-test=audit-row]').length >= 10`)
	p.goTo("#/accounts")
	p.WaitFor("the accounts", `document.querySelector('[data-test=account-row][data-username=alice]')`)

	p.Click("#logout")
	p.WaitFor("the login form again", `!document.querySelector('#login').hidden`)

	// A viewer sees the updates but gets no control to change them.
	viewerHash, _ := bcrypt.GenerateFromPassword([]byte(viewerPassword), bcrypt.MinCost)
	if _, err := st.CreateAccount(ctx, "setup", "bob", store.RoleViewer, string(viewerHash)); err != nil {
		t.Fatal(err)
	}
	p.Fill("#login-username", "bob")
	p.Fill("#login-password", viewerPassword)
	p.Click("#login-submit")
	p.WaitFor("the viewer's console", `document.querySelector('#whoami').textContent === 'bob (viewer)' && document.querySelector('#view').dataset.ready === 'true'`)
	p.goTo("#/updates")
	p.WaitFor("the viewer's updates", `document.querySelector('[data-test=rollout-row][data-rollout-id="`+rolloutID+`"]') &&
		document.querySelectorAll('[data-test=release-row]').length === 2 && !document.querySelector('#rollout-form')`)
	p.goTo("#/rollout/" + rolloutID)
	p.WaitFor("the viewer's rollout page", `document.querySelector('#rollout-page') && !document.querySelector('#rollout-pause, #rollout-resume, #rollout-abort')`)
	p.goTo("#/hierarchy")
	p.Click(`[data-test=site-item][data-name=Amsterdam] [data-test=site-link]`)
	p.WaitFor("the viewer's window", `document.querySelector('#view').dataset.ready === 'true' && document.querySelector('#window-start')?.disabled && !document.querySelector('#window-save') &&
		document.querySelector('#window-status').dataset.start === '23:00'`)
	p.Click("#logout")
	p.WaitFor("the login form, last", `!document.querySelector('#login').hidden`)

	for _, m := range b.Console() {
		if m.IsException() || m.Type == "error" || m.Type == "warning" {
			// 401 and 422 answers the walk provokes on purpose are logged as
			// failed resources; anything else (a CSP violation, a script
			// error) fails the test.
			if !strings.Contains(m.String(), "status of 4") {
				t.Errorf("browser console %s: %s", m.Type, m)
			}
		}
	}
}

// browseUpdates is the walkthrough's update part: the site's maintenance
// window, a rollout started from the form, paused and resumed through the
// page's confirmation, and a device waiting for its window.
func browseUpdates(ctx context.Context, t *testing.T, p *page, st *store.Store, dev store.Device) (rolloutID string) {
	t.Helper()
	p.goTo("#/hierarchy")
	p.Click(`[data-test=site-item][data-name=Amsterdam] [data-test=site-link]`)
	p.WaitFor("the site page", `document.querySelector('#view').dataset.ready === 'true' && document.querySelector('#site-page')`)
	siteID := p.Eval(`document.querySelector('#site-page').dataset.siteId`)
	p.WaitFor("the default window", `document.querySelector('#window-status').dataset.default === 'true' &&
		document.querySelector('#window-editor').textContent.includes('Default 02:00–05:00') && document.querySelector('#window-start').value === '02:00'`)
	p.Fill("#window-start", "23:00")
	p.Fill("#window-end", "04:30")
	p.Click("#window-save")
	p.WaitFor("the saved window", `document.querySelector('#window-status').dataset.default === 'false' &&
		document.querySelector('#window-status').dataset.start === '23:00' && document.querySelector('#window-status').dataset.end === '04:30'`)
	site, err := st.Site(ctx, siteID)
	if err != nil || site.MaintenanceWindow == nil || *site.MaintenanceWindow != (fleetapi.MaintenanceWindow{Start: "23:00", End: "04:30"}) {
		t.Fatalf("stored window after the form: %+v %v", site, err)
	}

	// The device reports it can update itself; a second one never does.
	err = st.RecordCheckIn(ctx, dev.ID, store.CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.0.0"}`), MeetingState: "idle",
		Update: &fleetapi.UpdateStatus{Hardware: "x1", Running: "1.0.0", Slot: "a", State: fleetapi.UpdateIdle}})
	if err != nil {
		t.Fatal(err)
	}

	p.goTo("#/updates")
	p.WaitFor("the releases", `document.querySelectorAll('[data-test=release-row]').length === 2`)
	if v := p.Eval(`document.querySelector('[data-test=release-row]').dataset.version`); v != "1.2.0" {
		t.Fatalf("newest release shown first is %q", v)
	}
	p.Do("choose the release", chromedp.SetValue(chromedp.CSS("#rollout-release"), release11.Target))
	if n := p.Eval(`document.querySelectorAll('[data-test=ring-edit]').length`); n != "3" {
		t.Fatalf("ring preset has %s rings", n)
	}
	// A bad ring is refused with the field named, and nothing is created.
	p.Fill(`[data-test=ring-edit]:nth-child(2) [data-test=ring-percent]`, "1")
	p.Click("#rollout-create")
	p.WaitFor("the ring error", `!document.querySelector('#rollout-error').hidden && document.querySelector('#rollout-error').dataset.field === 'rings[1].percent'`)
	p.Click("#ring-preset")
	p.Fill("#rollout-threshold", "20")
	p.Click("#rollout-immediate")
	p.WaitFor("the urgent warning", `!document.querySelector('#rollout-immediate-warning').hidden`)
	p.Click("#rollout-immediate")
	p.WaitFor("the warning gone", `document.querySelector('#rollout-immediate-warning').hidden`)
	p.Click("#rollout-create")
	p.WaitFor("the rollout page", `document.querySelector('#view').dataset.page === 'rollout' && document.querySelector('#view').dataset.ready === 'true' &&
		document.querySelector('#rollout-page')?.dataset.state === 'running'`)
	id := p.Eval(`document.querySelector('#rollout-page').dataset.rolloutId`)
	ro, err := st.Rollout(ctx, id)
	if err != nil || ro.Version != "1.1.0" || ro.FailureThreshold != 20 || ro.SoakMinutes != 60 || ro.Immediate || ro.CreatedBy != "alice" || len(ro.Rings) != 3 {
		t.Fatalf("rollout made by the form: %+v %v", ro, err)
	}
	row := `[data-test=rollout-device-row][data-device-id="` + dev.ID + `"]`
	p.WaitFor("the device in the rollout", `document.querySelector('`+row+`')?.dataset.state === 'pending' &&
		document.querySelector('`+row+` [data-test=device-update-state]').textContent === 'pending'`)
	p.WaitFor("three rings", `document.querySelectorAll('[data-test=ring-row]').length === 3`)

	state := `document.querySelector('#view').dataset.ready === 'true' && document.querySelector('#rollout-page')?.dataset.state === `
	p.Click("#rollout-pause")
	p.WaitFor("the confirmation", `!document.querySelector('#rollout-confirm-box').hidden`)
	p.Click("#rollout-cancel")
	p.WaitFor("no confirmation", `document.querySelector('#rollout-confirm-box').hidden`)
	if got, _ := st.Rollout(ctx, id); got.State != store.RolloutRunning {
		t.Fatalf("cancelled pause left the rollout %s", got.State)
	}
	p.Click("#rollout-pause")
	p.Click("#rollout-confirm")
	p.WaitFor("paused", state+`'paused' && document.querySelector('#rollout-resume')`)
	p.Click("#rollout-resume")
	p.Click("#rollout-confirm")
	p.WaitFor("running again", state+`'running' && document.querySelector('#rollout-pause')`)
	if got, _ := st.Rollout(ctx, id); got.State != store.RolloutRunning {
		t.Fatalf("after resume the store has %s", got.State)
	}

	// The device reports that it waits for its window, in its own zone.
	next := time.Date(2026, 3, 2, 23, 0, 0, 0, time.FixedZone("CET", 3600))
	err = st.RecordCheckIn(ctx, dev.ID, store.CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.0.0"}`), MeetingState: "idle",
		Update: &fleetapi.UpdateStatus{Hardware: "x1", Running: "1.0.0", Slot: "a", State: fleetapi.UpdateIdle, Rollout: id, Version: "1.1.0",
			Deferred: fleetapi.DeferredWindow, NextWindow: next, NeverRetry: []string{"0.9.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	p.Click("#rollout-refresh")
	p.WaitFor("the deferred device", `document.querySelector('`+row+` [data-test=device-deferred]')?.textContent ===
		'waiting for the maintenance window (next 23:00)'`)

	p.goTo("#/updates")
	p.WaitFor("the rollout listed", `document.querySelector('[data-test=rollout-row][data-rollout-id="`+id+`"]')?.dataset.state === 'running'`)

	// Abort needs a reason, given in the confirmation.
	p.Click(`[data-test=rollout-row][data-rollout-id="` + id + `"] [data-test=rollout-link]`)
	p.WaitFor("the rollout page again", state+`'running'`)
	p.Click("#rollout-abort")
	p.Click("#rollout-confirm")
	p.WaitFor("the missing reason", `!document.querySelector('#rollout-action-error').hidden && document.querySelector('#rollout-action-error').dataset.field === 'reason'`)
	p.Fill("#rollout-abort-reason", "wrong image for the lobby screens")
	p.Click("#rollout-confirm")
	p.WaitFor("aborted", state+`'aborted' && document.querySelector('#rollout-reason')?.textContent.includes('wrong image for the lobby screens') &&
		!document.querySelector('#rollout-pause') && !document.querySelector('#rollout-resume') && !document.querySelector('#rollout-abort')`)
	p.goTo("#/device/" + dev.ID)
	p.WaitFor("the device's update", `document.querySelector('[data-test=update-running]')?.textContent === '1.0.0 (slot a)' &&
		document.querySelector('[data-test=update-never-retried]')?.textContent === '0.9.0' &&
		document.querySelector('[data-test=update-waiting]')?.textContent === 'waiting for the maintenance window (next 23:00)'`)
	return id
}
