package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/admin"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/display"
	"github.com/atriumroom/atrium/daemon/settings"
)

// The plain test backend has no admin settings: every admin route answers
// as for a room whose PIN was never set. adminBackend below has real ones.
func (b *testBackend) AdminState() apiv1.AdminState {
	return apiv1.AdminState{AttemptsLeft: admin.MaxAttempts}
}
func (b *testBackend) AdminLogin(string) (apiv1.AdminSession, error) {
	return apiv1.AdminSession{}, admin.ErrNoPIN
}
func (b *testBackend) AdminCheck(string) error                        { return admin.ErrNoSession }
func (b *testBackend) AdminLogout(string)                             {}
func (b *testBackend) SetAdminPIN(string, string, bool, string) error { return admin.ErrNoPIN }
func (b *testBackend) ClearAdminLockout() error                       { return nil }
func (b *testBackend) RoomSettings() apiv1.Settings                   { return apiv1.Settings{} }
func (b *testBackend) UpdateSettings(apiv1.Settings) (apiv1.Settings, error) {
	return apiv1.Settings{}, errors.New("no settings in this test backend")
}
func (b *testBackend) DisplayState() apiv1.DisplayState {
	return apiv1.DisplayState{State: apiv1.DisplayAwake, Reason: apiv1.DisplayReasonAlways}
}
func (b *testBackend) WakeDisplay() apiv1.DisplayState { return b.DisplayState() }

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// adminBackend is the test backend with the real PIN guard, settings
// store and display, wired as the daemon wires them.
type adminBackend struct {
	*testBackend
	guard *admin.Guard
	store *settings.Store
	disp  *display.Display
}

func (b *adminBackend) AdminState() apiv1.AdminState {
	st := b.guard.Status()
	return apiv1.AdminState{PINSet: st.PINSet, Locked: st.Locked, LockedUntil: st.LockedUntil, AttemptsLeft: st.AttemptsLeft}
}
func (b *adminBackend) AdminLogin(pin string) (apiv1.AdminSession, error) {
	s, err := b.guard.Login(pin)
	return apiv1.AdminSession{Token: s.Token, Expires: s.Expires}, err
}
func (b *adminBackend) AdminCheck(token string) error { _, err := b.guard.Check(token); return err }
func (b *adminBackend) AdminLogout(token string)      { b.guard.Logout(token) }
func (b *adminBackend) SetAdminPIN(cur, pin string, req bool, keep string) error {
	return b.guard.SetPIN(cur, pin, req, keep)
}
func (b *adminBackend) ClearAdminLockout() error     { return b.guard.Unlock() }
func (b *adminBackend) RoomSettings() apiv1.Settings { return b.store.Get() }
func (b *adminBackend) UpdateSettings(in apiv1.Settings) (apiv1.Settings, error) {
	out, eff, err := b.store.Put(in)
	if err == nil {
		b.disp.SetSchedule(eff.Display, eff.Location)
	}
	return out, err
}
func (b *adminBackend) DisplayState() apiv1.DisplayState { return b.disp.State() }
func (b *adminBackend) WakeDisplay() apiv1.DisplayState  { return b.disp.Wake() }

