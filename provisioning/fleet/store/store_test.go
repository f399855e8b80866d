package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/test/pgtest"
)

// fakeClock is the clock the code under test is given.
type fakeClock = testclock.Clock

// env is what each case gets: a migrated store on a fresh database.
type env struct {
	st    *Store
	clock *fakeClock
	opts  Options        // to reopen the same database
	fresh func() Options // a new empty database of the same engine
	ctx   context.Context
}

// fleet is a small organisation: two sites, room A1 and A2 in site A,
// room B1 in site B.
type fleet struct {
	org          Organisation
	siteA, siteB Site
	a1, a2, b1   Room
}

func (e *env) fleet(t *testing.T) fleet {
	t.Helper()
	var f fleet
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.org, err = e.st.CreateOrganisation(e.ctx, "admin", "Acme")
	must(err)
	f.siteA, err = e.st.CreateSite(e.ctx, "admin", f.org.ID, "Amsterdam")
	must(err)
	f.siteB, err = e.st.CreateSite(e.ctx, "admin", f.org.ID, "Berlin")
	must(err)
	f.a1, err = e.st.CreateRoom(e.ctx, "admin", f.siteA.ID, "A1")
	must(err)
	f.a2, err = e.st.CreateRoom(e.ctx, "admin", f.siteA.ID, "A2")
	must(err)
	f.b1, err = e.st.CreateRoom(e.ctx, "admin", f.siteB.ID, "B1")
	must(err)
	return f
}

