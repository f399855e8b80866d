package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/ota/release"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// fakeCatalog stands in for the TUF repository's catalog (the real one,
// rollout.NewRepoCatalog, is tested with a real repository in its own
// package): the console only lists releases and looks one up.
type fakeCatalog struct {
	rels []rollout.Release
	err  error
}

func (f *fakeCatalog) Releases(ctx context.Context) ([]rollout.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Clone(f.rels), f.err
}

// Releases of the fake catalog, newest first.
var (
	release12 = rollout.Release{Target: "atrium-x1-1.2.0.img", Version: "1.2.0", SecurityVersion: 3, Hardware: []string{"x1", "x2"},
		BuildTime: time.Date(2026, 2, 20, 12, 0, 0, 0, time.UTC), Length: 512 << 20}
	release11 = rollout.Release{Target: "atrium-x1-1.1.0.img", Version: "1.1.0", SecurityVersion: 2, Hardware: []string{"x1"},
		BuildTime: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), Length: 500 << 20}
)

func testCatalog() *fakeCatalog { return &fakeCatalog{rels: []rollout.Release{release12, release11}} }

// rolloutCount is how many rollouts the store holds.
func (e *env) rolloutCount() int {
	e.t.Helper()
	list, err := e.st.Rollouts(e.ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

// report plays a device's check-in carrying an update status.
func (e *env) report(d store.Device, st fleetapi.UpdateStatus) {
	e.t.Helper()
	if st.Hardware == "" {
		st.Hardware = "x1"
	}
	if st.Running == "" {
		st.Running = "1.1.0"
	}
	err := e.st.RecordCheckIn(e.ctx, d.ID, store.CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.0.0"}`),
		MeetingState: "idle", Update: &st})
	if err != nil {
		e.t.Fatal(err)
	}
}

// withCatalog returns s's session on a second console over the same
// store whose catalog is cat (nil: no update repository).
func (e *env) withCatalog(s *session, cat rollout.Catalog) *session {
	e.t.Helper()
	con, err := New(Options{Store: e.st, Now: e.clock.Now, Logger: e.con.log, Releases: cat})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(con.Handler())
	e.t.Cleanup(srv.Close)
	other := *e
	other.con, other.srv = con, srv
	return &session{e: &other, cookie: s.cookie, csrf: s.csrf, user: s.user}
}

func testReleases(t *testing.T, e *env) {
	e.account("alice", store.RoleAdmin, adminPassword)
	e.account("bob", store.RoleViewer, viewerPassword)
	for _, s := range []*session{e.login("alice", adminPassword), e.login("bob", viewerPassword)} {
		var list ReleaseList
		s.must(http.StatusOK, http.MethodGet, "/api/v1/releases", nil, &list)
		want := []ReleaseView{releaseView(release12), releaseView(release11)}
		if !list.Configured || len(list.Releases) != 2 {
			t.Fatalf("%s: releases %+v", s.user, list)
		}
		for i := range want {
			got := list.Releases[i]
			if got.Target != want[i].Target || got.Version != want[i].Version || got.SecurityVersion != want[i].SecurityVersion ||
				!slices.Equal(got.Hardware, want[i].Hardware) || !got.BuildTime.Equal(want[i].BuildTime) || got.Length != want[i].Length {
				t.Errorf("%s: release %d is %+v, want %+v", s.user, i, got, want[i])
			}
		}
	}

	// A catalog that fails is a 500 whose detail hides the cause.
	s := e.login("alice", adminPassword)
	failing := e.withCatalog(s, &fakeCatalog{err: errors.New("disk on fire")})
	r := failing.do(http.MethodGet, "/api/v1/releases", nil)
	if p := r.problem(t); r.status != http.StatusInternalServerError || strings.Contains(p.Detail, "fire") {
		t.Fatalf("failing catalog: %d %s", r.status, r.body)
	}

	// No update repository: nothing to list, nothing to roll out.
	s = e.withCatalog(s, nil)
	var list ReleaseList
	s.must(http.StatusOK, http.MethodGet, "/api/v1/releases", nil, &list)
	if list.Configured || list.Releases == nil || len(list.Releases) != 0 {
		t.Fatalf("without a catalog: %+v", list)
	}
	org, err := e.st.CreateOrganisation(e.ctx, "setup", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	r = s.do(http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: org.ID, Target: release12.Target})
	if p := r.problem(t); r.status != http.StatusUnprocessableEntity || p.Field != "target" || !strings.Contains(p.Detail, "fleetd release") {
		t.Fatalf("rollout without a catalog: %d %s", r.status, r.body)
	}
	if n := e.rolloutCount(); n != 0 {
		t.Fatalf("%d rollouts after a refused create", n)
	}
}

func testRolloutCreate(t *testing.T, e *env) {
	f := e.fleet()
	for _, d := range []store.Device{f.devA1, f.devA2, f.dB} {
		e.report(d, fleetapi.UpdateStatus{State: fleetapi.UpdateIdle})
	}
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	audit := e.auditCount()

	// Defaults: the usual rings, 10 % threshold, 60 minutes' soak, and the
	// version from the release's metadata.
	r := s.do(http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, Target: release12.Target})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var ro RolloutView
	r.decode(t, &ro)
	if ro.Version != "1.2.0" || ro.State != "running" || ro.FailureThreshold != DefaultFailureThreshold || ro.SoakMinutes != DefaultSoakMinutes ||
		!slices.Equal(ro.Rings, rollout.DefaultRings()) || ro.Ring != 0 || ro.Immediate || ro.CreatedBy != "alice" || ro.SiteID != "" {
		t.Fatalf("created %+v", ro)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/rollouts/"+ro.ID {
		t.Errorf("Location %q", loc)
	}
	if want := ro.RingOpened.Add(time.Hour); ro.NextRingAt == nil || !ro.NextRingAt.Equal(want) {
		t.Errorf("next ring at %v, want %v", ro.NextRingAt, want)
	}
	if n := e.auditCount(); n != audit+1 {
		t.Errorf("audit %d → %d after a create", audit, n)
	}
	entries, err := e.st.Audit(e.ctx, "rollout:"+ro.ID, 10)
	if err != nil || len(entries) != 1 || entries[0].Actor != "alice" {
		t.Errorf("audit of the rollout: %+v %v", entries, err)
	}

	// Listed, newest first, and filtered by organisation.
	var list []RolloutView
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts", nil, &list)
	if len(list) != 1 || list[0].ID != ro.ID {
		t.Fatalf("list %+v", list)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts?org=nobody", nil, &list)
	if len(list) != 0 {
		t.Fatalf("list of another org %+v", list)
	}
	if r := s.do(http.MethodGet, "/api/v1/rollouts?state=running", nil); r.status != http.StatusBadRequest || r.problem(t).Field != "state" {
		t.Fatalf("unknown filter: %d %s", r.status, r.body)
	}

	// The detail: every device of the organisation, each in its ring,
	// none reported yet.
	var d RolloutDetail
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts/"+ro.ID, nil, &d)
	if d.Rollout.ID != ro.ID || len(d.Rings) != 3 || len(d.Devices) != 3 {
		t.Fatalf("detail %+v", d)
	}
	members := make([]int, 3)
	for _, dv := range d.Devices {
		want := rollout.RingOf(ro.Rings, ro.ID, dv.DeviceID)
		if dv.Ring != want || dv.RingName != ro.Rings[want].Name || dv.State != DevicePending || dv.Progress != 0 || dv.Skipped != "" || dv.Running != "1.1.0" {
			t.Errorf("device %+v, want ring %d pending", dv, want)
		}
		members[want]++
	}
	for i, rp := range d.Rings {
		if rp.Members != members[i] || rp.Pending != members[i] || rp.Committed+rp.Failed+rp.InProgress+rp.Skipped != 0 || rp.Open != (i == 0) {
			t.Errorf("ring %d: %+v, want %d members pending", i, rp, members[i])
		}
	}

	// One active rollout per organisation.
	r = s.do(http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, Target: release11.Target})
	if r.status != http.StatusConflict || r.problem(t).Code != "conflict" {
		t.Fatalf("second active rollout: %d %s", r.status, r.body)
	}

	// Aborted, the organisation is free again: a site-scoped, urgent
	// rollout with its own rings, threshold and soak covers that site's
	// devices only.
	s.must(http.StatusOK, http.MethodPost, "/api/v1/rollouts/"+ro.ID+"/abort", AbortRequest{Reason: "wrong build"}, nil)
	e.clock.Advance(time.Minute)
	zero := 0
	rings := []rollout.Ring{{Name: "first", Percent: 50}, {Name: "rest", Percent: 100}}
	var site RolloutView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, SiteID: f.siteA.ID, Target: release11.Target,
		Rings: rings, FailureThreshold: &zero, SoakMinutes: &zero, Immediate: true}, &site)
	if site.SiteID != f.siteA.ID || site.Version != "1.1.0" || !slices.Equal(site.Rings, rings) || site.FailureThreshold != 0 ||
		site.SoakMinutes != 0 || !site.Immediate {
		t.Fatalf("site rollout %+v", site)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts/"+site.ID, nil, &d)
	var ids []string
	for _, dv := range d.Devices {
		ids = append(ids, dv.DeviceID)
		if dv.SiteName != "Amsterdam" {
			t.Errorf("device of site %q in a rollout of Amsterdam", dv.SiteName)
		}
	}
	if len(ids) != 2 || !slices.Contains(ids, f.devA1.ID) || !slices.Contains(ids, f.devA2.ID) {
		t.Fatalf("site rollout devices %v", ids)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts", nil, &list)
	if len(list) != 2 || list[0].ID != site.ID {
		t.Fatalf("list, newest first: %+v", list)
	}
	if r := s.do(http.MethodGet, "/api/v1/rollouts/nope", nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown rollout: %d %s", r.status, r.body)
	}
}

func testRolloutValidation(t *testing.T, e *env) {
	f := e.fleet()
	other, err := e.st.CreateOrganisation(e.ctx, "setup", "Other")
	if err != nil {
		t.Fatal(err)
	}
	otherSite, err := e.st.CreateSite(e.ctx, "setup", other.ID, "Elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	audit := e.auditCount()
	ok := func() map[string]any {
		return map[string]any{"orgId": f.org.ID, "target": release12.Target}
	}
	with := func(k string, v any) map[string]any {
		b := ok()
		b[k] = v
		return b
	}
	ring := func(name string, pct int) map[string]any { return map[string]any{"name": name, "percent": pct} }
	nine := []any{}
	for i := range 9 {
		nine = append(nine, ring(fmt.Sprintf("r%d", i), 10+i*10))
	}
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"unknown target", with("target", "atrium-x1-9.9.9.img"), 422, "target"},
		{"no target", with("target", ""), 422, "target"},
		{"no organisation", with("orgId", ""), 422, "orgId"},
		{"unknown organisation", with("orgId", "nope"), 422, "orgId"},
		{"site of another organisation", with("siteId", otherSite.ID), 422, "siteId"},
		{"no rings", with("rings", []any{}), 422, "rings"},
		{"nine rings", with("rings", nine), 422, "rings"},
		{"zero percent", with("rings", []any{ring("canary", 0), ring("all", 100)}), 422, "rings[0].percent"},
		{"over 100", with("rings", []any{ring("canary", 1), ring("all", 101)}), 422, "rings[1].percent"},
		{"not rising", with("rings", []any{ring("a", 10), ring("b", 10), ring("c", 100)}), 422, "rings[1].percent"},
		{"last not 100", with("rings", []any{ring("a", 10), ring("b", 50)}), 422, "rings[1].percent"},
		{"empty name", with("rings", []any{ring("", 5), ring("all", 100)}), 422, "rings[0].name"},
		{"long name", with("rings", []any{ring(strings.Repeat("n", 41), 5), ring("all", 100)}), 422, "rings[0].name"},
		{"duplicate name", with("rings", []any{ring("a", 5), ring("a", 100)}), 422, "rings[1].name"},
		{"threshold above 100", with("failureThreshold", 101), 422, "failureThreshold"},
		{"negative threshold", with("failureThreshold", -1), 422, "failureThreshold"},
		{"negative soak", with("soakMinutes", -5), 422, "soakMinutes"},
		{"soak over a week", with("soakMinutes", store.MaxSoakMinutes+1), 422, "soakMinutes"},
		{"unknown field", with("wave", 1), 400, "wave"},
		{"percent as text", with("rings", []any{map[string]any{"name": "a", "percent": "100"}}), 400, "rings.percent"},
		{"unknown ring field", with("rings", []any{map[string]any{"name": "a", "percent": 100, "size": 3}}), 400, "size"},
	}
	for _, c := range cases {
		r := s.do(http.MethodPost, "/api/v1/rollouts", c.body)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		if p := r.problem(t); p.Field != c.field || p.Detail == "" {
			t.Errorf("%s: field %q (%s), want %q", c.name, p.Field, p.Detail, c.field)
		}
	}
	if n := e.rolloutCount(); n != 0 {
		t.Fatalf("%d rollouts after refused creates", n)
	}
	if n := e.auditCount(); n != audit {
		t.Fatalf("refused creates changed the audit log: %d → %d", audit, n)
	}
	// Explicit null rings are the default rings.
	var ro RolloutView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts", with("rings", nil), &ro)
	if !slices.Equal(ro.Rings, rollout.DefaultRings()) {
		t.Fatalf("null rings made %v", ro.Rings)
	}
}

