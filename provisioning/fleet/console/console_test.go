package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/test/pgtest"
)

// fakeClock is the clock the code under test is given.
type fakeClock = testclock.Clock

// env is one case's world: a fresh database on one engine, the console
// over real HTTP on loopback, and a fake clock shared by both.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	clock *fakeClock
	con   *Console
	srv   *httptest.Server
}

// Passwords of the fixture accounts.
const (
	adminPassword  = "correct horse battery"
	viewerPassword = "viewer password 1"
)

// account creates an account directly in the store. Its hash uses
// bcrypt's minimum cost so the suite stays fast; logins verify whatever
// cost a hash carries.
func (e *env) account(username string, role store.Role, password string) store.Account {
	e.t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.st.CreateAccount(e.ctx, "setup", username, role, string(h))
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) problem(t *testing.T) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("status %d, body %q is not a problem: %v", r.status, r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("problem with Content-Type %q", ct)
	}
	return p
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
}

// session is a logged-in client: its cookie and CSRF token.
type session struct {
	e      *env
	cookie *http.Cookie
	csrf   string
	user   string
}

// raw sends a request with exactly the given headers (plus the cookie
// when s has one).
func (e *env) raw(s *session, method, path string, body any, hdr map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if s != nil && s.cookie != nil {
		req.AddCookie(s.cookie)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, data}
}

// do sends a JSON request as the page does: with the CSRF header on a
// change.
func (s *session) do(method, path string, body any) resp {
	s.e.t.Helper()
	return s.doH(method, path, body, nil)
}

func (s *session) doH(method, path string, body any, extra map[string]string) resp {
	s.e.t.Helper()
	hdr := map[string]string{}
	if body != nil {
		hdr["Content-Type"] = "application/json"
	}
	if method != http.MethodGet {
		hdr[csrfHeader] = s.csrf
	}
	for k, v := range extra {
		hdr[k] = v
	}
	return s.e.raw(s, method, path, body, hdr)
}

// must checks the status and decodes the body into v (when not nil).
func (s *session) must(want int, method, path string, body, v any) {
	s.e.t.Helper()
	r := s.do(method, path, body)
	if r.status != want {
		s.e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if v != nil {
		r.decode(s.e.t, v)
	}
}

func (e *env) tryLogin(username, password string) resp {
	e.t.Helper()
	return e.raw(nil, http.MethodPost, "/api/v1/login", loginRequest{username, password},
		map[string]string{"Content-Type": "application/json"})
}

func (e *env) login(username, password string) *session {
	e.t.Helper()
	r := e.tryLogin(username, password)
	if r.status != http.StatusOK {
		e.t.Fatalf("login %s: status %d: %s", username, r.status, r.body)
	}
	var sv SessionView
	r.decode(e.t, &sv)
	s := &session{e: e, csrf: sv.CSRFToken, user: username}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == e.con.cookieName {
			s.cookie = c
		}
	}
	if s.cookie == nil || sv.CSRFToken == "" {
		e.t.Fatalf("login %s: no session cookie or CSRF token: %v", username, r.header)
	}
	return s
}

func (e *env) auditCount() int {
	e.t.Helper()
	entries, err := e.st.Audit(e.ctx, "", 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(entries)
}

// fleet is a small hierarchy made through the store: org Acme, site
// Amsterdam with rooms A1 and A2, site Berlin with room B1.
type fleet struct {
	org              store.Organisation
	siteA, siteB     store.Site
	roomA1, roomA2   store.Room
	roomB1           store.Room
	devA1, devA2, dB store.Device
}

func (e *env) fleet() fleet {
	e.t.Helper()
	var f fleet
	var err error
	must := func(err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
	}
	f.org, err = e.st.CreateOrganisation(e.ctx, "setup", "Acme")
	must(err)
	f.siteA, err = e.st.CreateSite(e.ctx, "setup", f.org.ID, "Amsterdam")
	must(err)
	f.siteB, err = e.st.CreateSite(e.ctx, "setup", f.org.ID, "Berlin")
	must(err)
	f.roomA1, err = e.st.CreateRoom(e.ctx, "setup", f.siteA.ID, "A1")
	must(err)
	f.roomA2, err = e.st.CreateRoom(e.ctx, "setup", f.siteA.ID, "A2")
	must(err)
	f.roomB1, err = e.st.CreateRoom(e.ctx, "setup", f.siteB.ID, "B1")
	must(err)
	f.devA1 = e.enroll(f.roomA1, "serial-a1")
	f.devA2 = e.enroll(f.roomA2, "serial-a2")
	f.dB = e.enroll(f.roomB1, "serial-b1")
	return f
}

func (e *env) enroll(room store.Room, serial string) store.Device {
	e.t.Helper()
	code, _, err := e.st.CreateEnrollmentCode(e.ctx, "setup", store.CodeScope{RoomID: room.ID}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.st.Redeem(e.ctx, store.Redemption{Code: code, Hardware: json.RawMessage(`{"model":"x1"}`),
		CertSerial: serial, CertNotAfter: e.clock.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) checkIn(d store.Device, health, version string) {
	e.t.Helper()
	err := e.st.RecordCheckIn(e.ctx, d.ID, store.CheckIn{
		Health: health, Versions: json.RawMessage(fmt.Sprintf(`{"roomd":%q}`, version)), MeetingState: "idle",
		HealthSample: json.RawMessage(fmt.Sprintf(`{"status":%q}`, health)),
		CallQuality:  json.RawMessage(`{"seconds":60,"rttMillis":42}`),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// cases is the one suite both engines run.
var cases = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"Login", testLogin},
	{"LoginRateLimited", testLoginRateLimited},
	{"SessionExpiry", testSessionExpiry},
	{"CSRF", testCSRF},
	{"ViewerReadOnly", testViewer},
	{"WritesAuditedWithAccountName", testAuditActor},
	{"ProfileValidation", testProfileValidation},
	{"ProfileStaleVersion", testProfileStale},
	{"ProfileSecretsMasked", testProfileSecrets},
	{"DeviceListFilters", testDeviceFilters},
	{"DeviceDetailConfigSources", testDeviceDetail},
	{"CommandIdempotency", testCommands},
	{"BadBodies", testBadBodies},
	{"EnrollmentCodes", testCodes},
	{"Accounts", testAccounts},
	{"LogBundle", testLogBundle},
	{"Releases", testReleases},
	{"RolloutCreate", testRolloutCreate},
	{"RolloutValidation", testRolloutValidation},
	{"RolloutTransitions", testRolloutTransitions},
	{"RolloutRoles", testRolloutRoles},
	{"MaintenanceWindow", testMaintenanceWindow},
	{"RolloutDeviceStatus", testRolloutDeviceStatus},
}

// TestConsole runs every case on SQLite and on Debian's PostgreSQL, each
// on a fresh database.
func TestConsole(t *testing.T) {
	pg := pgtest.Start(t)
	engines := []struct {
		name string
		opts func(t *testing.T) store.Options
	}{
		{"sqlite", func(t *testing.T) store.Options {
			return store.Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db")}
		}},
		{"postgres", func(t *testing.T) store.Options { return store.Options{PostgresDSN: pg.NewDatabase(t)} }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					clock := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
					opts := eng.opts(t)
					opts.Now = clock.Now
					st, err := store.Open(ctx, opts)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { st.Close() })
					con, err := New(Options{Store: st, Now: clock.Now, Logger: slog.New(slog.DiscardHandler), Releases: testCatalog()})
					if err != nil {
						t.Fatal(err)
					}
					con.cost = bcrypt.MinCost
					srv := httptest.NewServer(con.Handler())
					t.Cleanup(srv.Close)
					c.fn(t, &env{t: t, ctx: ctx, st: st, clock: clock, con: con, srv: srv})
				})
			}
		})
	}
}