// newAdminBackend gives tb the real PIN guard, settings and display on
// clk, in a fresh state directory.
func newAdminBackend(t *testing.T, tb *testBackend, clk *testClock) *adminBackend {
	t.Helper()
	dir := t.TempDir()
	guard, err := admin.Open(admin.Options{Path: filepath.Join(dir, "admin.json"), Now: clk.Now, Cost: 1 << 4})
	if err != nil {
		t.Fatal(err)
	}
	store, err := settings.Open(dir, config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	eff := store.Effective()
	return &adminBackend{testBackend: tb, guard: guard, store: store,
		disp: display.New(display.Options{Schedule: eff.Display, Location: time.UTC, Now: clk.Now})}
}

type adminServers struct {
	kiosk, socket, token *httptest.Server
	clk                  *testClock
}

const adminTestToken = "0123456789abcdef0123"

func newAdminServers(t *testing.T) adminServers {
	t.Helper()
	_, tb := newTestServer(t, AccessLocal, "")
	clk := &testClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)} // a Saturday
	b := newAdminBackend(t, tb, clk)
	srv := New(slog.New(slog.DiscardHandler), b, Mounts{}, adminTestToken)
	out := adminServers{clk: clk}
	for _, x := range []struct {
		p      **httptest.Server
		access Access
	}{{&out.kiosk, AccessLoopback}, {&out.socket, AccessLocal}, {&out.token, AccessToken}} {
		ts := httptest.NewServer(srv.Handler(x.access))
		t.Cleanup(ts.Close)
		*x.p = ts
	}
	return out
}

