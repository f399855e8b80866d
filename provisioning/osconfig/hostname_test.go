package osconfig

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestHostLabel(t *testing.T) {
	long := strings.Repeat("Conference ", 8) // 88 bytes
	for _, tc := range []struct{ room, want string }{
		{"Boardroom 3 (North)", "boardroom-3-north"},
		{"  Salle Économie  ", "salle-economie"},
		{"Straße 5", "strasse-5"},
		{"Alice's Room", "alices-room"},
		{"Sala Ærø—Øst", "sala-aero-ost"},
		{"---A---", "a"},
		{"Room-1", "room-1"},
		{"会议室 7", "7"},
		{long, "conference-conference-conference-conference-conference-conferen"},
		{strings.Repeat("a", 62) + " b", strings.Repeat("a", 62)},
	} {
		got, err := HostLabel(tc.room)
		if err != nil || got != tc.want {
			t.Errorf("HostLabel(%q) = %q, %v; want %q", tc.room, got, err, tc.want)
			continue
		}
		if err := checkHostname(got); err != nil || len(got) > 63 {
			t.Errorf("HostLabel(%q) = %q is not a valid host label: %v", tc.room, got, err)
		}
	}
	for _, room := range []string{"", "   ", "会议室", "(--)", "a\tb", "a\nb", "\xff"} {
		if got, err := HostLabel(room); !errors.Is(err, ErrInvalidRoomName) {
			t.Errorf("HostLabel(%q) = %q, %v; want ErrInvalidRoomName", room, got, err)
		}
	}
}

func TestSetRoomName(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	got, err := o.SetRoomName(ctx, " Boardroom 3 (North) ")
	if err != nil {
		t.Fatalf("SetRoomName: %v", err)
	}
	want := Hostname{Static: "boardroom-3-north", Pretty: "Boardroom 3 (North)", Transient: "localhost"}
	if got != want {
		t.Errorf("SetRoomName read back %+v, want %+v", got, want)
	}
	if got, err := o.Hostname(ctx); err != nil || got != want {
		t.Errorf("Hostname = %+v, %v; want %+v", got, err, want)
	}
	wantCalls := "SetStaticHostname boardroom-3-north false\nSetPrettyHostname Boardroom 3 (North) false"
	if f.String() != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", f, wantCalls)
	}
}

func TestSetRoomNameStaticRefused(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	f.do(func(f *fakeOS) { f.refuse["SetStaticHostname"] = errAccessDenied })
	_, err := o.SetRoomName(ctx, "Boardroom 3 (North)")
	want := `hostname1: set static hostname "boardroom-3-north": org.freedesktop.DBus.Error.AccessDenied: Permission denied`
	if err == nil || err.Error() != want {
		t.Fatalf("SetRoomName error = %v, want %s", err, want)
	}
	if se, ok := serviceErrorOf(err); !ok || se.Name != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Errorf("error %v carries no ServiceError AccessDenied", err)
	}
	if got, _ := o.Hostname(ctx); got != (Hostname{Static: "localhost", Transient: "localhost"}) {
		t.Errorf("after refusal the names are %+v, want the previous ones", got)
	}
	if f.String() != "SetStaticHostname boardroom-3-north false" {
		t.Errorf("calls:\n%s", f)
	}
}

func TestSetRoomNamePrettyRefusedRestoresStatic(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	f.do(func(f *fakeOS) { f.refuse["SetPrettyHostname"] = errAccessDenied })
	_, err := o.SetRoomName(ctx, "Atelier")
	if se, ok := serviceErrorOf(err); !ok || se.Name != "org.freedesktop.DBus.Error.AccessDenied" ||
		!strings.HasPrefix(err.Error(), `hostname1: set pretty hostname "Atelier": `) {
		t.Fatalf("SetRoomName error = %v, want the pretty name's refusal", err)
	}
	if got, _ := o.Hostname(ctx); got != (Hostname{Static: "localhost", Transient: "localhost"}) {
		t.Errorf("after refusal the names are %+v, want the previous ones", got)
	}
	wantCalls := "SetStaticHostname atelier false\nSetPrettyHostname Atelier false\nSetStaticHostname localhost false"
	if f.String() != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", f, wantCalls)
	}
}

func TestSetRoomNameNotApplied(t *testing.T) {
	o, f := setup(t)
	f.do(func(f *fakeOS) { f.ignore["SetStaticHostname"] = true })
	got, err := o.SetRoomName(testContext(t), "Atelier")
	if !errors.Is(err, ErrNotApplied) {
		t.Fatalf("SetRoomName error = %v, want ErrNotApplied", err)
	}
	if got.Static != "localhost" || got.Pretty != "Atelier" {
		t.Errorf("read back %+v", got)
	}
}

func TestBadHostnamesRejectedBeforeAnyCall(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	for _, room := range []string{"", "  ", "会议室", "a\x00b"} {
		if _, err := o.SetRoomName(ctx, room); !errors.Is(err, ErrInvalidRoomName) {
			t.Errorf("SetRoomName(%q) = %v, want ErrInvalidRoomName", room, err)
		}
	}
	for _, name := range []string{"", "-a", "a-", "a..b", "a_b", "Ä", strings.Repeat("a", 64), strings.Repeat("a.", 32) + "a"} {
		if err := o.SetStaticHostname(ctx, name); !errors.Is(err, ErrInvalidHostname) {
			t.Errorf("SetStaticHostname(%q) = %v, want ErrInvalidHostname", name, err)
		}
	}
	if f.String() != "" {
		t.Errorf("calls made:\n%s", f)
	}
	if err := o.SetStaticHostname(ctx, "room-1.example.org"); err != nil {
		t.Errorf("SetStaticHostname of a valid name: %v", err)
	}
}

// Each change the service accepted is logged; a refused one is not.
func TestChangesAreLogged(t *testing.T) {
	checkLeaks(t)
	addr := startBus(t)
	f := newFakeOS(t, connect(t, addr))
	var log syncBuffer
	o, err := Open(testContext(t), WithAddress(addr), WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := testContext(t)
	if _, err := o.SetRoomName(ctx, "Atelier"); err != nil {
		t.Fatal(err)
	}
	f.do(func(f *fakeOS) { f.refuse["SetTimezone"] = errAccessDenied })
	if _, err := o.SetTimezone(ctx, "Europe/Paris"); err == nil {
		t.Fatal("refused SetTimezone succeeded")
	}
	got := log.String()
	for _, want := range []string{`msg="static hostname set" hostname=atelier`, `msg="pretty hostname set" pretty=Atelier`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "time zone set") {
		t.Errorf("a refused change was logged:\n%s", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
