package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testConsoleReads(t *testing.T, e *env) {
	f := e.fleet(t)
	other, err := e.st.CreateOrganisation(e.ctx, "admin", "Beta")
	if err != nil {
		t.Fatal(err)
	}
	orgs, err := e.st.Organisations(e.ctx)
	if err != nil || len(orgs) != 2 || orgs[0].ID != f.org.ID || orgs[1].ID != other.ID {
		t.Fatalf("organisations %+v, %v", orgs, err)
	}
	sites, err := e.st.Sites(e.ctx, f.org.ID)
	if err != nil || len(sites) != 2 || sites[0].Name != "Amsterdam" || sites[1].Name != "Berlin" {
		t.Fatalf("sites %+v, %v", sites, err)
	}
	if sites, err := e.st.Sites(e.ctx, other.ID); err != nil || len(sites) != 0 {
		t.Fatalf("sites of an empty organisation %+v, %v", sites, err)
	}
	rooms, err := e.st.Rooms(e.ctx, f.siteA.ID)
	if err != nil || len(rooms) != 2 || rooms[0].ID != f.a1.ID || rooms[1].ID != f.a2.ID {
		t.Fatalf("rooms %+v, %v", rooms, err)
	}
	if all, err := e.st.Rooms(e.ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("all rooms %+v, %v", all, err)
	}

	// d1 in A1 checks in now with roomd 1.2 and problems; d2 in A2 checked
	// in 10 minutes ago with 1.1; d3 in B1 never checked in.
	d2 := e.enroll(t, f.a2, "s2")
	if err := e.st.RecordCheckIn(e.ctx, d2.ID, CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.1"}`)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	d1 := e.enroll(t, f.a1, "s1")
	d3 := e.enroll(t, f.b1, "s3")
	err = e.st.RecordCheckIn(e.ctx, d1.ID, CheckIn{Health: "degraded", Versions: json.RawMessage(`{"roomd":"1.2","kernel":"6.1"}`),
		MeetingState: "connected", Inventory: json.RawMessage(`{"hostname":"a1"}`), Problems: []string{"camera missing"},
		ProfileApplied: "v1", ProfileLast: ProfileOutcome{Version: "v2", Status: "rolled-back", Reason: "roomd unhealthy"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(list []DeviceSummary, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, d := range list {
			out = append(out, d.ID)
		}
		return out
	}
	yes, no := true, false
	for _, c := range []struct {
		name string
		f    DeviceFilter
		want []string
	}{
		{"all", DeviceFilter{}, []string{d1.ID, d2.ID, d3.ID}},
		{"site A", DeviceFilter{SiteID: f.siteA.ID}, []string{d1.ID, d2.ID}},
		{"room A2", DeviceFilter{RoomID: f.a2.ID}, []string{d2.ID}},
		{"degraded", DeviceFilter{Health: "degraded"}, []string{d1.ID}},
		{"version 1.1", DeviceFilter{Version: "1.1"}, []string{d2.ID}},
		{"version 6.1 is the kernel's", DeviceFilter{Version: "6.1"}, []string{}},
		{"online", DeviceFilter{Online: &yes}, []string{d1.ID}},
		{"offline", DeviceFilter{Online: &no}, []string{d2.ID, d3.ID}},
		{"online within 15m", DeviceFilter{Online: &yes, OnlineWindow: 15 * time.Minute}, []string{d1.ID, d2.ID}},
		{"site A offline", DeviceFilter{SiteID: f.siteA.ID, Online: &no}, []string{d2.ID}},
		{"limit", DeviceFilter{Limit: 2}, []string{d1.ID, d2.ID}},
	} {
		if got := ids(e.st.DeviceSummaries(e.ctx, c.f)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	list, err := e.st.DeviceSummaries(e.ctx, DeviceFilter{RoomID: f.a1.ID})
	if err != nil || len(list) != 1 {
		t.Fatalf("%+v, %v", list, err)
	}
	s := list[0]
	if s.RoomName != "A1" || s.SiteID != f.siteA.ID || s.SiteName != "Amsterdam" || s.OrgID != f.org.ID || !s.Online ||
		s.ProfileApplied != "v1" || s.ProfileVersion != "v2" || s.ProfileStatus != "rolled-back" || s.ProfileReason != "roomd unhealthy" ||
		s.Health != "degraded" || string(s.Inventory) != `{"hostname":"a1"}` || !reflect.DeepEqual(s.Problems, []string{"camera missing"}) {
		t.Fatalf("summary %+v", s)
	}
	one, err := e.st.DeviceSummary(e.ctx, d1.ID)
	if err != nil || !reflect.DeepEqual(one, s) {
		t.Fatalf("one summary %+v, %v; want %+v", one, err, s)
	}
	_, err = e.st.DeviceSummary(e.ctx, "nope")
	wantErr(t, "summary of a missing device", err, ErrNotFound)
	if d, err := e.st.Device(e.ctx, d3.ID); err != nil || string(d.Inventory) != "{}" || d.Problems != nil {
		t.Fatalf("device before any check-in %+v, %v", d, err)
	}

	// Profile history, newest first.
	sc := Scope{ScopeRoom, f.a1.ID}
	for v := range int64(3) {
		if _, err := e.st.SetProfile(e.ctx, "alice", sc, v, json.RawMessage(`{"ntp":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := e.st.ProfileHistory(e.ctx, sc, 2)
	if err != nil || len(hist) != 2 || hist[0].Version != 3 || hist[1].Version != 2 || hist[0].CreatedBy != "alice" {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if hist, err := e.st.ProfileHistory(e.ctx, Scope{ScopeSite, f.siteB.ID}, 0); err != nil || len(hist) != 0 {
		t.Fatalf("history of a scope without profile %+v, %v", hist, err)
	}
	_, err = e.st.ProfileHistory(e.ctx, Scope{"planet", "x"}, 0)
	wantErr(t, "history of an unknown scope", err, ErrInvalid)

	// Samples: kind filter and limit keep the newest, oldest first.
	t0 := e.clock.Now()
	for i := range 4 {
		kind := "health"
		if i == 2 {
			kind = "call"
		}
		if err := e.st.AddSample(e.ctx, d1.ID, kind, json.RawMessage(`{"i":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
	}
	got, err := e.st.Samples(e.ctx, d1.ID, "health", t0, 2)
	if err != nil || len(got) != 2 || string(got[0].Body) != `{"i":1}` || string(got[1].Body) != `{"i":3}` {
		t.Fatalf("newest 2 health samples %+v, %v", got, err)
	}
	if got, err := e.st.Samples(e.ctx, d1.ID, "", t0.Add(90*time.Second), 0); err != nil || len(got) != 2 || got[0].Kind != "call" {
		t.Fatalf("samples since t0+90s %+v, %v", got, err)
	}
}

func testEnrollmentCodes(t *testing.T, e *env) {
	f := e.fleet(t)
	roomCode, rc, err := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{RoomID: f.a1.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Hint != roomCode[len(roomCode)-HintLen:] {
		t.Fatalf("hint %q of code %q", rc.Hint, roomCode)
	}
	e.clock.Advance(time.Second)
	siteCode, sc, err := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{SiteID: f.siteA.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	_, shortLived, err := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{SiteID: f.siteB.ID}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	revokeMe, rv, err := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{RoomID: f.b1.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hashes := func(includeUsed bool) []string {
		t.Helper()
		list, err := e.st.EnrollmentCodes(e.ctx, includeUsed)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list {
			out = append(out, c.Hash)
		}
		return out
	}
	if got, want := hashes(false), []string{rv.Hash, shortLived.Hash, sc.Hash, rc.Hash}; !reflect.DeepEqual(got, want) {
		t.Fatalf("live codes %v, want %v", got, want)
	}

	// A site-wide code with a room name creates the room, audited as the
	// device's doing; the certificate is issued inside, with the device ID.
	var issuedFor string
	dev, err := e.st.Redeem(e.ctx, Redemption{Code: siteCode, RoomName: " Board room ", Hardware: json.RawMessage(`{}`),
		Issue: func(id string) (string, time.Time, error) {
			issuedFor = id
			return "serial-" + id, e.clock.Now().Add(24 * time.Hour), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if issuedFor != dev.ID || dev.CertSerial != "serial-"+dev.ID {
		t.Fatalf("issued for %q, device %+v", issuedFor, dev)
	}
	room, err := e.st.Room(e.ctx, dev.RoomID)
	if err != nil || room.Name != "Board room" || room.SiteID != f.siteA.ID {
		t.Fatalf("created room %+v, %v", room, err)
	}
	if entries, _ := e.st.Audit(e.ctx, "room:"+room.ID, 0); len(entries) != 1 || entries[0].Actor != "device:"+dev.ID {
		t.Fatalf("room audit %+v", entries)
	}
	// The same name again joins that room.
	code2, _, _ := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{SiteID: f.siteA.ID}, time.Hour)
	dev2, err := e.st.Redeem(e.ctx, Redemption{Code: code2, RoomName: "Board room", CertSerial: "x2", CertNotAfter: e.clock.Now().Add(time.Hour)})
	if err != nil || dev2.RoomID != room.ID {
		t.Fatalf("second device in the named room: %+v, %v", dev2, err)
	}
	// An issuer error spends nothing; a site code without a room is wrong
	// scope; a bad room name is invalid.
	code3, _, _ := e.st.CreateEnrollmentCode(e.ctx, "alice", CodeScope{SiteID: f.siteA.ID}, time.Hour)
	boom := errors.New("boom")
	_, err = e.st.Redeem(e.ctx, Redemption{Code: code3, RoomName: "X", Issue: func(string) (string, time.Time, error) {
		return "", time.Time{}, boom
	}})
	wantErr(t, "issuer failure", err, boom)
	_, err = e.st.Redeem(e.ctx, Redemption{Code: code3, CertSerial: "x3", CertNotAfter: e.clock.Now().Add(time.Hour)})
	wantErr(t, "site code without room", err, ErrWrongScope)
	_, err = e.st.Redeem(e.ctx, Redemption{Code: code3, RoomName: strings.Repeat("r", 64), CertSerial: "x3", CertNotAfter: e.clock.Now().Add(time.Hour)})
	wantErr(t, "long room name", err, ErrInvalid)
	if _, err := e.st.Redeem(e.ctx, Redemption{Code: code3, RoomName: "X", CertSerial: "x3", CertNotAfter: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("code after a failed issue: %v", err)
	}

	// Revocation: the code answers like an unknown one afterwards.
	if err := e.st.RevokeEnrollmentCode(e.ctx, "bob", rv.Hash); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.Redeem(e.ctx, Redemption{Code: revokeMe, CertSerial: "x4", CertNotAfter: e.clock.Now().Add(time.Hour)})
	wantErr(t, "revoked code", err, ErrNotFound)
	wantErr(t, "revoke twice", e.st.RevokeEnrollmentCode(e.ctx, "bob", rv.Hash), ErrConflict)
	wantErr(t, "revoke a used code", e.st.RevokeEnrollmentCode(e.ctx, "bob", sc.Hash), ErrConflict)
	wantErr(t, "revoke an unknown code", e.st.RevokeEnrollmentCode(e.ctx, "bob", "ffff"), ErrNotFound)
	if entries, _ := e.st.Audit(e.ctx, "code:"+rv.Hash[:16], 0); len(entries) != 2 || entries[1].Action != "enrollment_code.revoke" || entries[1].Actor != "bob" {
		t.Fatalf("code audit %+v", entries)
	}

	e.clock.Advance(2 * time.Minute) // shortLived expires
	if got, want := hashes(false), []string{rc.Hash}; !reflect.DeepEqual(got[len(got)-1:], want) || len(got) != 1 {
		t.Fatalf("live codes after use, revocation and expiry %v, want %v", got, want)
	}
	all, err := e.st.EnrollmentCodes(e.ctx, true)
	if err != nil || len(all) != 6 {
		t.Fatalf("all codes: %d, %v", len(all), err)
	}
	for _, c := range all {
		switch c.Hash {
		case rv.Hash:
			if c.RevokedAt.IsZero() || !c.UsedAt.IsZero() {
				t.Errorf("revoked code listed as %+v", c)
			}
		case sc.Hash:
			if c.UsedAt.IsZero() || c.DeviceID != dev.ID || c.Scope.SiteID != f.siteA.ID || c.Hint != sc.Hint {
				t.Errorf("used code listed as %+v", c)
			}
		}
	}
}