// enroll makes a room code and redeems it.
func (e *env) enroll(t *testing.T, room Room, serial string) Device {
	t.Helper()
	code, _, err := e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{RoomID: room.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.st.Redeem(e.ctx, Redemption{Code: code, Hardware: json.RawMessage(`{"model":"x1"}`),
		CertSerial: serial, CertNotAfter: e.clock.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) auditCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.st.queryRow(e.ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// cases is the one suite both engines run.
var cases = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"MigrationsFromEmptyAndRerun", testMigrations},
	{"MigrationsConcurrent", testMigrationsConcurrent},
	{"ConstraintErrors", testConstraintErrors},
	{"RedeemCode", testRedeem},
	{"RedeemConcurrent", testRedeemConcurrent},
	{"ProfileInheritanceAndAudit", testProfiles},
	{"MalformedProfileRejected", testMalformedProfile},
	{"CommandIdempotency", testCommands},
	{"RevocationAndCheckIn", testRevocation},
	{"TelemetryRetention", testRetention},
	{"AccountsAndSessions", testAccounts},
	{"ConsoleReads", testConsoleReads},
	{"EnrollmentCodes", testEnrollmentCodes},
	{"DeviceRecords", testDeviceRecords},
	{"CheckInAndCommands", testCheckInAndCommands},
	{"LogBundles", testLogBundles},
	{"RecordsConcurrent", testRecordsConcurrent},
	{"ConnectionsBounded", testConnectionsBounded},
	{"PrivateFiles", testPrivateFiles},
	{"RolloutLifecycle", testRolloutLifecycle},
	{"MaintenanceWindows", testMaintenanceWindows},
	{"RolloutDeviceStatus", testRolloutDeviceStatus},
	{"RolloutEvaluation", testRolloutEvaluation},
}

// The SQLite file and its journal files hold secrets: owner only.
func testPrivateFiles(t *testing.T, e *env) {
	if e.st.Engine() != "sqlite" {
		return
	}
	e.fleet(t) // writes, so the WAL exists
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(e.opts.SQLitePath + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is mode %v", filepath.Base(e.opts.SQLitePath+suffix), fi.Mode().Perm())
		}
	}
}

// A burst larger than the pool queues in fleetd instead of opening a
// connection per request (PostgreSQL refuses past max_connections).
func testConnectionsBounded(t *testing.T, e *env) {
	if e.st.Engine() != "postgres" {
		return // one SQLite file has one writer whatever the pool
	}
	if got := e.st.db.Stats().MaxOpenConnections; got != DefaultMaxConns {
		t.Fatalf("default pool of %d connections, want %d", got, DefaultMaxConns)
	}
	opts := e.fresh()
	opts.MaxConns = 3
	st, err := Open(e.ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := st.db.ExecContext(e.ctx, `SELECT pg_sleep(0.05)`)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if stats := st.db.Stats(); stats.MaxOpenConnections != 3 || stats.WaitCount == 0 {
		t.Fatalf("pool %+v: want 3 connections and requests that waited for one", stats)
	}
}

// TestStore runs every case on SQLite in a temporary directory and on
// Debian's PostgreSQL started for this test, each case on a fresh database.
func TestStore(t *testing.T) {
	pg := pgtest.Start(t)
	engines := []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"sqlite", func(t *testing.T) Options {
			return Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db")}
		}},
		{"postgres", func(t *testing.T) Options { return Options{PostgresDSN: pg.NewDatabase(t)} }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			start := time.Now()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					clock := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
					opts := eng.opts(t)
					opts.Now = clock.Now
					st, err := Open(ctx, opts)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { st.Close() })
					if st.Engine() != eng.name {
						t.Fatalf("engine %s, want %s", st.Engine(), eng.name)
					}
					fresh := func() Options { o := eng.opts(t); o.Now = clock.Now; return o }
					c.fn(t, &env{st: st, clock: clock, opts: opts, fresh: fresh, ctx: ctx})
				})
			}
			t.Logf("%s: suite took %v", eng.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

func testMigrations(t *testing.T, e *env) {
	count := func(st *Store) (n, max int) {
		t.Helper()
		if err := st.queryRow(e.ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		return n, max
	}
	if n, max := count(e.st); n != SchemaVersion() || max != SchemaVersion() || n == 0 {
		t.Fatalf("fresh database: %d migrations up to %d, want %d", n, max, SchemaVersion())
	}
	f := e.fleet(t) // data that must survive a re-run
	e.st.Close()

	again, err := Open(e.ctx, e.opts)
	if err != nil {
		t.Fatalf("re-run on a migrated database: %v", err)
	}
	if n, _ := count(again); n != SchemaVersion() {
		t.Fatalf("re-run recorded %d migrations, want %d", n, SchemaVersion())
	}
	if _, err := again.Room(e.ctx, f.a1.ID); err != nil {
		t.Fatalf("data lost by re-run: %v", err)
	}
	// A newer program migrated this database: refuse it.
	if _, err := again.exec(e.ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		SchemaVersion()+1, "999_future.sql", 0); err != nil {
		t.Fatal(err)
	}
	again.Close()
	_, err = Open(e.ctx, e.opts)
	wantErr(t, "open a newer database", err, ErrSchemaTooNew)
}

// testMigrationsConcurrent starts two servers on one empty database at
// once: both open it, and the migrations are applied once.
func testMigrationsConcurrent(t *testing.T, e *env) {
	opts := e.fresh()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			st, err := Open(e.ctx, opts)
			if err == nil {
				err = st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent open: %v", err)
	}
	st, err := Open(e.ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	if err := st.queryRow(e.ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("%d migrations recorded (%v), want %d", n, err, SchemaVersion())
	}
}

func testConstraintErrors(t *testing.T, e *env) {
	f := e.fleet(t)
	_, err := e.st.CreateOrganisation(e.ctx, "admin", "Acme")
	wantErr(t, "duplicate organisation", err, ErrConflict)
	_, err = e.st.CreateRoom(e.ctx, "admin", f.siteA.ID, "A1")
	wantErr(t, "duplicate room in a site", err, ErrConflict)
	if _, err := e.st.CreateRoom(e.ctx, "admin", f.siteB.ID, "A1"); err != nil {
		t.Fatalf("same room name in another site: %v", err)
	}
	_, err = e.st.CreateSite(e.ctx, "admin", "no-such-org", "X")
	wantErr(t, "site in a missing organisation", err, ErrNotFound)
	_, err = e.st.Device(e.ctx, "no-such-device")
	wantErr(t, "missing device", err, ErrNotFound)
	// The audit log has one entry per successful creation only.
	if n := e.auditCount(t); n != 7 {
		t.Fatalf("%d audit entries, want 7 (org, 2 sites, 4 rooms)", n)
	}
}

func testRedeem(t *testing.T, e *env) {
	f := e.fleet(t)
	hw := json.RawMessage(`{"serial":"SN1","model":"atrium-1"}`)
	notAfter := e.clock.Now().Add(30 * 24 * time.Hour)
	redeem := func(code, room, serial string) (Device, error) {
		return e.st.Redeem(e.ctx, Redemption{Code: code, RoomID: room, Hardware: hw, CertSerial: serial, CertNotAfter: notAfter})
	}

	roomCode, ec, err := e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{RoomID: f.a1.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := e.st.queryRow(e.ctx, `SELECT COUNT(*) FROM enrollment_codes WHERE code_hash = ? OR code_hash = ?`,
		roomCode, ec.Hash).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 1 || ec.Hash == roomCode || strings.Contains(ec.Hash, roomCode) {
		t.Fatalf("code stored in clear or not at all (hash %s, code %s, rows %d)", ec.Hash, roomCode, stored)
	}

	_, err = redeem(roomCode, f.a2.ID, "s1")
	wantErr(t, "room code for another room", err, ErrWrongScope)

	// Typed in lower case with dashes: the same code.
	typed := strings.ToLower(roomCode[:5] + "-" + roomCode[5:10] + " " + roomCode[10:])
	d, err := redeem(typed, "", "s1")
	if err != nil {
		t.Fatalf("redeem room code: %v", err)
	}
	if d.RoomID != f.a1.ID || string(d.Hardware) != `{"model":"atrium-1","serial":"SN1"}` || !d.CertNotAfter.Equal(notAfter) {
		t.Fatalf("device %+v", d)
	}
	got, err := e.st.Device(e.ctx, d.ID)
	if err != nil || got.RoomID != f.a1.ID || got.CertSerial != "s1" || got.Revoked {
		t.Fatalf("stored device %+v, %v", got, err)
	}
	_, err = redeem(roomCode, "", "s2")
	wantErr(t, "reuse", err, ErrCodeUsed)

	_, err = redeem("AAAAAAAAAAAAAAAAAAAA", "", "s3")
	wantErr(t, "guessed code", err, ErrNotFound)

	siteCode, _, err := e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{SiteID: f.siteA.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = redeem(siteCode, f.b1.ID, "s4")
	wantErr(t, "site code for a room of another site", err, ErrWrongScope)
	_, err = redeem(siteCode, "", "s4")
	wantErr(t, "site code without a room", err, ErrWrongScope)
	if d, err := redeem(siteCode, f.a2.ID, "s4"); err != nil || d.RoomID != f.a2.ID {
		t.Fatalf("site code for a room of its site: %+v, %v", d, err)
	}

	expiring, _, err := e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{RoomID: f.b1.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	_, err = redeem(expiring, "", "s5")
	wantErr(t, "expired code", err, ErrCodeExpired)

	_, _, err = e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{SiteID: f.siteA.ID, RoomID: f.a1.ID}, time.Hour)
	wantErr(t, "code with two scopes", err, ErrInvalid)

	devs, err := e.st.Devices(e.ctx, "")
	if err != nil || len(devs) != 2 {
		t.Fatalf("%d devices after 2 good redeems (%v)", len(devs), err)
	}
}

func testRedeemConcurrent(t *testing.T, e *env) {
	f := e.fleet(t)
	code, _, err := e.st.CreateEnrollmentCode(e.ctx, "admin", CodeScope{SiteID: f.siteA.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = e.st.Redeem(e.ctx, Redemption{Code: code, RoomID: f.a1.ID, CertSerial: fmt.Sprintf("c%d", i),
				CertNotAfter: e.clock.Now().Add(time.Hour)})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrCodeUsed):
		default:
			t.Errorf("redeemer %d: %v", i, err)
		}
	}
	devs, err := e.st.Devices(e.ctx, f.a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(devs) != 1 {
		t.Fatalf("%d redeemers won and %d devices exist, want exactly 1 of each", won, len(devs))
	}
}

func testProfiles(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "p1")
	other := e.enroll(t, f.b1, "p2")
	set := func(sc Scope, base int64, body string) Profile {
		t.Helper()
		p, err := e.st.SetProfile(e.ctx, "alice", sc, base, json.RawMessage(body))
		if err != nil {
			t.Fatalf("set %s: %v", sc, err)
		}
		return p
	}
	orgSc, siteSc, roomSc, devSc := Scope{ScopeOrg, f.org.ID}, Scope{ScopeSite, f.siteA.ID}, Scope{ScopeRoom, f.a1.ID}, Scope{ScopeDevice, dev.ID}
	set(orgSc, 0, `{"tz":"UTC","volume":50,"ntp":true}`)
	set(siteSc, 0, `{"tz":"Europe/Amsterdam"}`)
	set(roomSc, 0, `{"volume":70}`)
	set(devSc, 0, `{"camera":"cam-2"}`)
	e.clock.Advance(time.Minute)
	if p := set(roomSc, 1, `{"volume":80}`); p.Version != 2 {
		t.Fatalf("second room profile has version %d", p.Version)
	}
	_, err := e.st.SetProfile(e.ctx, "bob", roomSc, 1, json.RawMessage(`{"volume":10}`))
	wantErr(t, "save from a stale version", err, ErrConflict)

	eff, err := e.st.EffectiveProfile(e.ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tz": `"Europe/Amsterdam"`, "volume": `80`, "ntp": `true`, "camera": `"cam-2"`}
	wantSrc := map[string]Scope{"tz": siteSc, "volume": roomSc, "ntp": orgSc, "camera": devSc}
	gotVals := map[string]string{}
	for k, v := range eff.Values {
		gotVals[k] = string(v)
	}
	if !reflect.DeepEqual(gotVals, want) || !reflect.DeepEqual(eff.Sources, wantSrc) {
		t.Fatalf("effective %v from %v\nwant %v from %v", gotVals, eff.Sources, want, wantSrc)
	}
	if eff.Versions[roomSc] != 2 || eff.Versions[orgSc] != 1 {
		t.Fatalf("versions %v", eff.Versions)
	}
	// A device elsewhere sees only the organisation's profile.
	eff, err = e.st.EffectiveProfile(e.ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(eff.Values["tz"]) != `"UTC"` || string(eff.Values["volume"]) != `50` || len(eff.Values) != 3 {
		t.Fatalf("other device's profile %v", eff.Values)
	}

	entries, err := e.st.Audit(e.ctx, "profile:"+roomSc.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d audit entries for the room profile, want 2 (the stale save wrote none)", len(entries))
	}
	last := entries[1]
	if last.Actor != "alice" || string(last.Before) != `{"volume":70}` || string(last.After) != `{"volume":80}` ||
		!last.At.Equal(e.clock.Now()) || entries[0].Before != nil {
		t.Fatalf("audit entries %+v", entries)
	}
	_, err = e.st.SetProfile(e.ctx, "alice", Scope{ScopeRoom, "no-such-room"}, 0, json.RawMessage(`{}`))
	wantErr(t, "profile for a missing room", err, ErrNotFound)
}

func testMalformedProfile(t *testing.T, e *env) {
	f := e.fleet(t)
	sc := Scope{ScopeSite, f.siteA.ID}
	if _, err := e.st.SetProfile(e.ctx, "alice", sc, 0, json.RawMessage(`{"tz":"UTC"}`)); err != nil {
		t.Fatal(err)
	}
	before := e.auditCount(t)
	for _, body := range []string{`{"tz":`, `["tz"]`, `null`, `"UTC"`, `{"a":1}{"b":2}`} {
		_, err := e.st.SetProfile(e.ctx, "mallory", sc, 1, json.RawMessage(body))
		wantErr(t, "profile "+body, err, ErrInvalid)
		if !strings.Contains(err.Error(), "profile must be a JSON object") {
			t.Errorf("profile %s: unclear error %q", body, err)
		}
	}
	_, err := e.st.SetProfile(e.ctx, "mallory", Scope{"building", f.siteA.ID}, 1, json.RawMessage(`{}`))
	wantErr(t, "unknown scope", err, ErrInvalid)
	p, err := e.st.Profile(e.ctx, sc)
	if err != nil || p.Version != 1 || string(p.Body) != `{"tz":"UTC"}` {
		t.Fatalf("profile changed by rejected saves: %+v, %v", p, err)
	}
	if n := e.auditCount(t); n != before {
		t.Fatalf("rejected saves wrote %d audit entries", n-before)
	}
}

func testCommands(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "c1")
	other := e.enroll(t, f.a2, "c2")
	nc := NewCommand{DeviceID: dev.ID, Kind: "join", Args: json.RawMessage(`{"url":"https://m.example/1"}`), IdempotencyKey: "k1"}
	first, created, err := e.st.EnqueueCommand(e.ctx, "alice", nc)
	if err != nil || !created || first.Status != CommandQueued {
		t.Fatalf("enqueue: %+v created=%v %v", first, created, err)
	}
	again, created, err := e.st.EnqueueCommand(e.ctx, "alice", nc)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("retry with the same key: %+v created=%v %v (first %s)", again, created, err, first.ID)
	}
	diff := nc
	diff.Args = json.RawMessage(`{"url":"https://m.example/2"}`)
	_, _, err = e.st.EnqueueCommand(e.ctx, "alice", diff)
	wantErr(t, "same key, other arguments", err, ErrConflict)
	nc.DeviceID = other.ID
	if c, created, err := e.st.EnqueueCommand(e.ctx, "alice", nc); err != nil || !created || c.ID == first.ID {
		t.Fatalf("same key on another device: %+v created=%v %v", c, created, err)
	}
	queued, err := e.st.Commands(e.ctx, dev.ID, CommandQueued)
	if err != nil || len(queued) != 1 || queued[0].ID != first.ID {
		t.Fatalf("queued commands %+v, %v", queued, err)
	}

	if _, err := e.st.SetCommandStatus(e.ctx, "fleetd", first.ID, CommandSent, ""); err != nil {
		t.Fatal(err)
	}
	done, err := e.st.SetCommandStatus(e.ctx, "device:"+dev.ID, first.ID, CommandSucceeded, "joined")
	if err != nil || done.Status != CommandSucceeded || done.Result != "joined" {
		t.Fatalf("succeed: %+v, %v", done, err)
	}
	if _, err := e.st.SetCommandStatus(e.ctx, "device:"+dev.ID, first.ID, CommandSucceeded, "joined"); err != nil {
		t.Fatalf("a repeated report must be accepted: %v", err)
	}
	_, err = e.st.SetCommandStatus(e.ctx, "device:"+dev.ID, first.ID, CommandFailed, "oops")
	wantErr(t, "finished command changed", err, ErrConflict)
	_, err = e.st.SetCommandStatus(e.ctx, "x", first.ID, "exploded", "")
	wantErr(t, "unknown status", err, ErrInvalid)
	got, err := e.st.Command(e.ctx, first.ID)
	if err != nil || got.Status != CommandSucceeded || got.Result != "joined" {
		t.Fatalf("stored command %+v, %v", got, err)
	}
	_, _, err = e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: "nope", Kind: "reboot", IdempotencyKey: "k"})
	wantErr(t, "command for a missing device", err, ErrNotFound)
}

func testRevocation(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "r1")
	e.clock.Advance(time.Minute)
	if err := e.st.RecordCheckIn(e.ctx, dev.ID, CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"1.2"}`), MeetingState: "idle"}); err != nil {
		t.Fatal(err)
	}
	d, err := e.st.DeviceByCertSerial(e.ctx, "r1")
	if err != nil || d.ID != dev.ID || !d.LastCheckIn.Equal(e.clock.Now()) || d.Health != "ok" ||
		string(d.Versions) != `{"roomd":"1.2"}` || d.MeetingState != "idle" {
		t.Fatalf("after check-in: %+v, %v", d, err)
	}
	renewed := e.clock.Now().Add(60 * 24 * time.Hour)
	if err := e.st.RenewCertificate(e.ctx, dev.ID, "r1b", renewed); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.DeviceByCertSerial(e.ctx, "r1")
	wantErr(t, "old certificate after renewal", err, ErrNotFound)
	if d, err = e.st.DeviceByCertSerial(e.ctx, "r1b"); err != nil || d.ID != dev.ID || !d.CertNotAfter.Equal(renewed) {
		t.Fatalf("after renewal: %+v, %v", d, err)
	}
	if err := e.st.RevokeDevice(e.ctx, "alice", dev.ID); err != nil {
		t.Fatal(err)
	}
	d, err = e.st.DeviceByCertSerial(e.ctx, "r1b")
	if err != nil || !d.Revoked || !d.RevokedAt.Equal(e.clock.Now()) {
		t.Fatalf("revoked device %+v, %v", d, err)
	}
	e.clock.Advance(time.Minute)
	err = e.st.RecordCheckIn(e.ctx, dev.ID, CheckIn{Health: "bad"})
	wantErr(t, "check-in after revocation", err, ErrRevoked)
	_, _, err = e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: "reboot", IdempotencyKey: "k"})
	wantErr(t, "command after revocation", err, ErrRevoked)
	err = e.st.RenewCertificate(e.ctx, dev.ID, "r2", e.clock.Now().Add(time.Hour))
	wantErr(t, "renewal after revocation", err, ErrRevoked)
	err = e.st.RevokeDevice(e.ctx, "alice", dev.ID)
	wantErr(t, "second revocation", err, ErrConflict)
	d, _ = e.st.Device(e.ctx, dev.ID)
	if d.Health != "ok" {
		t.Fatalf("refused check-in was stored: %+v", d)
	}
	entries, err := e.st.Audit(e.ctx, "device:"+dev.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action+" by "+en.Actor)
	}
	want := []string{"device.enroll by device:" + dev.ID, "device.renew_certificate by device:" + dev.ID, "device.revoke by alice"}
	if !reflect.DeepEqual(actions, want) {
		t.Fatalf("device audit %v, want %v", actions, want)
	}
	var before, after Device
	if json.Unmarshal(entries[2].Before, &before) != nil || json.Unmarshal(entries[2].After, &after) != nil ||
		before.Revoked || !after.Revoked || after.ID != dev.ID {
		t.Fatalf("revocation audit before %s after %s", entries[2].Before, entries[2].After)
	}
	err = e.st.RevokeDevice(e.ctx, "alice", "no-such-device")
	wantErr(t, "revoke a missing device", err, ErrNotFound)
}

func testRetention(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "t1")
	t0 := e.clock.Now()
	for i := range 3 { // at t0, t0+1h, t0+2h
		if err := e.st.AddSample(e.ctx, dev.ID, "health", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			e.clock.Advance(time.Hour)
		}
	}
	wantErr(t, "sample with bad JSON", e.st.AddSample(e.ctx, dev.ID, "health", json.RawMessage(`{`)), ErrInvalid)
	wantErr(t, "sample for a missing device", e.st.AddSample(e.ctx, "nope", "health", json.RawMessage(`{}`)), ErrNotFound)
	n, err := e.st.PurgeSamples(e.ctx, 90*time.Minute) // cut-off t0+30m
	if err != nil || n != 1 {
		t.Fatalf("purge removed %d (%v), want 1", n, err)
	}
	left, err := e.st.Samples(e.ctx, dev.ID, "", t0, 0)
	if err != nil || len(left) != 2 || string(left[0].Body) != `{"i":1}` || !left[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("left after purge: %+v, %v", left, err)
	}
	if n, err := e.st.PurgeSamples(e.ctx, 90*time.Minute); err != nil || n != 0 {
		t.Fatalf("second purge removed %d (%v)", n, err)
	}
	_, err = e.st.PurgeSamples(e.ctx, 0)
	wantErr(t, "zero retention", err, ErrInvalid)
}

// TestOpenOptions needs no database: a store needs exactly one engine.
func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{{}, {SQLitePath: "x.db", PostgresDSN: "postgres://h/db"}} {
		if _, err := Open(ctx, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v): %v, want ErrInvalid", o, err)
		}
	}
}

// TestDialect checks the two rewrites, the only places the engines differ.
func TestDialect(t *testing.T) {
	q := `UPDATE t SET a = ?, b = ? WHERE c = ?`
	if got := postgresDialect.rebind(q); got != `UPDATE t SET a = $1, b = $2 WHERE c = $3` {
		t.Errorf("postgres rebind: %s", got)
	}
	if got := sqliteDialect.rebind(q); got != q {
		t.Errorf("sqlite rebind: %s", got)
	}
	got := statements(postgresDialect.migration("-- c\nCREATE TABLE a (id {{serial}},\n  x TEXT);\n\nCREATE INDEX i ON a (x);\n"))
	want := []string{"CREATE TABLE a (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n  x TEXT)", "CREATE INDEX i ON a (x)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statements: %q, want %q", got, want)
	}
}