func testRolloutTransitions(t *testing.T, e *env) {
	f := e.fleet()
	for _, d := range []store.Device{f.devA1, f.devA2, f.dB} {
		e.report(d, fleetapi.UpdateStatus{State: fleetapi.UpdateIdle})
	}
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	one := []rollout.Ring{{Name: "all", Percent: 100}}
	var ro RolloutView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, Target: release12.Target, Rings: one}, &ro)
	base := "/api/v1/rollouts/" + ro.ID
	step := func(op string, body any, want int, state string) {
		t.Helper()
		r := s.do(http.MethodPost, base+"/"+op, body)
		if r.status != want {
			t.Fatalf("%s: %d %s, want %d", op, r.status, r.body, want)
		}
		var got RolloutDetail
		s.must(http.StatusOK, http.MethodGet, base, nil, &got)
		if got.Rollout.State != state {
			t.Fatalf("after %s (%d): state %s, want %s", op, want, got.Rollout.State, state)
		}
		if want == http.StatusConflict && !strings.Contains(r.problem(t).Detail, state) {
			t.Errorf("%s refused without saying the state %s: %s", op, state, r.body)
		}
	}
	audit := e.auditCount()
	step("resume", nil, http.StatusConflict, "running")
	step("pause", nil, http.StatusOK, "paused")
	step("pause", nil, http.StatusConflict, "paused")
	step("resume", map[string]any{}, http.StatusOK, "running")
	step("pause", map[string]any{}, http.StatusOK, "paused")
	if r := s.do(http.MethodPost, base+"/pause", map[string]any{"now": true}); r.status != http.StatusBadRequest || r.problem(t).Field != "now" {
		t.Fatalf("pause with an argument: %d %s", r.status, r.body)
	}
	if n := e.auditCount(); n != audit+3 {
		t.Errorf("three changes audited as %d entries", n-audit)
	}

	// A halt by itself: one of three devices fails, above 10 %.
	step("resume", nil, http.StatusOK, "running")
	e.report(f.devA1, fleetapi.UpdateStatus{State: fleetapi.UpdateFailed, Rollout: ro.ID, Version: "1.2.0", Reason: "health gate: kiosk did not start"})
	halted, _, err := e.st.EvaluateRollout(e.ctx, ro.ID, release12, 24*time.Hour)
	if err != nil || halted.State != store.RolloutHalted || halted.Reason == "" {
		t.Fatalf("evaluate after a failure: %+v %v", halted, err)
	}
	var d RolloutDetail
	s.must(http.StatusOK, http.MethodGet, base, nil, &d)
	if d.Rollout.State != "halted" || d.Rollout.Reason != halted.Reason || d.Rollout.NextRingAt != nil || d.Rings[0].Failed != 1 {
		t.Fatalf("halted detail %+v", d)
	}
	step("pause", nil, http.StatusConflict, "halted")
	step("resume", nil, http.StatusOK, "running")

	// Abort needs a reason, and is final.
	for _, body := range []any{nil, AbortRequest{}, AbortRequest{Reason: "  "}, AbortRequest{Reason: strings.Repeat("x", maxReason+1)}} {
		r := s.do(http.MethodPost, base+"/abort", body)
		if r.status == http.StatusOK || (r.status == http.StatusUnprocessableEntity && r.problem(t).Field != "reason") {
			t.Fatalf("abort with %v: %d %s", body, r.status, r.body)
		}
	}
	step("abort", AbortRequest{Reason: "the kiosk crashes on x1"}, http.StatusOK, "aborted")
	s.must(http.StatusOK, http.MethodGet, base, nil, &d)
	if d.Rollout.Reason == "" || !strings.Contains(d.Rollout.Reason, "the kiosk crashes on x1") {
		t.Errorf("aborted with reason %q", d.Rollout.Reason)
	}
	step("abort", AbortRequest{Reason: "again"}, http.StatusConflict, "aborted")
	step("resume", nil, http.StatusConflict, "aborted")
	step("pause", nil, http.StatusConflict, "aborted")
	if r := s.do(http.MethodPost, "/api/v1/rollouts/nope/pause", nil); r.status != http.StatusNotFound {
		t.Fatalf("pause an unknown rollout: %d %s", r.status, r.body)
	}
	entries, err := e.st.Audit(e.ctx, "rollout:"+ro.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]int{}
	for _, en := range entries {
		actors[en.Actor]++
	}
	// create, pause, resume, pause, resume, resume, abort by alice; the
	// halt by fleetd itself.
	if actors["alice"] != 7 || actors["fleetd"] != 1 {
		t.Errorf("rollout audit actors %v", actors)
	}
}

