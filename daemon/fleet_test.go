package daemon

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atriumroom/atrium/daemon/api"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/logging"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/provisioning/osconfig"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// fakeOS stands for hostname1, timedate1 and login1; refuse makes one
// method fail as a D-Bus service would.
type fakeOS struct {
	mu       sync.Mutex
	host     osconfig.Hostname
	time     osconfig.TimeSettings
	wifi     *osconfig.WiFi
	wired    osconfig.WiredIPv4
	pac      string
	refuse   string
	calls    []string
	rebooted bool
}

func (f *fakeOS) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.refuse != "" && strings.HasPrefix(call, f.refuse) {
		return &osconfig.ServiceError{Name: "org.freedesktop.DBus.Error.AccessDenied", Message: "not allowed"}
	}
	return nil
}

func (f *fakeOS) Hostname(context.Context) (osconfig.Hostname, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.host, nil
}
func (f *fakeOS) SetRoomName(_ context.Context, room string) (osconfig.Hostname, error) {
	if err := f.record("SetRoomName " + room); err != nil {
		return osconfig.Hostname{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	label, _ := osconfig.HostLabel(room)
	f.host = osconfig.Hostname{Static: label, Pretty: room, Transient: label}
	return f.host, nil
}
func (f *fakeOS) SetStaticHostname(_ context.Context, name string) error {
	if err := f.record("SetStaticHostname " + name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.host = osconfig.Hostname{Static: name, Transient: name}
	return nil
}
func (f *fakeOS) Time(context.Context) (osconfig.TimeSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.time, nil
}
func (f *fakeOS) SetTimezone(_ context.Context, tz string) (osconfig.TimeSettings, error) {
	if err := f.record("SetTimezone " + tz); err != nil {
		return osconfig.TimeSettings{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.time.Timezone = tz
	return f.time, nil
}
func (f *fakeOS) SetNTP(_ context.Context, on bool) (osconfig.TimeSettings, error) {
	call := "SetNTP false"
	if on {
		call = "SetNTP true"
	}
	if err := f.record(call); err != nil {
		return osconfig.TimeSettings{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.time.NTP = on
	return f.time, nil
}
func (f *fakeOS) Reboot(context.Context) error {
	if err := f.record("Reboot"); err != nil {
		return err
	}
	f.mu.Lock()
	f.rebooted = true
	f.mu.Unlock()
	return nil
}

func (f *fakeOS) Inhibit(_ context.Context, why string) (Releaser, error) {
	if err := f.record("Inhibit " + why); err != nil {
		return nil, err
	}
	return fakeLock{f}, nil
}

type fakeLock struct{ f *fakeOS }

func (l fakeLock) Release() error { return l.f.record("Release") }

func (f *fakeOS) WiFiSettings(context.Context) (*osconfig.WiFiState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wifi == nil {
		return nil, nil
	}
	return &osconfig.WiFiState{SSID: f.wifi.SSID, Hidden: f.wifi.Hidden, HasPSK: f.wifi.PSK != ""}, nil
}
func (f *fakeOS) SetWiFi(_ context.Context, w *osconfig.WiFi) error {
	call := "SetWiFi none"
	if w != nil {
		call = "SetWiFi " + w.SSID
	}
	if err := f.record(call); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wifi = w
	return nil
}
func (f *fakeOS) WiredIPv4Settings(context.Context) (osconfig.WiredIPv4, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wired, nil
}
func (f *fakeOS) SetWiredIPv4(_ context.Context, w osconfig.WiredIPv4) error {
	if err := f.record("SetWiredIPv4 " + w.Method + " " + w.Address); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wired = w
	return nil
}
func (f *fakeOS) SetProxyPAC(_ context.Context, pac string) error {
	if err := f.record("SetProxyPAC " + pac); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pac = pac
	return nil
}

func (f *fakeOS) calledWith(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeOS) state() (osconfig.Hostname, osconfig.TimeSettings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.host, f.time
}

// fleetRoot is a machine with a machine ID and a kernel command line.
func fleetRoot(cmdline string) fstest.MapFS {
	return fstest.MapFS{
		"etc/machine-id": {Data: []byte("0123456789abcdef0123456789abcdef\n")},
		"proc/cmdline":   {Data: []byte(cmdline + "\n")},
	}
}

// startFleet runs a System managed by a fleet server that is never
// reached: the agent waits, unenrolled; the tests drive roomd's side.
func startFleet(t *testing.T, os *fakeOS) (*running, *logging.Recent) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Fleet.Identity = "file"
	recent := logging.NewRecent(1 << 20)
	logger, err := logging.New(logging.Options{Level: "debug", Format: "text", Stderr: io.Discard, Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Logger: logger, Version: "test", PINCost: 1 << 4, Recent: recent,
		Root: fleetRoot("quiet atrium.fleet=https://fleet.invalid:8443")}
	if os != nil {
		deps.OS = os
	}
	r := startWith(t, cfg, deps)
	t.Cleanup(func() { r.stop(t) })
	return r, recent
}

func TestFleetSetupFromTheKernelCommandLine(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	got := fleetSetup(configFleet("", ""), "ro quiet atrium.fleet=https://fleet.example:8443 atrium.fleet_ca_sha256="+pin+" atrium.activation_code=K7QX-2MNP atrium.other=1")
	if got.Server != "https://fleet.example:8443" || got.CASHA256 != pin || got.ActivationCode != "K7QX-2MNP" {
		t.Fatalf("from the command line: %+v", got)
	}
	// roomd.toml wins.
	got = fleetSetup(configFleet("https://mine.example", "ABCD"), "atrium.fleet=https://other.example atrium.activation_code=X")
	if got.Server != "https://mine.example" || got.ActivationCode != "ABCD" {
		t.Fatalf("roomd.toml overridden: %+v", got)
	}
}

func TestFleetStatusAndEnrollWithoutAFleet(t *testing.T) {
	r := start(t, testConfig(t), 0)
	defer r.stop(t)
	if st := r.sys.FleetStatus(); st.Managed || st.CanEnroll {
		t.Fatalf("standalone room: %+v", st)
	}
	_, err := r.sys.FleetEnroll(context.Background(), apiv1.FleetEnrollRequest{Code: "ABCD"})
	var fe *api.FleetError
	if !errors.As(err, &fe) || fe.Type != apiv1.ProblemNotManaged || fe.Status != 409 {
		t.Fatalf("enroll without a fleet: %v", err)
	}
}

func TestFleetEnrollUnreachableServer(t *testing.T) {
	r, _ := startFleet(t, &fakeOS{})
	st := r.sys.FleetStatus()
	if !st.Managed || st.Enrolled || !st.CanEnroll || st.Server != "https://fleet.invalid:8443" {
		t.Fatalf("managed room before enrollment: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.sys.FleetEnroll(ctx, apiv1.FleetEnrollRequest{Code: "ABCD-EFGH"})
	var fe *api.FleetError
	if !errors.As(err, &fe) || fe.Type != apiv1.ProblemFleetUnreachable || fe.Status != 502 || !strings.Contains(fe.Detail, "fleet.invalid") {
		t.Fatalf("unreachable fleet: %v", err)
	}
}

func TestApplyProfileAllOrNothing(t *testing.T) {
	os := &fakeOS{host: osconfig.Hostname{Static: "atrium", Pretty: "", Transient: "atrium"},
		time: osconfig.TimeSettings{Timezone: "UTC", NTP: true, CanNTP: true}}
	r, _ := startFleet(t, os)
	s := r.sys
	ctx := context.Background()
	localName := s.roomName()

	profile := func(body string) fleetapi.Profile {
		t.Helper()
		p, err := fleetapi.DecodeProfile([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A good profile: the OS, the settings' fleet layer and the PIN.
	err := s.applyProfile(ctx, profile(`{"roomName":"Lab 4","timezone":"Europe/Berlin","ntp":false,
		"display":{"sleep":true,"days":["mon"],"awakeFrom":"08:00","awakeUntil":"18:00"},"adminPin":"8642"}`))
	if err != nil {
		t.Fatal(err)
	}
	host, tm := os.state()
	if host.Pretty != "Lab 4" || host.Static != "lab-4" || tm.Timezone != "Europe/Berlin" || tm.NTP {
		t.Fatalf("OS after the profile: %+v %+v", host, tm)
	}
	set := s.Overlay.Get()
	if s.roomName() != "Lab 4" || set.Calendar.Timezone != "Europe/Berlin" || !set.Display.Sleep ||
		strings.Join(set.Managed, ",") != "roomName,calendar.timezone,display" {
		t.Fatalf("settings after the profile: room %q %+v", s.roomName(), set)
	}
	if !s.Admin.Status().PINSet || s.FleetStatus().CanEnroll {
		t.Fatal("the profile's PIN was not set")
	}

	// The OS refuses NTP: the time zone set before it is restored, and
	// the settings stay as they were.
	os.refuse = "SetNTP"
	err = s.applyProfile(ctx, profile(`{"roomName":"Lab 5","timezone":"Asia/Tokyo","ntp":true}`))
	var se *osconfig.ServiceError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "ntp") {
		t.Fatalf("refused NTP: %v", err)
	}
	host, tm = os.state()
	if tm.Timezone != "Europe/Berlin" || host.Pretty != "Lab 4" || s.roomName() != "Lab 4" {
		t.Fatalf("after a refusal: %+v %+v room %q", host, tm, s.roomName())
	}
	os.refuse = ""

	// Settings roomd refuses (credentials over plain http, which the
	// profile's own check lets through): refused before the OS is touched.
	tokyo := os.calledWith("SetTimezone Asia/Tokyo")
	err = s.applyProfile(ctx, profile(`{"timezone":"Asia/Tokyo","calendar":{"url":"http://cal.example/room.ics","username":"room","password":"pw"}}`))
	if err == nil || !strings.Contains(err.Error(), "clear text") {
		t.Fatalf("settings refused: %v", err)
	}
	if _, tm = os.state(); tm.Timezone != "Europe/Berlin" || os.calledWith("SetTimezone Asia/Tokyo") != tokyo {
		t.Fatalf("the OS was changed for a refused profile: %+v", tm)
	}

	// The networks: wired, then Wi-Fi, then the proxy; a refused proxy
	// undoes the other two.
	os.refuse = "SetProxyPAC"
	err = s.applyProfile(ctx, profile(`{"wired":{"method":"manual","address":"10.1.2.3/24","gateway":"10.1.2.1"},
		"wifi":{"ssid":"Lab","psk":"correct horse"},"proxyPac":"http://wpad.example/proxy.pac"}`))
	if err == nil || !strings.Contains(err.Error(), "proxyPac") {
		t.Fatalf("refused proxy: %v", err)
	}
	os.mu.Lock()
	wifi, wired := os.wifi, os.wired
	os.mu.Unlock()
	if wifi != nil || wired.Method != "auto" || wired.Address != "" {
		t.Fatalf("networks not undone: %+v %+v", wifi, wired)
	}
	os.refuse = ""
	err = s.applyProfile(ctx, profile(`{"wired":{"method":"auto"},"wifi":{"ssid":"Lab","psk":"correct horse"},"proxyPac":""}`))
	if err != nil {
		t.Fatal(err)
	}
	os.mu.Lock()
	wifi, wired = os.wifi, os.wired
	os.mu.Unlock()
	if wifi == nil || wifi.SSID != "Lab" || wifi.PSK != "correct horse" || wired.Method != "auto" {
		t.Fatalf("networks: %+v %+v", wifi, wired)
	}

	// A profile without the room name gives the room its own name back;
	// the host name stays as the fleet set it.
	if err := s.applyProfile(ctx, profile(`{"display":{"sleep":false}}`)); err != nil {
		t.Fatal(err)
	}
	if s.roomName() != localName || strings.Join(s.Overlay.Get().Managed, ",") != "display" {
		t.Fatalf("after the fleet let go: %q %v", s.roomName(), s.Overlay.Get().Managed)
	}
}

func TestApplyProfileWithoutSystemBus(t *testing.T) {
	// A bus address where nothing listens: a machine without a system bus.
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+t.TempDir()+"/no-bus")
	r, _ := startFleet(t, nil)
	if r.sys.OS != nil {
		t.Fatal("connected to a system bus that does not exist")
	}
	p, _ := fleetapi.DecodeProfile([]byte(`{"timezone":"Europe/Berlin"}`))
	if err := r.sys.applyProfile(context.Background(), p); err == nil || !strings.Contains(err.Error(), "no time service or network manager") {
		t.Fatalf("time zone without a system bus: %v", err)
	}
	// The room name alone still applies (the host name is left).
	p, _ = fleetapi.DecodeProfile([]byte(`{"roomName":"Lab 9"}`))
	if err := r.sys.applyProfile(context.Background(), p); err != nil || r.sys.roomName() != "Lab 9" {
		t.Fatalf("room name without a system bus: %v %q", err, r.sys.roomName())
	}
}

func TestFleetHealthFollowsTheCalendar(t *testing.T) {
	r, _ := startFleet(t, &fakeOS{})
	if err := r.sys.fleetHealthy(context.Background()); err != nil {
		t.Fatalf("healthy room: %v", err)
	}
	// A calendar the room cannot fetch makes it unhealthy: the agent rolls
	// such a profile back.
	p, _ := fleetapi.DecodeProfile([]byte(`{"calendar":{"url":"https://127.0.0.1:1/room.ics"}}`))
	if err := r.sys.applyProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the calendar failing", func() bool { return r.sys.fleetHealthy(context.Background()) != nil })
	err := r.sys.fleetHealthy(context.Background())
	if !strings.Contains(err.Error(), "calendar") {
		t.Fatalf("unhealthy for %v", err)
	}
	inv, health, meeting, _ := r.sys.fleetReport()
	if health.Status != fleetapi.HealthDegraded || inv.Versions["roomd"] != "test" || meeting.State != "idle" || len(inv.Devices) != 3 {
		t.Fatalf("report: %+v %+v %+v", inv, health, meeting)
	}
}

func TestCollectLogsIsBounded(t *testing.T) {
	r, recent := startFleet(t, &fakeOS{})
	log := slog.New(recent.Handler(slog.LevelInfo))
	for i := range 5000 {
		log.Info("filler line for the log bundle", "n", i, "noise", strings.Repeat("x", i%97))
	}
	start := time.Now().Add(-time.Hour)
	big, err := r.sys.collectLogs(context.Background(), start, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, big)
	if !strings.Contains(files["atrium-logs/roomd.log"], "n=4999") || !strings.Contains(files["atrium-logs/status.json"], `"room"`) ||
		files["atrium-logs/settings.json"] == "" || files["atrium-logs/fleet.json"] == "" {
		t.Fatalf("bundle holds %d files; log %d bytes", len(files), len(files["atrium-logs/roomd.log"]))
	}
	small, err := r.sys.collectLogs(context.Background(), start, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(small) > 8<<10 {
		t.Fatalf("bundle of %d bytes over the 8 KiB asked", len(small))
	}
	files = untar(t, small)
	if log := files["atrium-logs/roomd.log"]; !strings.Contains(log, "n=4999") || strings.Contains(log, "n=0 ") {
		t.Fatalf("a small bundle must keep the newest lines: %d bytes", len(log))
	}
	if _, err := r.sys.collectLogs(context.Background(), start, 100); err == nil {
		t.Fatal("a 100-byte bundle cannot hold the status; want an error")
	}
}

func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func configFleet(server, code string) config.Fleet {
	f := config.Default().Fleet
	f.Server, f.ActivationCode = server, code
	return f
}

// A meeting holds login1's inhibitor lock from joining to leaving.
func TestMeetingHoldsTheInhibitorLock(t *testing.T) {
	os := &fakeOS{}
	r, _ := startFleet(t, os)
	// A Janus that takes the connection and never answers keeps the room
	// joining until it leaves.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	joined := make(chan error, 1)
	go func() {
		_, err := r.sys.Join(context.Background(), "janus+ws://"+silent.Addr().String()+"/?room=1")
		joined <- err
	}()
	eventually(t, "the lock taken", func() bool { return os.calledWith("Inhibit Atrium: a meeting") == 1 })
	if err := r.sys.rebootRoom(context.Background()); err == nil || !strings.Contains(err.Error(), "meeting") {
		t.Errorf("reboot in a meeting: %v", err)
	}
	if _, err := r.sys.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-joined
	eventually(t, "the lock released", func() bool { return os.calledWith("Release") == 1 })
	if err := r.sys.rebootRoom(context.Background()); err != nil || os.calledWith("Reboot") != 1 {
		t.Errorf("reboot after the meeting: %v", err)
	}
}

// A sandbox hiding /proc/cmdline is said in the log: the factory image's
// fleet settings live there.
func TestHiddenKernelCommandLineIsLogged(t *testing.T) {
	logs := &syncbuf.Buffer{}
	r := startWith(t, testConfig(t), Deps{Logger: slog.New(slog.NewTextHandler(logs, nil)), Version: "test", Root: fstest.MapFS{}})
	defer r.stop(t)
	if !strings.Contains(logs.String(), "kernel command line unreadable") {
		t.Fatalf("no warning about /proc/cmdline in:\n%s", logs)
	}
}

// A fleet that cannot be set up (here: no machine ID to identify the
// device) leaves the room working, and its status says why.
func TestRoomRunsWhenItsFleetCannotBeSetUp(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fleet.Server, cfg.Fleet.Identity = "https://fleet.example:8443", "file"
	r := startWith(t, cfg, Deps{Logger: slog.New(slog.DiscardHandler), Version: "test",
		Root: fstest.MapFS{"proc/cmdline": {Data: []byte("quiet\n")}}})
	defer r.stop(t)
	st := r.sys.FleetStatus()
	if !st.Managed || st.Enrolled || !strings.Contains(st.LastError, "machine") {
		t.Fatalf("status %+v", st)
	}
	_, err := r.sys.FleetEnroll(context.Background(), apiv1.FleetEnrollRequest{Code: "ABCD"})
	var fe *api.FleetError
	if !errors.As(err, &fe) || !strings.Contains(fe.Detail, "unavailable") {
		t.Fatalf("enroll: %v", err)
	}
}
