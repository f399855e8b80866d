package settings

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string, base *config.Config) *Store {
	t.Helper()
	s, err := Open(dir, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ptr(s string) *string { return &s }

func TestDefaultsAreRoomdToml(t *testing.T) {
	base := config.Default()
	base.Room.Name = "Boardroom"
	base.Calendar.Timezone = "Europe/Berlin"
	s := open(t, t.TempDir(), base)
	got := s.Get()
	if got.Version != 0 || got.RoomName != "Boardroom" || got.Calendar.Refresh != "5m0s" || got.Calendar.Timezone != "Europe/Berlin" {
		t.Fatalf("settings from roomd.toml: %+v", got)
	}
	if got.Display.Sleep || strings.Join(got.Display.Days, ",") != "mon,tue,wed,thu,fri" || got.ICEServers == nil {
		t.Fatalf("defaults: %+v", got)
	}
	if eff := s.Effective(); eff.Location.String() != "Europe/Berlin" || eff.Config == base {
		t.Fatalf("effective %+v", eff)
	}
}

func validPut(version int) apiv1.Settings {
	return apiv1.Settings{
		Version:  version,
		RoomName: "  Boardroom ",
		Calendar: apiv1.CalendarSettings{URL: "https://cal.example.com/room.ics", Username: "room", Password: ptr("s3cret pass"), Refresh: "2m", Timezone: "Europe/Berlin"},
		ICEServers: []apiv1.ICEServerConfig{
			{URLs: []string{"stun:stun.example.com:3478"}},
			{URLs: []string{"turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"}, Username: "u", Credential: ptr("turnpass")},
		},
		Devices: apiv1.DeviceChoice{Camera: "sim:camera"},
		Display: apiv1.DisplaySchedule{Sleep: true, Days: []string{"mon", "tue"}, AwakeFrom: "07:00", AwakeUntil: "19:00"},
	}
}

func TestPutPersistsAndKeepsSecretsApart(t *testing.T) {
	dir := t.TempDir()
	base := config.Default()
	s := open(t, dir, base)
	got, eff, err := s.Put(validPut(0))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.RoomName != "Boardroom" || !got.Calendar.HasPassword || got.Calendar.Password != nil || got.Calendar.Refresh != "2m0s" {
		t.Fatalf("after put: %+v", got)
	}
	if !got.ICEServers[1].HasCredential || got.ICEServers[0].HasCredential || got.ICEServers[1].Credential != nil {
		t.Fatalf("ice after put: %+v", got.ICEServers)
	}
	if eff.Config.Room.Name != "Boardroom" || eff.Config.HAL.Camera != "sim:camera" || !eff.Display.Sleep || eff.Version != 1 {
		t.Fatalf("effective %+v", eff.Config)
	}
	if base.Room.Name != "Meeting Room" || base.Calendar.URL != "" {
		t.Fatal("Put changed the base configuration")
	}
	data, err := os.ReadFile(filepath.Join(dir, "settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cret") || strings.Contains(string(data), "turnpass") {
		t.Fatalf("a secret is in settings.json: %s", data)
	}
	for _, f := range []string{filepath.Join(dir, "settings.json"), eff.Config.Calendar.PasswordFile, eff.Config.Meeting.ICEServers[1].CredentialFile} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, fi)
		}
	}
	if b, _ := os.ReadFile(eff.Config.Calendar.PasswordFile); string(b) != "s3cret pass\n" {
		t.Errorf("password file holds %q", b)
	}

	// A restart reads the same.
	s2 := open(t, dir, base)
	if again := s2.Get(); again.Version != 1 || again.RoomName != "Boardroom" || !again.Calendar.HasPassword || len(again.ICEServers) != 2 {
		t.Fatalf("after restart: %+v", again)
	}

	// Without the secrets the PUT keeps them; "" clears the password and
	// its file goes.
	next := validPut(1)
	next.Calendar.Password = nil
	next.ICEServers[1].Credential = nil
	got, eff2, err := s2.Put(next)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Calendar.HasPassword || !got.ICEServers[1].HasCredential || eff2.Config.Calendar.PasswordFile != eff.Config.Calendar.PasswordFile {
		t.Fatalf("secrets not kept: %+v", got)
	}
	next = validPut(2)
	next.Calendar.Password = ptr("")
	next.Calendar.Username = ""
	next.ICEServers[1].Credential = nil
	if got, _, err = s2.Put(next); err != nil {
		t.Fatal(err)
	}
	if got.Calendar.HasPassword || got.Version != 3 {
		t.Fatalf("password not cleared: %+v", got)
	}
	if _, err := os.Stat(eff.Config.Calendar.PasswordFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cleared password's file is still there: %v", err)
	}
	// A server whose URLs changed has no credential to keep.
	next = validPut(3)
	next.Calendar.Password = nil
	next.ICEServers[1].URLs = []string{"turn:other.example.com"}
	next.ICEServers[1].Credential = nil
	var verr *ValidationError
	if _, _, err = s2.Put(next); !errors.As(err, &verr) || verr.Error() != "iceServers[1].credential: a TURN server needs a credential" {
		t.Fatalf("TURN server without credential: %v", err)
	}
}