func testRolloutRoles(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	e.account("bob", store.RoleViewer, viewerPassword)
	a := e.login("alice", adminPassword)
	var ro RolloutView
	a.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, Target: release12.Target}, &ro)
	v := e.login("bob", viewerPassword)
	audit := e.auditCount()
	window := WindowRequest{Window: &fleetapi.MaintenanceWindow{Start: "01:00", End: "03:00"}}
	writes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: f.org.ID, Target: release11.Target}},
		{http.MethodPost, "/api/v1/rollouts/" + ro.ID + "/pause", nil},
		{http.MethodPost, "/api/v1/rollouts/" + ro.ID + "/resume", nil},
		{http.MethodPost, "/api/v1/rollouts/" + ro.ID + "/abort", AbortRequest{Reason: "viewer"}},
		{http.MethodPut, "/api/v1/sites/" + f.siteA.ID + "/maintenance-window", window},
	}
	for _, w := range writes {
		if r := v.do(w.method, w.path, w.body); r.status != http.StatusForbidden || r.problem(t).Code != "forbidden" {
			t.Errorf("viewer %s %s: %d %s", w.method, w.path, r.status, r.body)
		}
		// An admin without the CSRF token, or from another origin, is
		// refused too.
		hdr := map[string]string{"Content-Type": "application/json"}
		if r := e.raw(a, w.method, w.path, w.body, hdr); r.status != http.StatusForbidden || r.problem(t).Code != "csrf" {
			t.Errorf("admin without CSRF token %s %s: %d %s", w.method, w.path, r.status, r.body)
		}
		hdr[csrfHeader], hdr["Origin"] = a.csrf, "https://evil.example"
		if r := e.raw(a, w.method, w.path, w.body, hdr); r.status != http.StatusForbidden || r.problem(t).Code != "csrf" {
			t.Errorf("admin from another origin %s %s: %d %s", w.method, w.path, r.status, r.body)
		}
	}
	if n := e.auditCount(); n != audit {
		t.Fatalf("refused writes changed the audit log: %d → %d", audit, n)
	}
	got, err := e.st.Rollout(e.ctx, ro.ID)
	if err != nil || got.State != store.RolloutRunning || e.rolloutCount() != 1 {
		t.Fatalf("refused writes changed the rollout: %+v %v", got, err)
	}
	site, err := e.st.Site(e.ctx, f.siteA.ID)
	if err != nil || site.MaintenanceWindow != nil {
		t.Fatalf("refused writes changed the window: %+v %v", site, err)
	}
	// Viewers read everything.
	for _, p := range []string{"/api/v1/releases", "/api/v1/rollouts", "/api/v1/rollouts/" + ro.ID,
		"/api/v1/sites/" + f.siteA.ID + "/maintenance-window"} {
		v.must(http.StatusOK, http.MethodGet, p, nil, nil)
	}
	// Without a session, nothing.
	if r := e.raw(nil, http.MethodGet, "/api/v1/rollouts", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("rollouts without a session: %d", r.status)
	}
}

