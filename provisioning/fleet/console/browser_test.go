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
// a command and read its status. The device side is played through the
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
	con, err := New(Options{Store: st})
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

	p.goTo("#/audit")
	p.WaitFor("the audit log", `document.querySelectorAll('[data-test=audit-row]').length >= 6`)
	p.goTo("#/accounts")
	p.WaitFor("the accounts", `document.querySelector('[data-test=account-row][data-username=alice]')`)

	p.Click("#logout")
	p.WaitFor("the login form again", `!document.querySelector('#login').hidden`)

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