func TestConflict(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, config.Default())
	if _, _, err := s.Put(validPut(0)); err != nil {
		t.Fatal(err)
	}
	in := validPut(0)
	in.RoomName = "Other"
	_, _, err := s.Put(in)
	var c *ConflictError
	if !errors.As(err, &c) || c.Current != 1 || c.Sent != 0 || !errors.Is(err, ErrConflict) {
		t.Fatalf("stale put: %v", err)
	}
	if s.Get().RoomName != "Boardroom" {
		t.Fatal("a stale put changed the settings")
	}
}

func TestValidationNamesFields(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, config.Default())
	in := validPut(0)
	in.RoomName = " "
	in.Calendar.File = "relative.ics"
	in.Calendar.Refresh = "forever"
	in.Calendar.Timezone = "Mars/Olympus"
	in.ICEServers = append(in.ICEServers,
		apiv1.ICEServerConfig{URLs: []string{"stun:", "http://x", "turn:h:99999?transport=sctp"}},
		apiv1.ICEServerConfig{})
	in.Devices.Speaker = "has space"
	in.Display.Days = []string{"mon", "someday"}
	in.Display.AwakeFrom = "7"
	_, _, err := s.Put(in)
	var verr *ValidationError
	if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid put: %v", err)
	}
	want := []string{
		`roomName: must not be empty`,
		`calendar.file: set either calendar.url or calendar.file, not both`,
		`calendar.file: must be an absolute path; got "relative.ics"`,
		`calendar.refresh: "forever" is not a duration`,
		`calendar.timezone: "Mars/Olympus" is not an IANA time zone`,
		`iceServers[2].urls[0]: "stun:" has no host`,
		`iceServers[2].urls[1]: "http://x": the scheme must be stun, stuns, turn or turns`,
		`iceServers[2].urls[2]: "turn:h:99999?transport=sctp": the only query is transport=udp or transport=tcp`,
		`iceServers[2].urls[2]: "turn:h:99999?transport=sctp": the port must be from 1 to 65535`,
		`iceServers[2].username: a TURN server needs a username`,
		`iceServers[3].urls: must list at least one`,
		`devices.speaker: must be a device ID`,
		`display.days[1]: "someday" is not a day`,
		`display.awakeFrom: "7" is not a time of day`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, strings.ReplaceAll(msg, "; ", "\n"))
		}
	}
	if len(verr.Fields) != len(want)+1 { // + iceServers[2].credential
		t.Errorf("%d errors, want %d:\n%s", len(verr.Fields), len(want)+1, strings.ReplaceAll(msg, "; ", "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, "settings.json")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a rejected put wrote settings.json")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "secrets")); len(entries) != 0 {
		t.Errorf("a rejected put left %d secret files", len(entries))
	}
	if s.Get().Version != 0 {
		t.Error("a rejected put bumped the version")
	}
}