func testLogin(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	bob := e.account("bob", store.RoleViewer, viewerPassword)

	// No session: every API path but login is 401.
	if r := e.raw(nil, http.MethodGet, "/api/v1/devices", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("devices without a session: %d", r.status)
	}

	// Wrong password and unknown user: the same 401.
	for _, try := range [][2]string{{"alice", "wrong password!!"}, {"nobody", adminPassword}} {
		r := e.tryLogin(try[0], try[1])
		if r.status != http.StatusUnauthorized || r.problem(t).Code != "bad-credentials" {
			t.Fatalf("login %v: %d %s", try, r.status, r.body)
		}
		if len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("failed login set a cookie: %v", r.header.Values("Set-Cookie"))
		}
	}

	// Right password: a session cookie with the flags, and a working session.
	r := e.tryLogin("alice", adminPassword)
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	setCookie := r.header.Get("Set-Cookie")
	for _, want := range []string{"fleetd_session=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("Secure cookie without SecureCookies: %q", setCookie)
	}
	s := e.login("alice", adminPassword)
	var sv SessionView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/session", nil, &sv)
	if sv.Account.Username != "alice" || sv.Account.Role != store.RoleAdmin || sv.CSRFToken != s.csrf {
		t.Fatalf("session: %+v", sv)
	}
	// The store keeps a hash of the token, never the token.
	if _, err := e.st.Session(e.ctx, s.cookie.Value); err == nil {
		t.Fatal("the store found a session under the clear token")
	}
	if _, err := e.st.Session(e.ctx, hashToken(s.cookie.Value)); err != nil {
		t.Fatalf("session by hash: %v", err)
	}
	a, _ := e.st.AccountByUsername(e.ctx, "alice")
	if a.LastLogin.IsZero() {
		t.Error("last login not recorded")
	}

	// Logout ends the session.
	s.must(http.StatusNoContent, http.MethodPost, "/api/v1/logout", nil, nil)
	if r := s.do(http.MethodGet, "/api/v1/session", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("session after logout: %d", r.status)
	}

	// A disabled account: refused with its own answer, and an open
	// session of it stops working.
	bs := e.login("bob", viewerPassword)
	if _, err := e.st.UpdateAccount(e.ctx, "setup", bob.ID, store.RoleViewer, true); err != nil {
		t.Fatal(err)
	}
	r = e.tryLogin("bob", viewerPassword)
	if r.status != http.StatusForbidden || r.problem(t).Code != "account-disabled" {
		t.Fatalf("disabled login: %d %s", r.status, r.body)
	}
	if r := bs.do(http.MethodGet, "/api/v1/devices", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("disabled account's session: %d", r.status)
	}
	// Even a disabled account's wrong password is just wrong.
	if r := e.tryLogin("bob", "not the password"); r.status != http.StatusUnauthorized {
		t.Fatalf("disabled account, wrong password: %d", r.status)
	}

	// The Secure variant.
	con, err := New(Options{Store: e.st, Now: e.clock.Now, SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	res, err := srv.Client().Post(srv.URL+"/api/v1/login", "application/json", strings.NewReader(`{"username":"alice","password":"`+adminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if sc := res.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "__Host-fleetd_session=") || !strings.Contains(sc, "Secure") {
		t.Fatalf("SecureCookies: Set-Cookie %q", sc)
	}
}

func testLoginRateLimited(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	e.account("carol", store.RoleAdmin, adminPassword)
	for i := range maxFailsPerUser {
		if r := e.tryLogin("alice", fmt.Sprintf("wrong password %d", i)); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	// Locked: even the right password is refused, with Retry-After.
	r := e.tryLogin("alice", adminPassword)
	if r.status != http.StatusTooManyRequests || r.problem(t).Code != "rate-limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("after %d failures: %d %v %s", maxFailsPerUser, r.status, r.header, r.body)
	}
	// Another user from the same address is not locked yet.
	e.login("carol", adminPassword)
	// The window passes: alice may log in again.
	e.clock.Advance(loginWindow)
	e.login("alice", adminPassword)

	// Per address: failures spread over many usernames lock the address.
	for i := range maxFailsPerAddress {
		if r := e.tryLogin(fmt.Sprintf("guess%d", i), "some password"); r.status != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d", i, r.status)
		}
	}
	if r := e.tryLogin("carol", adminPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("locked address, right password: %d", r.status)
	}
}

func testSessionExpiry(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	// Activity keeps it alive past one idle period…
	for range 3 {
		e.clock.Advance(DefaultSessionIdle - time.Minute)
		s.must(http.StatusOK, http.MethodGet, "/api/v1/session", nil, nil)
	}
	// …idleness ends it.
	e.clock.Advance(DefaultSessionIdle + time.Second)
	if r := s.do(http.MethodGet, "/api/v1/session", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("idle session: %d", r.status)
	}
	// And however busy, a session ends at MaxSessionAge.
	s = e.login("alice", adminPassword)
	for elapsed := time.Duration(0); elapsed < MaxSessionAge-DefaultSessionIdle; elapsed += 20 * time.Minute {
		e.clock.Advance(20 * time.Minute)
		s.must(http.StatusOK, http.MethodGet, "/api/v1/session", nil, nil)
	}
	e.clock.Advance(DefaultSessionIdle)
	if r := s.do(http.MethodGet, "/api/v1/session", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("session past its maximum age: %d", r.status)
	}
}

func testCSRF(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	other := e.login("alice", adminPassword) // a second session: its token is not s's
	before := e.auditCount()
	for name, hdr := range map[string]map[string]string{
		"missing":        {"Content-Type": "application/json"},
		"wrong":          {"Content-Type": "application/json", csrfHeader: "x" + s.csrf},
		"other session":  {"Content-Type": "application/json", csrfHeader: other.csrf},
		"foreign origin": {"Content-Type": "application/json", csrfHeader: s.csrf, "Origin": "https://evil.example"},
	} {
		r := e.raw(s, http.MethodPost, "/api/v1/orgs", nameRequest{"Evil Corp " + name}, hdr)
		if r.status != http.StatusForbidden || r.problem(t).Code != "csrf" {
			t.Errorf("%s CSRF token: %d %s", name, r.status, r.body)
		}
	}
	// Logout is a change too.
	if r := e.raw(s, http.MethodPost, "/api/v1/logout", nil, nil); r.status != http.StatusForbidden {
		t.Errorf("logout without token: %d", r.status)
	}
	var orgs []Node
	s.must(http.StatusOK, http.MethodGet, "/api/v1/orgs", nil, &orgs)
	if len(orgs) != 0 || e.auditCount() != before {
		t.Fatalf("refused requests changed something: orgs %v, audit %d → %d", orgs, before, e.auditCount())
	}
	// The same request with the token and this origin works.
	r := e.raw(s, http.MethodPost, "/api/v1/orgs", nameRequest{"Acme"},
		map[string]string{"Content-Type": "application/json", csrfHeader: s.csrf, "Origin": e.srv.URL})
	if r.status != http.StatusCreated {
		t.Fatalf("with token: %d %s", r.status, r.body)
	}
}

func testViewer(t *testing.T, e *env) {
	f := e.fleet()
	e.account("bob", store.RoleViewer, viewerPassword)
	e.account("alice", store.RoleAdmin, adminPassword)
	v := e.login("bob", viewerPassword)
	before := e.auditCount()
	writes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/orgs", nameRequest{"X"}},
		{http.MethodPost, "/api/v1/orgs/" + f.org.ID + "/sites", nameRequest{"X"}},
		{http.MethodPost, "/api/v1/sites/" + f.siteA.ID + "/rooms", nameRequest{"X"}},
		{http.MethodPost, "/api/v1/devices/" + f.devA1.ID + "/revoke", nil},
		{http.MethodPost, "/api/v1/devices/" + f.devA1.ID + "/commands", CommandRequest{Kind: "reboot"}},
		{http.MethodPost, "/api/v1/enrollment-codes", CodeRequest{RoomID: f.roomA1.ID}},
		{http.MethodPut, "/api/v1/profiles/room/" + f.roomA1.ID, ProfileRequest{Body: json.RawMessage(`{"ntp":true}`)}},
		{http.MethodPost, "/api/v1/accounts", createAccountRequest{"eve", store.RoleAdmin, "long enough password"}},
		{http.MethodGet, "/api/v1/accounts", nil},
	}
	for _, w := range writes {
		r := v.do(w.method, w.path, w.body)
		if r.status != http.StatusForbidden || r.problem(t).Code != "forbidden" {
			t.Errorf("viewer %s %s: %d %s", w.method, w.path, r.status, r.body)
		}
	}
	if n := e.auditCount(); n != before {
		t.Fatalf("viewer writes changed the audit log: %d → %d", before, n)
	}
	// Reads work, and so do validating a profile and logging out.
	for _, p := range []string{"/api/v1/devices", "/api/v1/devices/" + f.devA1.ID, "/api/v1/hierarchy", "/api/v1/enrollment-codes",
		"/api/v1/profiles/org/" + f.org.ID, "/api/v1/audit"} {
		v.must(http.StatusOK, http.MethodGet, p, nil, nil)
	}
	v.must(http.StatusOK, http.MethodPost, "/api/v1/profiles/org/"+f.org.ID+"/validate", ProfileRequest{Body: json.RawMessage(`{"ntp":true}`)}, nil)
	v.must(http.StatusNoContent, http.MethodPost, "/api/v1/logout", nil, nil)
}