func testMaintenanceWindow(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	path := "/api/v1/sites/" + f.siteA.ID + "/maintenance-window"
	def := fleetapi.DefaultMaintenanceWindow()
	var w SiteWindowView
	s.must(http.StatusOK, http.MethodGet, path, nil, &w)
	if w.Window != nil || w.Default != def || w.Effective != def || w.SiteID != f.siteA.ID || w.SiteName != "Amsterdam" {
		t.Fatalf("default window %+v", w)
	}
	audit := e.auditCount()
	night := fleetapi.MaintenanceWindow{Start: "22:30", End: "04:00"}
	s.must(http.StatusOK, http.MethodPut, path, WindowRequest{Window: &night}, &w)
	if w.Window == nil || *w.Window != night || w.Effective != night || w.Default != def {
		t.Fatalf("set window %+v", w)
	}
	s.must(http.StatusOK, http.MethodGet, path, nil, &w)
	if w.Window == nil || *w.Window != night {
		t.Fatalf("window read back %+v", w)
	}
	if site, err := e.st.Site(e.ctx, f.siteA.ID); err != nil || site.MaintenanceWindow == nil || *site.MaintenanceWindow != night {
		t.Fatalf("stored window %+v %v", site, err)
	}
	if other, err := e.st.Site(e.ctx, f.siteB.ID); err != nil || other.MaintenanceWindow != nil {
		t.Fatalf("the other site's window %+v %v", other, err)
	}
	if n := e.auditCount(); n != audit+1 {
		t.Errorf("window change audited as %d entries", n-audit)
	}

	// Bad times name their end and change nothing.
	audit = e.auditCount()
	for _, c := range []struct {
		win   map[string]any
		field string
	}{
		{map[string]any{"start": "25:00", "end": "04:00"}, "window.start"},
		{map[string]any{"start": "2:00", "end": "04:00"}, "window.start"},
		{map[string]any{"start": "", "end": "04:00"}, "window.start"},
		{map[string]any{"start": "02:00", "end": "04:60"}, "window.end"},
		{map[string]any{"start": "02:00", "end": "4pm"}, "window.end"},
		{map[string]any{"start": "02:00"}, "window.end"},
	} {
		r := s.do(http.MethodPut, path, map[string]any{"window": c.win})
		if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != c.field {
			t.Errorf("window %v: %d %s, want 422 naming %s", c.win, r.status, r.body, c.field)
		}
	}
	if r := s.do(http.MethodPut, path, map[string]any{"window": map[string]any{"start": "02:00", "end": "03:00", "days": 5}}); r.status != http.StatusBadRequest || r.problem(t).Field != "days" {
		t.Errorf("unknown window field: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodPut, "/api/v1/sites/nope/maintenance-window", WindowRequest{Window: &night}); r.status != http.StatusNotFound {
		t.Errorf("unknown site: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "/api/v1/sites/nope/maintenance-window", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown site: %d %s", r.status, r.body)
	}
	s.must(http.StatusOK, http.MethodGet, path, nil, &w)
	if w.Window == nil || *w.Window != night || e.auditCount() != audit {
		t.Fatalf("refused windows changed something: %+v, audit %d → %d", w, audit, e.auditCount())
	}

	// null returns the site to the default.
	w = SiteWindowView{}
	s.must(http.StatusOK, http.MethodPut, path, WindowRequest{}, &w)
	if w.Window != nil || w.Effective != def {
		t.Fatalf("cleared window %+v", w)
	}
	if site, err := e.st.Site(e.ctx, f.siteA.ID); err != nil || site.MaintenanceWindow != nil {
		t.Fatalf("stored after clearing %+v %v", site, err)
	}
}

func testRolloutDeviceStatus(t *testing.T, e *env) {
	f := e.fleet()
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)
	one := []rollout.Ring{{Name: "all", Percent: 100}}
	var ro RolloutView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts",
		RolloutRequest{OrgID: f.org.ID, Target: release12.Target, Rings: one, FailureThreshold: new(100)}, &ro)

	// A1 downloads, A2 waits for its window (reported in its own zone),
	// B1 has not reported on this rollout.
	zone := time.FixedZone("CET", 3600)
	next := time.Date(2026, 3, 2, 2, 0, 0, 0, zone)
	e.report(f.devA1, fleetapi.UpdateStatus{State: fleetapi.UpdateDownloading, Rollout: ro.ID, Version: "1.2.0", Written: 128 << 20, Length: 512 << 20})
	e.report(f.devA2, fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, Rollout: ro.ID, Version: "1.2.0",
		Deferred: fleetapi.DeferredWindow, NextWindow: next})
	e.report(f.dB, fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, Running: "1.1.0"})
	// Devices the rollout never offers the release to, each for its
	// reason; they do not count as pending.
	skipped := map[string]string{}
	for serial, c := range map[string]struct {
		st   *fleetapi.UpdateStatus
		want string
	}{
		"silent":  {nil, "reports no update state"},
		"current": {&fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, Running: "1.2.0"}, "already runs 1.2.0"},
		"x9":      {&fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, Hardware: "x9"}, `not built for its hardware "x9"`},
		"burnt":   {&fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, NeverRetry: []string{"1.2.0"}}, "never retries"},
		"floor":   {&fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, SecurityFloor: 4}, "security version 3 is below the device's floor 4"},
	} {
		d := e.enroll(f.roomB1, serial)
		if c.st != nil {
			e.report(d, *c.st)
		}
		skipped[d.ID] = c.want
	}
	var d RolloutDetail
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts/"+ro.ID, nil, &d)
	byID := map[string]RolloutDeviceView{}
	for _, dv := range d.Devices {
		byID[dv.DeviceID] = dv
	}
	a1, a2, b := byID[f.devA1.ID], byID[f.devA2.ID], byID[f.dB.ID]
	if a1.State != fleetapi.UpdateDownloading || a1.Progress != 25 || a1.Version != "1.2.0" || a1.Running != "1.1.0" || !a1.Online || a1.LastSeen == nil {
		t.Errorf("A1 %+v", a1)
	}
	if a2.State != fleetapi.UpdateIdle || a2.Deferred != fleetapi.DeferredWindow || a2.NextWindow == nil || !a2.NextWindow.Equal(next) {
		t.Errorf("A2 %+v", a2)
	}
	// The page reads the window's local clock from the JSON: the device's
	// zone must survive the store.
	raw := s.do(http.MethodGet, "/api/v1/rollouts/"+ro.ID, nil)
	if !strings.Contains(string(raw.body), `"nextWindow":"2026-03-02T02:00:00+01:00"`) {
		t.Errorf("next window not in the device's zone: %s", raw.body)
	}
	if b.State != DevicePending || b.Running != "1.1.0" || b.Skipped != "" {
		t.Errorf("B1 %+v", b)
	}
	for id, want := range skipped {
		if dv := byID[id]; dv.State != DevicePending || !strings.Contains(dv.Skipped, want) {
			t.Errorf("skipped device: %+v, want %q", dv, want)
		}
	}
	if rp := d.Rings[0]; rp.Members != 8 || rp.InProgress != 1 || rp.Pending != 2 || rp.Skipped != 5 || rp.Committed != 0 || rp.Failed != 0 {
		t.Errorf("ring %+v", rp)
	}

	// A1 commits, A2 rolls back, B1 waits for a meeting to end; B1 then
	// goes quiet and shows offline.
	e.report(f.devA1, fleetapi.UpdateStatus{State: fleetapi.UpdateCommitted, Rollout: ro.ID, Version: "1.2.0", Running: "1.2.0", Slot: "b"})
	e.report(f.devA2, fleetapi.UpdateStatus{State: fleetapi.UpdateRolledBack, Rollout: ro.ID, Version: "1.2.0",
		Reason: "slot b did not boot", NeverRetry: []string{"1.2.0"}})
	e.report(f.dB, fleetapi.UpdateStatus{State: fleetapi.UpdateIdle, Rollout: ro.ID, Version: "1.2.0", Deferred: fleetapi.DeferredMeeting})
	e.clock.Advance(10 * time.Minute) // past the online window, within the session's
	d = RolloutDetail{}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/rollouts/"+ro.ID, nil, &d)
	for _, dv := range d.Devices {
		byID[dv.DeviceID] = dv
	}
	a1, a2, b = byID[f.devA1.ID], byID[f.devA2.ID], byID[f.dB.ID]
	if a1.State != fleetapi.UpdateCommitted || a1.Progress != 100 || a1.Running != "1.2.0" || a1.Online {
		t.Errorf("A1 %+v", a1)
	}
	if a2.State != fleetapi.UpdateRolledBack || a2.Reason != "slot b did not boot" || a2.NextWindow != nil {
		t.Errorf("A2 %+v", a2)
	}
	if b.Deferred != fleetapi.DeferredMeeting || b.NextWindow != nil {
		t.Errorf("B1 %+v", b)
	}
	if rp := d.Rings[0]; rp.Members != 8 || rp.Committed != 1 || rp.Failed != 1 || rp.Pending != 1 || rp.InProgress != 0 || rp.Skipped != 5 {
		t.Errorf("ring %+v", rp)
	}

	// The device page shows the latest update status, never-retry list
	// included; a device that never reported one has none.
	var dd DeviceDetail
	s.must(http.StatusOK, http.MethodGet, "/api/v1/devices/"+f.devA2.ID, nil, &dd)
	if dd.Update == nil || dd.Update.Status.State != fleetapi.UpdateRolledBack || !slices.Equal(dd.Update.Status.NeverRetry, []string{"1.2.0"}) ||
		dd.Update.ReportedAt.IsZero() {
		t.Fatalf("device page update %+v", dd.Update)
	}
	s.must(http.StatusOK, http.MethodGet, "/api/v1/devices/"+f.devA1.ID, nil, &dd)
	if dd.Update == nil || dd.Update.Status.Running != "1.2.0" || dd.Update.Status.Slot != "b" || dd.Update.Progress != 100 {
		t.Fatalf("device page update %+v", dd.Update)
	}
	fresh := e.enroll(f.roomB1, "serial-b2")
	raw = s.do(http.MethodGet, "/api/v1/devices/"+fresh.ID, nil)
	if raw.status != http.StatusOK || strings.Contains(string(raw.body), `"update"`) {
		t.Fatalf("device without an update status: %d %s", raw.status, raw.body)
	}
}