func TestDamagedFileMovedAside(t *testing.T) {
	for name, content := range map[string]string{
		"not json":       "{oops",
		"unknown schema": `{"schema":7,"version":3}`,
		"unknown field":  `{"schema":1,"version":3,"colour":"red"}`,
		"invalid value":  `{"schema":1,"version":3,"calendar":{"url":"ftp://x","refresh":"5m"}}`,
		"missing secret": `{"schema":1,"version":3,"calendar":{"url":"https://x/c.ics","username":"u","passwordFile":"/nonexistent/secret","refresh":"5m"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "settings.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := open(t, dir, config.Default())
			if got := s.Get(); got.Version != 0 || got.RoomName != "Meeting Room" || got.Calendar.URL != "" {
				t.Errorf("damaged file applied: %+v", got)
			}
			if b, err := os.ReadFile(path + ".damaged"); err != nil || string(b) != content {
				t.Errorf("not moved aside: %v", err)
			}
			// And the store works: the next put starts from version 0.
			if _, _, err := s.Put(validPut(0)); err != nil {
				t.Errorf("put after damage: %v", err)
			}
		})
	}
}

func TestFleetLayerOverLocalSettings(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, config.Default())
	// The room's own settings first.
	local, _, err := s.Put(validPut(0))
	if err != nil {
		t.Fatal(err)
	}
	localPassword := s.Effective().Config.Calendar.PasswordFile

	// The fleet takes the room name, the calendar (with its own password),
	// the time zone and the display.
	fleetPW := "fleet-pass"
	out, eff, err := s.SetFleet(FleetLayer{
		RoomName: ptr("Lab 4"),
		Timezone: ptr("America/New_York"),
		Calendar: &apiv1.CalendarSettings{URL: "https://fleet-cal.example.com/lab4.ics", Username: "lab4", Password: &fleetPW, Refresh: "10m"},
		Display:  &apiv1.DisplaySchedule{Sleep: true, Days: []string{"mon"}, AwakeFrom: "08:00", AwakeUntil: "18:00"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.RoomName != "Lab 4" || out.Calendar.URL != "https://fleet-cal.example.com/lab4.ics" || out.Calendar.Timezone != "America/New_York" ||
		eff.Location.String() != "America/New_York" || out.Version != local.Version+1 {
		t.Fatalf("with the fleet's layer: %+v", out)
	}
	if strings.Join(out.Managed, ",") != "roomName,calendar,calendar.timezone,display" {
		t.Fatalf("managed %v", out.Managed)
	}
	// The devices stay the room's own.
	if out.Devices.Camera != "sim:camera" {
		t.Fatalf("devices %+v", out.Devices)
	}
	fleetPassword := eff.Config.Calendar.PasswordFile
	if b, err := os.ReadFile(fleetPassword); err != nil || string(b) != "fleet-pass\n" || !strings.Contains(fleetPassword, "fleet-") {
		t.Fatalf("fleet secret %s: %q %v", fleetPassword, b, err)
	}
	// The local secret stays on disk underneath.
	if _, err := os.Stat(localPassword); err != nil {
		t.Fatalf("local secret gone: %v", err)
	}

	// A local change to a managed section is refused, naming it; an
	// unmanaged one goes through.
	in := out
	in.RoomName = "Kiosk rename"
	in.Devices.Camera = "sim:other"
	_, _, err = s.Put(in)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "roomName" || !strings.Contains(ve.Fields[0].Msg, "managed by the fleet") {
		t.Fatalf("managed change: %v", err)
	}
	in.RoomName = out.RoomName
	out2, _, err := s.Put(in)
	if err != nil || out2.Devices.Camera != "sim:other" || out2.RoomName != "Lab 4" {
		t.Fatalf("unmanaged change: %+v %v", out2, err)
	}

	// Both layers survive a restart.
	s = open(t, dir, config.Default())
	if got := s.Get(); got.RoomName != "Lab 4" || got.Devices.Camera != "sim:other" || got.Version != out2.Version {
		t.Fatalf("after reopening: %+v", got)
	}

	// The fleet lets go of everything but the display: the room's own
	// values are back, the fleet's secret is gone.
	out3, eff, err := s.SetFleet(FleetLayer{Display: &apiv1.DisplaySchedule{Sleep: false, Days: []string{}, AwakeFrom: "07:00", AwakeUntil: "19:00"}})
	if err != nil {
		t.Fatal(err)
	}
	if out3.RoomName != "Boardroom" || out3.Calendar.URL != "https://cal.example.com/room.ics" || out3.Calendar.Timezone != "Europe/Berlin" ||
		eff.Config.Calendar.PasswordFile != localPassword || strings.Join(out3.Managed, ",") != "display" {
		t.Fatalf("after the fleet let go: %+v", out3)
	}
	if _, err := os.Stat(fleetPassword); !os.IsNotExist(err) {
		t.Fatalf("fleet secret still there: %v", err)
	}
}

func TestFleetLayerRefusedWhole(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, config.Default())
	before := s.Get()
	bad := FleetLayer{
		RoomName: ptr("Fine name"),
		Calendar: &apiv1.CalendarSettings{URL: "ftp://nowhere", Refresh: "5m"},
		Timezone: ptr("Mars/Olympus"),
	}
	var ve *ValidationError
	if err := s.CheckFleet(bad); !errors.As(err, &ve) {
		t.Fatalf("CheckFleet on a bad layer: %v", err)
	}
	if err := s.CheckFleet(FleetLayer{RoomName: ptr("Fine name")}); err != nil || s.Get().RoomName == "Fine name" {
		t.Fatalf("CheckFleet on a good layer: %v, or it changed the settings", err)
	}
	_, _, err := s.SetFleet(bad)
	if !errors.As(err, &ve) {
		t.Fatalf("bad layer: %v", err)
	}
	fields := map[string]bool{}
	for _, f := range ve.Fields {
		fields[f.Field] = true
	}
	if !fields["calendar.url"] || !fields["calendar.timezone"] {
		t.Fatalf("fields %v", ve.Fields)
	}
	if after := s.Get(); after.RoomName != before.RoomName || after.Version != before.Version || len(after.Managed) != 0 {
		t.Fatalf("a refused layer changed the settings: %+v", after)
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet.json")); !os.IsNotExist(err) {
		t.Fatalf("fleet.json written: %v", err)
	}
	// A damaged fleet.json is moved aside at start; the local layer stays.
	if err := os.WriteFile(filepath.Join(dir, "fleet.json"), []byte(`{"schema":1,"roomName":`), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, config.Default())
	if _, err := os.Stat(filepath.Join(dir, "fleet.json.damaged")); err != nil || len(s.Get().Managed) != 0 {
		t.Fatalf("damaged fleet layer: %v %+v", err, s.Get())
	}
}

// The kiosk sends back what it read, with "" for credentials it never
// had: that must not count as a change to a managed section.
func TestKioskRoundTripWithManagedSections(t *testing.T) {
	s := open(t, t.TempDir(), config.Default())
	empty, cred := "", "turnpass"
	_, _, err := s.SetFleet(FleetLayer{ICEServers: &[]apiv1.ICEServerConfig{
		{URLs: []string{"stun:stun.example.com:3478"}, Credential: &empty},
		{URLs: []string{"turn:turn.example.com:3478"}, Username: "u", Credential: &cred},
	}})
	if err != nil {
		t.Fatal(err)
	}
	in := s.Get()
	in.ICEServers[0].Credential = &empty
	in.RoomName = "Renamed locally"
	out, _, err := s.Put(in)
	if err != nil || out.RoomName != "Renamed locally" || len(out.ICEServers) != 2 || !out.ICEServers[1].HasCredential {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	// Clearing the managed TURN credential is a change.
	in = s.Get()
	in.ICEServers[1].Credential = &empty
	var ve *ValidationError
	if _, _, err := s.Put(in); !errors.As(err, &ve) || ve.Fields[0].Field != "iceServers" {
		t.Fatalf("clearing a managed credential: %v", err)
	}
}