func testAuditActor(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	start := e.auditCount()
	var org, site, room Node
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/orgs", nameRequest{"Acme"}, &org)
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/orgs/"+org.ID+"/sites", nameRequest{"Amsterdam"}, &site)
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/sites/"+site.ID+"/rooms", nameRequest{"A1"}, &room)
	var nc NewCode
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/enrollment-codes", CodeRequest{SiteID: site.ID}, &nc)
	s.must(http.StatusNoContent, http.MethodDelete, "/api/v1/enrollment-codes/"+nc.Info.Hash, nil, nil)
	s.must(http.StatusOK, http.MethodPut, "/api/v1/profiles/room/"+room.ID, ProfileRequest{Body: json.RawMessage(`{"ntp":true}`)}, nil)
	rm, err := e.st.Room(e.ctx, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	dev := e.enroll(rm, "serial-1")
	afterEnroll := e.auditCount()
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/devices/"+dev.ID+"/commands", CommandRequest{Kind: "reboot"}, nil)
	s.must(http.StatusNoContent, http.MethodPost, "/api/v1/devices/"+dev.ID+"/revoke", nil, nil)
	var acct AccountView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/accounts", createAccountRequest{"bob", store.RoleViewer, "long enough password"}, &acct)
	s.must(http.StatusOK, http.MethodPatch, "/api/v1/accounts/"+acct.ID, map[string]any{"role": "admin"}, nil)
	s.must(http.StatusNoContent, http.MethodPost, "/api/v1/accounts/"+acct.ID+"/password", passwordRequest{"another long password"}, nil)

	entries, err := e.st.Audit(e.ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var byAlice []string
	for i, en := range entries {
		if i < start || (i >= start+6 && i < afterEnroll) {
			continue // fixtures and the device's own enrollment
		}
		if en.Actor != "alice" {
			t.Errorf("entry %d %s by %q, want alice", i, en.Action, en.Actor)
		}
		byAlice = append(byAlice, en.Action)
	}
	want := []string{"organisation.create", "site.create", "room.create", "enrollment_code.create", "enrollment_code.revoke",
		"profile.set v1", "command.enqueue", "device.revoke", "account.create", "account.update", "account.password"}
	if strings.Join(byAlice, ",") != strings.Join(want, ",") {
		t.Fatalf("audited writes:\n got %v\nwant %v", byAlice, want)
	}
	// The audit API shows them newest first.
	var views []AuditView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/audit?limit=3", nil, &views)
	if len(views) != 3 || views[0].Action != "account.password" || views[0].Actor != "alice" {
		t.Fatalf("audit API: %+v", views)
	}
}

func testProfileValidation(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	path := "/api/v1/profiles/site/" + f.siteA.ID
	before := e.auditCount()
	for _, c := range []struct {
		body, field string
	}{
		{`{"roomName":"A","bogus":1}`, "body.bogus"},
		{`{"ntp":"yes"}`, "body.ntp"},
		{`{"display":{"sleep":true,"days":["mon"],"awakeFrom":"7am","awakeUntil":"18:00"}}`, "body.display.awakeFrom"},
		{`{"calendar":{"url":"https://x.example","color":"red"}}`, "body.calendar"},
		{`[1,2]`, "body"},
	} {
		for _, method := range []string{http.MethodPut, http.MethodPost} {
			p := path
			if method == http.MethodPost {
				p += "/validate"
			}
			r := s.do(method, p, ProfileRequest{Body: json.RawMessage(c.body)})
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("%s %s: %d %s", method, c.body, r.status, r.body)
			}
			pr := r.problem(t)
			if pr.Field != c.field || pr.Code != "invalid-profile" || len(pr.Fields) == 0 {
				t.Errorf("%s %s: field %q (fields %v), want %q", method, c.body, pr.Field, pr.Fields, c.field)
			}
		}
	}
	if _, err := e.st.Profile(e.ctx, store.Scope{Kind: store.ScopeSite, ID: f.siteA.ID}); err == nil {
		t.Fatal("an invalid profile was saved")
	}
	if e.auditCount() != before {
		t.Fatal("invalid profiles were audited")
	}
	// A valid one: validate shows the diff, save stores it.
	var vr ValidateResult
	s.must(http.StatusOK, http.MethodPost, path+"/validate", ProfileRequest{Body: json.RawMessage(`{"ntp":true,"timezone":"Europe/Amsterdam"}`)}, &vr)
	if vr.CurrentVersion != 0 || len(vr.Diff) != 2 || vr.Diff[0].Key != "timezone" || vr.Diff[0].Change != "added" {
		t.Fatalf("diff: %+v", vr)
	}
	var pv ProfileVersionView
	s.must(http.StatusOK, http.MethodPut, path, ProfileRequest{Body: json.RawMessage(`{"ntp":true,"timezone":"Europe/Amsterdam"}`)}, &pv)
	if pv.Version != 1 || pv.CreatedBy != "alice" {
		t.Fatalf("saved: %+v", pv)
	}
	s.must(http.StatusOK, http.MethodPost, path+"/validate", ProfileRequest{Body: json.RawMessage(`{"ntp":false,"roomName":"X"}`)}, &vr)
	got := map[string]string{}
	for _, c := range vr.Diff {
		got[c.Key] = c.Change
	}
	if vr.CurrentVersion != 1 || got["ntp"] != "changed" || got["roomName"] != "added" || got["timezone"] != "removed" || len(got) != 3 {
		t.Fatalf("diff against v1: %+v", vr)
	}
	// An unknown scope kind.
	if r := s.do(http.MethodGet, "/api/v1/profiles/planet/x", nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown scope: %d", r.status)
	}
	// A scope that does not exist.
	if r := s.do(http.MethodPut, "/api/v1/profiles/room/nope", ProfileRequest{Body: json.RawMessage(`{"ntp":true}`)}); r.status != http.StatusNotFound {
		t.Fatalf("missing room: %d %s", r.status, r.body)
	}
}

func testProfileStale(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	path := "/api/v1/profiles/room/" + f.roomA1.ID
	s.must(http.StatusOK, http.MethodPut, path, ProfileRequest{BaseVersion: 0, Body: json.RawMessage(`{"ntp":true}`)}, nil)
	s.must(http.StatusOK, http.MethodPut, path, ProfileRequest{BaseVersion: 1, Body: json.RawMessage(`{"ntp":false}`)}, nil)
	before := e.auditCount()
	for _, base := range []int64{0, 1, 5} {
		r := s.do(http.MethodPut, path, ProfileRequest{BaseVersion: base, Body: json.RawMessage(`{"roomName":"late"}`)})
		if r.status != http.StatusConflict || r.problem(t).Field != "baseVersion" {
			t.Fatalf("base %d: %d %s", base, r.status, r.body)
		}
	}
	p, err := e.st.Profile(e.ctx, store.Scope{Kind: store.ScopeRoom, ID: f.roomA1.ID})
	if err != nil || p.Version != 2 || string(p.Body) != `{"ntp":false}` || e.auditCount() != before {
		t.Fatalf("after stale saves: %+v %v, audit %d → %d", p, err, before, e.auditCount())
	}
	var pv ProfileView
	s.must(http.StatusOK, http.MethodGet, path, nil, &pv)
	if pv.Current.Version != 2 || len(pv.History) != 2 || pv.History[0].Version != 2 || pv.History[1].Version != 1 {
		t.Fatalf("profile view: %+v", pv)
	}
}

func testProfileSecrets(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	path := "/api/v1/profiles/org/" + f.org.ID
	body := `{"adminPin":"123456","calendar":{"url":"https://cal.example/x.ics","password":"hunter2-secret"},
		"iceServers":[{"urls":["stun:stun.example"]},{"urls":["turn:turn.example"],"username":"u","credential":"turn-secret"}]}`
	s.must(http.StatusOK, http.MethodPut, path, ProfileRequest{Body: json.RawMessage(body)}, nil)
	var pv ProfileView
	r := s.do(http.MethodGet, path, nil)
	r.decode(t, &pv)
	for _, secret := range []string{"123456", "hunter2-secret", "turn-secret"} {
		if bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("GET profile shows secret %q: %s", secret, r.body)
		}
	}
	// Save the masked body back with one change: the secrets stay.
	masked := strings.Replace(string(pv.Current.Body), `"url":"https://cal.example/x.ics"`, `"url":"https://cal.example/y.ics"`, 1)
	var vr ValidateResult
	s.must(http.StatusOK, http.MethodPost, path+"/validate", ProfileRequest{Body: json.RawMessage(masked)}, &vr)
	if len(vr.Diff) != 1 || vr.Diff[0].Key != "calendar" || bytes.Contains(vr.Diff[0].After, []byte("hunter2")) {
		t.Fatalf("diff of masked save: %+v", vr.Diff)
	}
	s.must(http.StatusOK, http.MethodPut, path, ProfileRequest{BaseVersion: 1, Body: json.RawMessage(masked)}, nil)
	p, err := e.st.Profile(e.ctx, store.Scope{Kind: store.ScopeOrg, ID: f.org.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"adminPin":"123456"`, `"password":"hunter2-secret"`, `"credential":"turn-secret"`, `y.ics`} {
		if !bytes.Contains(p.Body, []byte(want)) {
			t.Errorf("stored v2 lacks %s: %s", want, p.Body)
		}
	}
	// A mask where nothing is stored is refused, naming the path.
	r = s.do(http.MethodPut, "/api/v1/profiles/site/"+f.siteA.ID, ProfileRequest{Body: json.RawMessage(`{"adminPin":"` + Mask + `"}`)})
	if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != "body.adminPin" {
		t.Fatalf("mask with nothing stored: %d %s", r.status, r.body)
	}
	// The audit API masks profile bodies too.
	r = s.do(http.MethodGet, "/api/v1/audit?subject=profile:org:"+f.org.ID, nil)
	if r.status != http.StatusOK || bytes.Contains(r.body, []byte("hunter2")) || bytes.Contains(r.body, []byte("123456")) {
		t.Fatalf("audit shows secrets: %d %s", r.status, r.body)
	}
}

func testDeviceFilters(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	e.checkIn(f.devA1, "ok", "1.2.0")
	e.checkIn(f.dB, "degraded", "1.3.0")
	e.clock.Advance(2 * time.Minute)
	e.checkIn(f.devA2, "ok", "1.3.0")
	e.clock.Advance(2 * time.Minute) // A1 and B1 now 4 minutes old: offline; A2 online
	ids := func(q string) string {
		t.Helper()
		var list []DeviceView
		s.must(http.StatusOK, http.MethodGet, "/api/v1/devices"+q, nil, &list)
		var out []string
		for _, d := range list {
			name := map[string]string{f.devA1.ID: "A1", f.devA2.ID: "A2", f.dB.ID: "B1"}[d.ID]
			out = append(out, name)
		}
		return strings.Join(out, ",")
	}
	for q, want := range map[string]string{
		"":                     "A1,A2,B1",
		"?site=" + f.siteA.ID:  "A1,A2",
		"?site=" + f.siteB.ID:  "B1",
		"?room=" + f.roomA2.ID: "A2",
		"?health=degraded":     "B1",
		"?health=ok":           "A1,A2",
		"?version=1.3.0":       "A2,B1",
		"?online=true":         "A2",
		"?online=false":        "A1,B1",
		"?site=" + f.siteA.ID + "&health=ok&online=false": "A1",
		"?limit=1": "A1",
	} {
		if got := ids(q); got != want {
			t.Errorf("devices%s: %s, want %s", q, got, want)
		}
	}
	var list []DeviceView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/devices?room="+f.roomA2.ID, nil, &list)
	if d := list[0]; !d.Online || d.Health != "ok" || d.SiteName != "Amsterdam" || d.RoomName != "A2" || d.OrgID != f.org.ID {
		t.Fatalf("device view: %+v", d)
	}
	// The hierarchy, whole and by level.
	var tree []Node
	s.must(http.StatusOK, http.MethodGet, "/api/v1/hierarchy", nil, &tree)
	if len(tree) != 1 || tree[0].ID != f.org.ID || len(tree[0].Children) != 2 ||
		tree[0].Children[0].Name != "Amsterdam" || len(tree[0].Children[0].Children) != 2 ||
		tree[0].Children[0].Children[1].ID != f.roomA2.ID || tree[0].Children[1].Children[0].ID != f.roomB1.ID {
		t.Fatalf("hierarchy: %+v", tree)
	}
	var nodes []Node
	s.must(http.StatusOK, http.MethodGet, "/api/v1/orgs/"+f.org.ID+"/sites", nil, &nodes)
	if len(nodes) != 2 || nodes[1].ID != f.siteB.ID || nodes[1].ParentID != f.org.ID {
		t.Fatalf("sites: %+v", nodes)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/sites/"+f.siteA.ID+"/rooms", nil, &nodes)
	if len(nodes) != 2 || nodes[0].ID != f.roomA1.ID {
		t.Fatalf("rooms: %+v", nodes)
	}
	for _, q := range []string{"?online=maybe", "?colour=red", "?limit=0"} {
		r := s.do(http.MethodGet, "/api/v1/devices"+q, nil)
		if r.status != http.StatusBadRequest || r.problem(t).Field == "" {
			t.Errorf("devices%s: %d %s", q, r.status, r.body)
		}
	}
}

func testDeviceDetail(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	e.checkIn(f.devA1, "ok", "1.2.0")
	set := func(kind, id, body string) {
		t.Helper()
		s.must(http.StatusOK, http.MethodPut, "/api/v1/profiles/"+kind+"/"+id, ProfileRequest{Body: json.RawMessage(body)}, nil)
	}
	set("org", f.org.ID, `{"timezone":"Europe/Amsterdam","ntp":true,"adminPin":"1234"}`)
	set("site", f.siteA.ID, `{"ntp":false}`)
	set("room", f.roomA1.ID, `{"roomName":"Board room"}`)
	set("device", f.devA1.ID, `{"adminPin":"987654"}`)
	var d DeviceDetail
	r := s.do(http.MethodGet, "/api/v1/devices/"+f.devA1.ID, nil)
	if r.status != http.StatusOK {
		t.Fatalf("device detail: %d %s", r.status, r.body)
	}
	r.decode(t, &d)
	got := map[string]string{}
	var keys []string
	for _, c := range d.Config {
		got[c.Key] = fmt.Sprintf("%s %s %s v%d", c.Value, c.Source, c.ScopeID, c.Version)
		keys = append(keys, c.Key)
	}
	want := map[string]string{
		"timezone": `"Europe/Amsterdam" org ` + f.org.ID + " v1",
		"ntp":      "false site " + f.siteA.ID + " v1",
		"roomName": `"Board room" room ` + f.roomA1.ID + " v1",
		"adminPin": `"` + Mask + `" device ` + f.devA1.ID + " v1",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("config %s: %s, want %s", k, got[k], w)
		}
	}
	if strings.Join(keys, ",") != "roomName,timezone,ntp,adminPin" {
		t.Errorf("config order %v", keys)
	}
	if bytes.Contains(r.body, []byte("987654")) || bytes.Contains(r.body, []byte(`"1234"`)) {
		t.Errorf("device page shows the PIN: %s", r.body)
	}
	if d.ConfigVersion == "" || d.Device.Health != "ok" || !d.Device.Online || len(d.Health) != 1 || len(d.CallQuality) != 1 {
		t.Errorf("detail: version %q device %+v health %v call %v", d.ConfigVersion, d.Device, d.Health, d.CallQuality)
	}
	if r := s.do(http.MethodGet, "/api/v1/devices/nope", nil); r.status != http.StatusNotFound {
		t.Errorf("missing device: %d", r.status)
	}
}

func testCommands(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	path := "/api/v1/devices/" + f.devA1.ID + "/commands"
	send := func(key string, body any) resp {
		t.Helper()
		h := map[string]string{}
		if key != "" {
			h["Idempotency-Key"] = key
		}
		return s.doH(http.MethodPost, path, body, h)
	}
	join := CommandRequest{Kind: "join", Args: json.RawMessage(`{"url":"https://meet.example/r"}`)}
	r1 := send("k1", join)
	r2 := send("k1", join)
	if r1.status != http.StatusCreated || r2.status != http.StatusOK {
		t.Fatalf("idempotent POSTs: %d then %d: %s %s", r1.status, r2.status, r1.body, r2.body)
	}
	var c1, c2 CommandView
	r1.decode(t, &c1)
	r2.decode(t, &c2)
	if c1.ID != c2.ID || c1.Status != "queued" || c1.CreatedBy != "alice" {
		t.Fatalf("retried POST: %+v vs %+v", c1, c2)
	}
	// The same key for another command is a mistake.
	if r := send("k1", CommandRequest{Kind: "reboot"}); r.status != http.StatusConflict {
		t.Fatalf("key reuse: %d %s", r.status, r.body)
	}
	// Without a key every POST is new.
	send("", CommandRequest{Kind: "reboot"})
	send("", CommandRequest{Kind: "reboot"})
	var list []CommandView
	s.must(http.StatusOK, http.MethodGet, path, nil, &list)
	if len(list) != 3 {
		t.Fatalf("commands: %d, want 3", len(list))
	}
	var one CommandView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/commands/"+c1.ID, nil, &one)
	if one.Kind != "join" {
		t.Fatalf("command: %+v", one)
	}

	before := e.auditCount()
	for _, c := range []struct {
		req   CommandRequest
		field string
	}{
		{CommandRequest{Kind: "self-destruct"}, "kind"},
		{CommandRequest{Kind: "reboot", Args: json.RawMessage(`{"now":true}`)}, "args.now"},
		{CommandRequest{Kind: "join", Args: json.RawMessage(`{"url":"meet.example.com/room"}`)}, "args.url"},
		{CommandRequest{Kind: "join", Args: json.RawMessage(`{"url":5}`)}, "args.url"},
		{CommandRequest{Kind: "factory-reset", Args: json.RawMessage(`{}`)}, "args.confirm"},
		{CommandRequest{Kind: "factory-reset", Args: json.RawMessage(`{"confirm":"` + f.devA2.ID + `"}`)}, "args.confirm"},
		{CommandRequest{Kind: "collect-logs", Args: json.RawMessage(`{"maxBytes":999999999}`)}, "args.maxBytes"},
		{CommandRequest{Kind: "set-setting", Args: json.RawMessage(`{"key":"colour","value":1}`)}, "args.key"},
		{CommandRequest{Kind: "set-setting", Args: json.RawMessage(`{"key":"ntp","value":"yes"}`)}, "args.value.ntp"},
	} {
		r := send("", c.req)
		if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != c.field {
			t.Errorf("%s %s: %d %s, want field %s", c.req.Kind, c.req.Args, r.status, r.body, c.field)
		}
	}
	if e.auditCount() != before {
		t.Fatal("refused commands were stored")
	}
	// A factory reset confirmed with the device's own ID is queued; a
	// set-setting of a secret is shown masked.
	if r := send("", CommandRequest{Kind: "factory-reset", Args: json.RawMessage(`{"confirm":"` + f.devA1.ID + `"}`)}); r.status != http.StatusCreated {
		t.Fatalf("factory reset: %d %s", r.status, r.body)
	}
	r := send("", CommandRequest{Kind: "set-setting", Args: json.RawMessage(`{"key":"adminPin","value":"55667788"}`)})
	if r.status != http.StatusCreated || bytes.Contains(r.body, []byte("55667788")) {
		t.Fatalf("set-setting adminPin: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "/api/v1/devices/"+f.devA1.ID, nil); bytes.Contains(r.body, []byte("55667788")) {
		t.Fatalf("device page shows the PIN: %s", r.body)
	}
	// A revoked device takes no commands.
	s.must(http.StatusNoContent, http.MethodPost, "/api/v1/devices/"+f.devA2.ID+"/revoke", nil, nil)
	r = s.do(http.MethodPost, "/api/v1/devices/"+f.devA2.ID+"/commands", CommandRequest{Kind: "reboot"})
	if r.status != http.StatusConflict || r.problem(t).Code != "revoked" {
		t.Fatalf("command to a revoked device: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodPost, "/api/v1/devices/"+f.devA2.ID+"/revoke", nil); r.status != http.StatusConflict {
		t.Fatalf("second revoke: %d", r.status)
	}
}

func testBadBodies(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	before := e.auditCount()
	jsonH := map[string]string{"Content-Type": "application/json", csrfHeader: s.csrf}
	for _, c := range []struct {
		name, body string
		hdr        map[string]string
		status     int
		field      string
	}{
		{"malformed", `{"name":`, jsonH, http.StatusBadRequest, ""},
		{"not an object", `"Acme"`, jsonH, http.StatusBadRequest, ""},
		{"unknown field", `{"name":"Acme","colour":"red"}`, jsonH, http.StatusBadRequest, "colour"},
		{"wrong type", `{"name":5}`, jsonH, http.StatusBadRequest, "name"},
		{"trailing data", `{"name":"Acme"} {"name":"Evil"}`, jsonH, http.StatusBadRequest, ""},
		{"empty", ``, jsonH, http.StatusBadRequest, ""},
		{"empty name", `{"name":""}`, jsonH, http.StatusUnprocessableEntity, "name"},
		{"form", `name=Acme`, map[string]string{"Content-Type": "application/x-www-form-urlencoded", csrfHeader: s.csrf}, http.StatusUnsupportedMediaType, ""},
		{"oversized", `{"name":"` + strings.Repeat("a", MaxBody) + `"}`, jsonH, http.StatusRequestEntityTooLarge, ""},
	} {
		r := e.raw(s, http.MethodPost, "/api/v1/orgs", c.body, c.hdr)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		if p := r.problem(t); p.Field != c.field || p.Detail == "" {
			t.Errorf("%s: problem %+v, want field %q", c.name, p, c.field)
		}
	}
	if e.auditCount() != before {
		t.Fatal("a bad body changed something")
	}
	if r := s.do(http.MethodGet, "/api/v1/nothing-here", nil); r.status != http.StatusNotFound || r.problem(t).Code != "not-found" {
		t.Fatalf("unknown API path: %d %s", r.status, r.body)
	}
	// Login is strict too.
	r := e.raw(nil, http.MethodPost, "/api/v1/login", `{"username":"alice","password":"x","remember":true}`, map[string]string{"Content-Type": "application/json"})
	if r.status != http.StatusBadRequest || r.problem(t).Field != "remember" {
		t.Fatalf("login with an unknown field: %d %s", r.status, r.body)
	}
	// A cross-site form cannot log in: it cannot send application/json.
	r = e.raw(nil, http.MethodPost, "/api/v1/login", `username=alice&password=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("form login: %d", r.status)
	}
}

func testCodes(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	var nc NewCode
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/enrollment-codes", CodeRequest{RoomID: f.roomA1.ID, LifetimeMinutes: 60}, &nc)
	if len(store.NormaliseCode(nc.Code)) != 20 || store.NormaliseCode(nc.Grouped) != nc.Code || strings.Count(nc.Grouped, "-") != 4 {
		t.Fatalf("code %q grouped %q", nc.Code, nc.Grouped)
	}
	if nc.Info.Hash != store.HashCode(nc.Code) || nc.Info.Status != "active" || !nc.Info.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("code info %+v", nc.Info)
	}
	var list []CodeView
	r := s.do(http.MethodGet, "/api/v1/enrollment-codes", nil)
	r.decode(t, &list)
	if bytes.Contains(r.body, []byte(nc.Code)) {
		t.Fatal("the list shows a code in clear")
	}
	if len(list) != 1 || list[0].Hash != nc.Info.Hash || list[0].RoomID != f.roomA1.ID {
		t.Fatalf("active codes: %+v", list)
	}
	s.must(http.StatusNoContent, http.MethodDelete, "/api/v1/enrollment-codes/"+nc.Info.Hash, nil, nil)
	s.must(http.StatusOK, http.MethodGet, "/api/v1/enrollment-codes", nil, &list)
	if len(list) != 0 {
		t.Fatalf("revoked code still listed as active: %+v", list)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/enrollment-codes?includeUsed=true", nil, &list)
	statuses := map[string]int{}
	for _, c := range list {
		statuses[c.Status]++
	}
	if statuses["revoked"] != 1 || statuses["used"] != 3 { // the fixture enrolled three devices
		t.Fatalf("all codes: %v", statuses)
	}
	if r := s.do(http.MethodDelete, "/api/v1/enrollment-codes/"+nc.Info.Hash, nil); r.status != http.StatusConflict {
		t.Fatalf("revoke twice: %d", r.status)
	}
	for _, c := range []struct {
		req   CodeRequest
		field string
	}{
		{CodeRequest{}, "roomId"},
		{CodeRequest{RoomID: f.roomA1.ID, SiteID: f.siteA.ID}, "roomId"},
		{CodeRequest{SiteID: f.siteA.ID, LifetimeMinutes: MaxCodeLifetime + 1}, "lifetimeMinutes"},
		{CodeRequest{SiteID: f.siteA.ID, LifetimeMinutes: -5}, "lifetimeMinutes"},
	} {
		r := s.do(http.MethodPost, "/api/v1/enrollment-codes", c.req)
		if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != c.field {
			t.Errorf("%+v: %d %s", c.req, r.status, r.body)
		}
	}
	if r := s.do(http.MethodPost, "/api/v1/enrollment-codes", CodeRequest{RoomID: "nope"}); r.status != http.StatusNotFound {
		t.Errorf("code for a missing room: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodPost, "/api/v1/orgs/nope/sites", nameRequest{"X"}); r.status != http.StatusNotFound {
		t.Errorf("site in a missing organisation: %d %s", r.status, r.body)
	}
	// Expiry shows in the list.
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/enrollment-codes", CodeRequest{SiteID: f.siteB.ID, LifetimeMinutes: 1}, &nc)
	e.clock.Advance(2 * time.Minute)
	s.must(http.StatusOK, http.MethodGet, "/api/v1/enrollment-codes?includeUsed=true", nil, &list)
	found := false
	for _, c := range list {
		if c.Hash == nc.Info.Hash {
			found = true
			if c.Status != "expired" {
				t.Fatalf("expired code: %+v", c)
			}
		}
	}
	if !found {
		t.Fatal("expired code not listed with includeUsed")
	}
}

func testAccounts(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	var bob AccountView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/accounts", createAccountRequest{"bob", store.RoleViewer, "bob's long password"}, &bob)
	bs := e.login("bob", "bob's long password")
	bs.must(http.StatusOK, http.MethodGet, "/api/v1/devices", nil, nil)
	for _, c := range []struct {
		req   createAccountRequest
		field string
	}{
		{createAccountRequest{"Bad Name", store.RoleViewer, "long enough password"}, "username"},
		{createAccountRequest{"device:x", store.RoleViewer, "long enough password"}, "username"},
		{createAccountRequest{"carol", "root", "long enough password"}, "role"},
		{createAccountRequest{"carol", store.RoleViewer, "short"}, "password"},
		{createAccountRequest{"carol", store.RoleViewer, strings.Repeat("p", 73)}, "password"},
	} {
		r := s.do(http.MethodPost, "/api/v1/accounts", c.req)
		if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != c.field {
			t.Errorf("%+v: %d %s", c.req, r.status, r.body)
		}
	}
	if r := s.do(http.MethodPost, "/api/v1/accounts", createAccountRequest{"bob", store.RoleViewer, "long enough password"}); r.status != http.StatusConflict {
		t.Errorf("duplicate username: %d", r.status)
	}
	// Promote bob: his open session now may write.
	s.must(http.StatusOK, http.MethodPatch, "/api/v1/accounts/"+bob.ID, map[string]any{"role": "admin"}, nil)
	bs.must(http.StatusCreated, http.MethodPost, "/api/v1/orgs", nameRequest{"Bob's org"}, nil)
	// Reset his password: his sessions end, the new password works.
	s.must(http.StatusNoContent, http.MethodPost, "/api/v1/accounts/"+bob.ID+"/password", passwordRequest{"a brand new password"}, nil)
	if r := bs.do(http.MethodGet, "/api/v1/session", nil); r.status != http.StatusUnauthorized {
		t.Errorf("session after password reset: %d", r.status)
	}
	if r := e.tryLogin("bob", "bob's long password"); r.status != http.StatusUnauthorized {
		t.Errorf("old password: %d", r.status)
	}
	bs = e.login("bob", "a brand new password")
	// Disable him.
	s.must(http.StatusOK, http.MethodPatch, "/api/v1/accounts/"+bob.ID, map[string]any{"disabled": true}, nil)
	if r := bs.do(http.MethodGet, "/api/v1/session", nil); r.status != http.StatusUnauthorized {
		t.Errorf("session of a disabled account: %d", r.status)
	}
	var list []AccountView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/accounts", nil, &list)
	if len(list) != 2 || list[1].Username != "bob" || !list[1].Disabled || list[1].Role != store.RoleAdmin {
		t.Fatalf("accounts: %+v", list)
	}
	// Nobody disables or demotes themselves.
	me := list[0].ID
	for _, body := range []map[string]any{{"disabled": true}, {"role": "viewer"}} {
		if r := s.do(http.MethodPatch, "/api/v1/accounts/"+me, body); r.status != http.StatusUnprocessableEntity {
			t.Errorf("self %v: %d", body, r.status)
		}
	}
	if r := s.do(http.MethodPatch, "/api/v1/accounts/"+me, map[string]any{"role": "owner"}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown role: %d", r.status)
	}
	if r := s.do(http.MethodPatch, "/api/v1/accounts/nope", map[string]any{"disabled": true}); r.status != http.StatusNotFound {
		t.Errorf("missing account: %d", r.status)
	}
}

func testLogBundle(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	var c CommandView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/devices/"+f.devA1.ID+"/commands", CommandRequest{Kind: "collect-logs"}, &c)
	if r := s.do(http.MethodGet, "/api/v1/commands/"+c.ID+"/logs", nil); r.status != http.StatusNotFound {
		t.Fatalf("logs before upload: %d", r.status)
	}
	data := []byte("\x1f\x8b fake gzip bundle")
	if err := e.st.PutLogBundle(e.ctx, f.devA1.ID, c.ID, data); err != nil {
		t.Fatal(err)
	}
	r := s.do(http.MethodGet, "/api/v1/commands/"+c.ID+"/logs", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) || r.header.Get("Content-Type") != "application/gzip" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("logs: %d %v %q", r.status, r.header, r.body)
	}
}