func decodeInto[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

func adminFields(t *testing.T, r result) map[string]any {
	t.Helper()
	return decodeInto[map[string]any](t, r)
}

const js = "application/json"

func TestAdminPINAndSessions(t *testing.T) {
	s := newAdminServers(t)

	// No PIN yet: the state says so, a login is refused with 409, and the
	// kiosk cannot set the first PIN.
	r := call(t, s.kiosk, "GET", "/api/v1/admin", "", "")
	if r.status != 200 || r.body != `{"pinSet":false,"locked":false,"attemptsLeft":5}`+"\n" {
		t.Fatalf("GET /admin: %d %s", r.status, r.body)
	}
	r = call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"1234"}`)
	if r.status != 409 || r.problem.Type != apiv1.ProblemNoPIN || !strings.Contains(r.problem.Detail, "roomctl admin set-pin") {
		t.Fatalf("login without PIN: %d %+v", r.status, r.problem)
	}
	r = call(t, s.kiosk, "PUT", "/api/v1/admin/pin", js, `{"new":"1234"}`)
	if r.status != 401 || r.problem.Title != "admin session required" {
		t.Fatalf("kiosk setting the first PIN: %d %+v", r.status, r.problem)
	}
	// The socket may: no current PIN needed.
	r = call(t, s.socket, "PUT", "/api/v1/admin/pin", js, `{"new":"12"}`)
	if r.status != 422 || r.problem.Field != "new" {
		t.Fatalf("short PIN: %d %+v", r.status, r.problem)
	}
	if r = call(t, s.socket, "PUT", "/api/v1/admin/pin", js, `{"new":"4711"}`); r.status != 204 {
		t.Fatalf("set PIN over the socket: %d %s", r.status, r.body)
	}

	// Strict bodies.
	for _, c := range []struct{ ctype, body string }{
		{js, `{"pin":"4711","extra":1}`}, {js, `{"pin":4711}`}, {js, ``}, {js, `{"pin":"4711"} {}`}, {js, `{}`},
	} {
		if r = call(t, s.kiosk, "POST", "/api/v1/admin/session", c.ctype, c.body); r.status != 400 {
			t.Errorf("login body %q: %d %s", c.body, r.status, r.body)
		}
	}
	if r = call(t, s.kiosk, "POST", "/api/v1/admin/session", "text/plain", `{"pin":"4711"}`); r.status != 415 {
		t.Errorf("login as text/plain: %d", r.status)
	}

	// Wrong PINs count down, then lock with Retry-After.
	for left := 4; left >= 1; left-- {
		r = call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"0000"}`)
		f := adminFields(t, r)
		if r.status != 401 || r.problem.Type != apiv1.ProblemWrongPIN || f["attemptsLeft"] != float64(left) {
			t.Fatalf("wrong PIN with %d left: %d %s", left, r.status, r.body)
		}
	}
	resp := rawCall(t, s.kiosk, "POST", "/api/v1/admin/session", `{"pin":"0000"}`, nil)
	if resp.status != 429 || resp.header.Get("Retry-After") != "60" {
		t.Fatalf("fifth wrong PIN: %d Retry-After %q %s", resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	f := decodeInto[map[string]any](t, result{body: resp.body})
	if f["lockedUntil"] != "2026-11-21T12:01:00Z" || f["type"] != apiv1.ProblemLocked {
		t.Fatalf("lock problem: %s", resp.body)
	}
	r = call(t, s.kiosk, "GET", "/api/v1/admin", "", "")
	if r.body != `{"pinSet":true,"locked":true,"lockedUntil":"2026-11-21T12:01:00Z","attemptsLeft":0}`+"\n" {
		t.Fatalf("GET /admin while locked: %s", r.body)
	}
	if r = call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"4711"}`); r.status != 429 {
		t.Fatalf("right PIN while locked: %d", r.status)
	}
	// Only the device's tools clear a lock.
	if r = call(t, s.kiosk, "DELETE", "/api/v1/admin/lockout", "", ""); r.status != 403 {
		t.Fatalf("kiosk clearing the lock: %d", r.status)
	}
	if r = call(t, s.socket, "DELETE", "/api/v1/admin/lockout", "", ""); r.status != 204 {
		t.Fatalf("socket clearing the lock: %d %s", r.status, r.body)
	}

	r = call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"4711"}`)
	sess := decodeInto[apiv1.AdminSession](t, r)
	if r.status != 200 || len(sess.Token) != 43 || !sess.Expires.Equal(s.clk.Now().Add(10*time.Minute)) || r.ctype != js {
		t.Fatalf("login: %d %s", r.status, r.body)
	}

	// A session opens the settings; without one the kiosk gets 401.
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", ""); r.status != 401 || r.problem.Title != "admin session required" || r.problem.Type != apiv1.ProblemAdminRequired {
		t.Fatalf("settings without a session: %d %+v", r.status, r.problem)
	}
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", apiv1.AdminHeader, "forged"); r.status != 401 {
		t.Fatalf("settings with a forged token: %d", r.status)
	}
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", apiv1.AdminHeader, sess.Token); r.status != 200 {
		t.Fatalf("settings with a session: %d %s", r.status, r.body)
	}
	// Sliding expiry: used at 9 minutes, alive at 18; idle 10 minutes, gone.
	s.clk.Add(9 * time.Minute)
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", apiv1.AdminHeader, sess.Token); r.status != 200 {
		t.Fatalf("session at 9 min: %d", r.status)
	}
	s.clk.Add(9 * time.Minute)
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", apiv1.AdminHeader, sess.Token); r.status != 200 {
		t.Fatalf("session at 18 min, used at 9: %d", r.status)
	}
	s.clk.Add(10 * time.Minute)
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", apiv1.AdminHeader, sess.Token); r.status != 401 || !strings.Contains(r.problem.Detail, "ended") {
		t.Fatalf("idle session: %d %+v", r.status, r.problem)
	}

	// Changing the PIN from the kiosk needs the session and the current PIN.
	sess = decodeInto[apiv1.AdminSession](t, call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"4711"}`))
	hdr := []string{apiv1.AdminHeader, sess.Token}
	if r = call(t, s.kiosk, "PUT", "/api/v1/admin/pin", js, `{"new":"5555"}`, hdr...); r.status != 400 || r.problem.Field != "current" {
		t.Fatalf("PIN change without current: %d %+v", r.status, r.problem)
	}
	if r = call(t, s.kiosk, "PUT", "/api/v1/admin/pin", js, `{"current":"1111","new":"5555"}`, hdr...); r.status != 401 || adminFields(t, r)["attemptsLeft"] != float64(4) {
		t.Fatalf("PIN change with a wrong current: %d %s", r.status, r.body)
	}
	if r = call(t, s.kiosk, "PUT", "/api/v1/admin/pin", js, `{"current":"4711","new":"5555"}`, hdr...); r.status != 204 {
		t.Fatalf("PIN change: %d %s", r.status, r.body)
	}
	// The changing session lives on; logout ends it.
	if r = call(t, s.kiosk, "DELETE", "/api/v1/admin/session", "", "", hdr...); r.status != 204 {
		t.Fatalf("logout: %d", r.status)
	}
	if r = call(t, s.kiosk, "GET", "/api/v1/settings", "", "", hdr...); r.status != 401 {
		t.Fatalf("after logout: %d", r.status)
	}
	if r = call(t, s.kiosk, "POST", "/api/v1/admin/session", js, `{"pin":"5555"}`); r.status != 200 {
		t.Fatalf("new PIN: %d", r.status)
	}
}

func TestAdminSettingsRoutes(t *testing.T) {
	s := newAdminServers(t)
	// The socket and the token listener are trusted: no admin header.
	r := call(t, s.socket, "GET", "/api/v1/settings", "", "")
	if r.status != 200 {
		t.Fatalf("socket: %d %s", r.status, r.body)
	}
	got := decodeInto[apiv1.Settings](t, r)
	if got.Version != 0 || got.RoomName != "Meeting Room" || got.Display.Sleep {
		t.Fatalf("initial settings %+v", got)
	}
	if r = call(t, s.token, "GET", "/api/v1/settings", "", ""); r.status != 401 {
		t.Fatalf("token listener without its bearer token: %d", r.status)
	}
	if r = call(t, s.token, "GET", "/api/v1/settings", "", "", "Authorization", "Bearer "+adminTestToken); r.status != 200 {
		t.Fatalf("token listener: %d %s", r.status, r.body)
	}

	put := `{"version":0,"roomName":"Boardroom",
	 "calendar":{"url":"","caldav":false,"username":"","hasPassword":false,"hasToken":false,"file":"","refresh":"5m0s","timezone":"","autoJoin":false},
	 "iceServers":[{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"u","credential":"pw","hasCredential":false}],
	 "devices":{"camera":"","microphone":"","speaker":""},
	 "display":{"sleep":true,"days":["mon","tue","wed","thu","fri"],"awakeFrom":"07:00","awakeUntil":"19:00"}}`
	r = call(t, s.socket, "PUT", "/api/v1/settings", js, put)
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, `"pw"`) || strings.Contains(r.body, `"credential"`) {
		t.Fatalf("a secret came back: %s", r.body)
	}
	got = decodeInto[apiv1.Settings](t, r)
	if got.Version != 1 || got.RoomName != "Boardroom" || !got.ICEServers[0].HasCredential || !got.Display.Sleep {
		t.Fatalf("after put: %+v", got)
	}
	// The display follows at once: Saturday noon sleeps.
	if d := decodeInto[apiv1.DisplayState](t, call(t, s.kiosk, "GET", "/api/v1/display", "", "")); d.State != "asleep" || d.Reason != "schedule" || d.NextChange.IsZero() {
		t.Fatalf("display after the schedule: %+v", d)
	}
	r = call(t, s.kiosk, "POST", "/api/v1/display/wake", "", "")
	if d := decodeInto[apiv1.DisplayState](t, r); r.status != 200 || d.State != "awake" || d.Reason != "touched" || !d.NextChange.Equal(s.clk.Now().Add(10*time.Minute)) {
		t.Fatalf("wake: %d %s", r.status, r.body)
	}

	// Stale version: 409, nothing changed.
	r = call(t, s.socket, "PUT", "/api/v1/settings", js, strings.Replace(put, "Boardroom", "Other", 1))
	if r.status != 409 || r.problem.Type != apiv1.ProblemConflict || r.problem.Field != "version" {
		t.Fatalf("stale put: %d %+v", r.status, r.problem)
	}
	// Invalid value: 422 naming the field.
	bad := strings.Replace(strings.Replace(put, `"version":0`, `"version":1`, 1), "turn:turn.example.com:3478?transport=udp", "stun:", 1)
	r = call(t, s.socket, "PUT", "/api/v1/settings", js, bad)
	if r.status != 422 || r.problem.Field != "iceServers[0].urls[0]" || !strings.Contains(r.problem.Detail, `iceServers[0].urls[0]: "stun:" has no host`) {
		t.Fatalf("invalid put: %d %+v", r.status, r.problem)
	}
	// Malformed: 400.
	r = call(t, s.socket, "PUT", "/api/v1/settings", js, `{"version":1,"roomName":"x","colour":"red"}`)
	if r.status != 400 || r.problem.Field != "colour" {
		t.Fatalf("unknown field: %d %+v", r.status, r.problem)
	}
	if got := decodeInto[apiv1.Settings](t, call(t, s.socket, "GET", "/api/v1/settings", "", "")); got.Version != 1 || got.RoomName != "Boardroom" {
		t.Fatalf("a refused put changed the settings: %+v", got)
	}
	// The kiosk needs a session for a PUT too.
	if r = call(t, s.kiosk, "PUT", "/api/v1/settings", js, put); r.status != 401 {
		t.Fatalf("kiosk put without a session: %d", r.status)
	}
}

type rawResult struct {
	status int
	header http.Header
	body   string
}

func rawCall(t *testing.T, ts *httptest.Server, method, path, body string, hdr http.Header) rawResult {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", js)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResult{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// TestOpenAPIAdminTypes checks the admin schemas as TestOpenAPIMatchesTypes
// checks the others.
func TestOpenAPIAdminTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]reflect.Type{
		"AdminState": reflect.TypeFor[apiv1.AdminState](), "AdminLogin": reflect.TypeFor[apiv1.AdminLogin](),
		"AdminSession": reflect.TypeFor[apiv1.AdminSession](), "PINChange": reflect.TypeFor[apiv1.PINChange](),
		"Settings": reflect.TypeFor[apiv1.Settings](), "CalendarSettings": reflect.TypeFor[apiv1.CalendarSettings](),
		"ICEServerConfig": reflect.TypeFor[apiv1.ICEServerConfig](), "DeviceChoice": reflect.TypeFor[apiv1.DeviceChoice](),
		"DisplaySchedule": reflect.TypeFor[apiv1.DisplaySchedule](), "DisplayState": reflect.TypeFor[apiv1.DisplayState](),
		"SettingsChanged": reflect.TypeFor[apiv1.SettingsChanged](),
	}
	for name, typ := range types {
		schema, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var fields, required, documented []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			jsonName, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields = append(fields, jsonName)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, jsonName)
			}
			if prop, ok := schema.Properties[jsonName]; ok {
				checkKind(t, name+"."+jsonName, f.Type, prop, doc)
			}
		}
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		req := append([]string(nil), schema.Required...)
		for _, l := range [][]string{fields, required, documented, req} {
			sort.Strings(l)
		}
		if !reflect.DeepEqual(fields, documented) {
			t.Errorf("%s: Go fields %v, documented %v", name, fields, documented)
		}
		if !reflect.DeepEqual(required, req) {
			t.Errorf("%s: Go always sends %v, documented as required %v", name, required, req)
		}
	}
	for name, want := range map[string][]string{
		"DisplayState.state":  {apiv1.DisplayAwake, apiv1.DisplayAsleep},
		"DisplayState.reason": {apiv1.DisplayReasonSchedule, apiv1.DisplayReasonMeeting, apiv1.DisplayReasonUpcoming, apiv1.DisplayReasonTouched, apiv1.DisplayReasonAlways},
	} {
		schema, prop, _ := strings.Cut(name, ".")
		if got := doc.Comps.Schemas[schema].Properties[prop].Enum; !reflect.DeepEqual(got, want) {
			t.Errorf("enum %s: documented %v, code %v", name, got, want)
		}
	}
}
