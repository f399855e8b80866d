package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/client"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/test/syncbuf"
)

// calendarFile writes a calendar with one meeting tomorrow.
func calendarFile(t *testing.T, dir, name, title string) string {
	t.Helper()
	start := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Hour)
	f := func(t time.Time) string { return t.Format("20060102T150405Z") }
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:" + name + "\r\nDTSTART:" + f(start) +
		"\r\nDTEND:" + f(start.Add(time.Hour)) + "\r\nSUMMARY:" + title + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(ics), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func agendaTitles(a apiv1.Agenda) []string {
	var out []string
	for _, m := range a.Meetings {
		out = append(out, m.Title)
	}
	return out
}

// eventLog keeps the events of one stream.
type eventLog struct {
	mu  sync.Mutex
	evs []apiv1.Event
}

func (l *eventLog) add(ev apiv1.Event) error {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
	return nil
}
func (l *eventLog) find(typ apiv1.EventType, contains string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs {
		if ev.Type == typ && strings.Contains(string(ev.Data), contains) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminSettingsApplyLive(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Dir(cfg.Daemon.StateDir)
	cfg.Calendar.File = calendarFile(t, dir, "alpha.ics", "Alpha review")
	cfg.Calendar.Refresh = config.Duration{Duration: time.Second}
	cfg.API.Listen = []string{freeAddr(t)}
	logs := &syncbuf.Buffer{}
	r := startWithLogger(t, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { r.stop(t) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sock := client.NewUnix(cfg.API.Socket)
	defer sock.Close()
	kiosk := client.NewHTTP("http://"+cfg.API.Listen[0], "")
	defer kiosk.Close()

	eventually(t, "the first calendar", func() bool { return slices.Contains(agendaTitles(r.sys.Calendar()), "Alpha review") })

	// The kiosk cannot get in before a PIN is set on the device.
	if _, err := kiosk.AdminLogin(ctx, "2468"); problemStatus(err) != 409 {
		t.Fatalf("kiosk login without a PIN: %v", err)
	}
	if err := sock.SetAdminPIN(ctx, "", "2468"); err != nil {
		t.Fatal(err)
	}
	if _, err := kiosk.Settings(ctx); problemStatus(err) != 401 {
		t.Fatalf("kiosk settings without a session: %v", err)
	}
	sess, err := kiosk.AdminLogin(ctx, "2468")
	if err != nil {
		t.Fatal(err)
	}
	admin := kiosk.WithAdmin(sess.Token)
	cur, err := admin.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur.RoomName != "Meeting Room" || cur.Calendar.File != cfg.Calendar.File || cur.Version != 0 {
		t.Fatalf("settings at start: %+v", cur)
	}

	streamCtx, streamCancel := context.WithCancel(ctx)
	defer streamCancel()
	events := &eventLog{}
	streamDone := make(chan struct{})
	go func() { defer close(streamDone); _ = sock.Events(streamCtx, events.add) }()
	defer func() { streamCancel(); <-streamDone }()
	eventually(t, "the event stream", func() bool { return events.find(apiv1.EventStatus, `"room":"Meeting Room"`) })

	// One change: room name, calendar file, a pinned camera.
	cur.RoomName = "Boardroom"
	cur.Calendar.File = calendarFile(t, dir, "beta.ics", "Beta planning")
	cur.Devices.Camera = "usb-0000:0000-gone"
	got, err := admin.PutSettings(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.RoomName != "Boardroom" {
		t.Fatalf("after put: %+v", got)
	}

	// The room name is in the status and in a status event.
	if st, err := sock.Status(ctx); err != nil || st.Room != "Boardroom" {
		t.Fatalf("status after the change: %+v %v", st.Room, err)
	}
	eventually(t, "a status event with the new name", func() bool { return events.find(apiv1.EventStatus, `"room":"Boardroom"`) })
	eventually(t, "settings.changed", func() bool { return events.find(apiv1.EventSettingsChanged, `{"version":1}`) })

	// The agenda reads the new file.
	eventually(t, "the new calendar", func() bool {
		titles := agendaTitles(r.sys.Calendar())
		return slices.Contains(titles, "Beta planning") && !slices.Contains(titles, "Alpha review")
	})

	// The device choice uses the new pin: the pinned camera is missing, so
	// devsel says so and picks another.
	if c := r.sys.selector().Choose().Camera; c == nil {
		t.Fatal("no camera chosen")
	}
	if !strings.Contains(logs.String(), "pinned=usb-0000:0000-gone") {
		t.Fatalf("the device choice did not use the new pin; log:\n%s", logs)
	}

	// A stale version is refused.
	cur.RoomName = "Other"
	if _, err := admin.PutSettings(ctx, cur); problemStatus(err) != 409 {
		t.Fatalf("stale put: %v", err)
	}
	if d, err := kiosk.WakeDisplay(ctx); err != nil || d.State != apiv1.DisplayAwake {
		t.Fatalf("display wake: %+v %v", d, err)
	}

	// A restart starts from the stored settings.
	streamCancel()
	<-streamDone
	r.stop(t)
	r = startWithLogger(t, cfg, slog.New(slog.DiscardHandler))
	if st, err := sock.Status(ctx); err != nil || st.Room != "Boardroom" {
		t.Fatalf("status after restart: %+v %v", st.Room, err)
	}
	if _, err := kiosk.AdminLogin(ctx, "1111"); problemStatus(err) != 401 {
		t.Fatalf("wrong PIN after restart: %v", err)
	}
	if st, err := kiosk.AdminState(ctx); err != nil || !st.PINSet || st.AttemptsLeft != 4 {
		t.Fatalf("admin state after restart: %+v %v", st, err)
	}
}

func problemStatus(err error) int {
	var p *apiv1.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startWithLogger is start with the daemon's log kept.
func startWithLogger(t *testing.T, cfg *config.Config, log *slog.Logger) *running {
	t.Helper()
	return startWith(t, cfg, Deps{Logger: log, Version: "test", PINCost: 1 << 4})
}