// TestReleasesFromRepository runs the console on the real catalog of a TUF
// repository made with ota/release, as fleetd serve -updates does: the
// releases page lists what the repository signs, a rollout picks its
// version from the signed metadata, and a release published while the
// console runs shows up without a restart.
func TestReleasesFromRepository(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	keys, err := release.GenerateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	repo, err := release.Init(filepath.Join(dir, "repo"), keys, release.DefaultExpiry(), now)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(name, version string, securityVersion int, hardware []string, image string, built time.Time) {
		t.Helper()
		sum := sha256.Sum256([]byte(image))
		meta := release.ImageMeta{Hardware: hardware, Version: version, SecurityVersion: securityVersion, BuildTime: built,
			Partitions: map[string]release.PartitionMeta{"rootfs": {Size: int64(len(image)), SHA256: hex.EncodeToString(sum[:])}}}
		if err := repo.AddImage(name, strings.NewReader(image), meta, now); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	built := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	publish("atrium-1.0.0.img", "1.0.0", 1, []string{"x1"}, strings.Repeat("a", 4096), built)

	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(dir, "fleet.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := testclock.New(now)
	con, err := New(Options{Store: st, Now: clock.Now, Releases: rollout.NewRepoCatalog(repo.Dir())})
	if err != nil {
		t.Fatal(err)
	}
	con.cost = bcrypt.MinCost
	srv := httptest.NewServer(con.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, ctx: ctx, st: st, clock: clock, con: con, srv: srv}
	e.account("alice", store.RoleAdmin, adminPassword)
	s := e.login("alice", adminPassword)

	var list ReleaseList
	s.must(http.StatusOK, http.MethodGet, "/api/v1/releases", nil, &list)
	if !list.Configured || len(list.Releases) != 1 {
		t.Fatalf("releases %+v", list)
	}
	if r := list.Releases[0]; r.Target != "atrium-1.0.0.img" || r.Version != "1.0.0" || r.SecurityVersion != 1 ||
		!slices.Equal(r.Hardware, []string{"x1"}) || !r.BuildTime.Equal(built) || r.Length != 4096 {
		t.Fatalf("release %+v", r)
	}

	publish("atrium-1.1.0.img", "1.1.0", 2, []string{"x1", "x2"}, strings.Repeat("b", 8192), built.Add(24*time.Hour))
	s.must(http.StatusOK, http.MethodGet, "/api/v1/releases", nil, &list)
	if len(list.Releases) != 2 || list.Releases[0].Version != "1.1.0" || list.Releases[0].Length != 8192 || list.Releases[1].Version != "1.0.0" {
		t.Fatalf("after publishing 1.1.0: %+v", list)
	}

	org, err := st.CreateOrganisation(ctx, "setup", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	var ro RolloutView
	s.must(http.StatusCreated, http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: org.ID, Target: "atrium-1.1.0.img"}, &ro)
	if ro.Version != "1.1.0" || ro.Target != "atrium-1.1.0.img" {
		t.Fatalf("rollout %+v", ro)
	}
	r := s.do(http.MethodPost, "/api/v1/rollouts", RolloutRequest{OrgID: org.ID, Target: "atrium-1.2.0.img"})
	if r.status != http.StatusUnprocessableEntity || r.problem(t).Field != "target" {
		t.Fatalf("unpublished target: %d %s", r.status, r.body)
	}
}
