package osconfig

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSetTimezone(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	got, err := o.SetTimezone(ctx, "Europe/Paris")
	if err != nil {
		t.Fatalf("SetTimezone: %v", err)
	}
	want := TimeSettings{Timezone: "Europe/Paris", CanNTP: true}
	if got != want {
		t.Errorf("SetTimezone read back %+v, want %+v", got, want)
	}
	if f.String() != "SetTimezone Europe/Paris false" {
		t.Errorf("calls:\n%s", f)
	}
}

func TestSetTimezoneRefused(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	f.do(func(f *fakeOS) { f.refuse["SetTimezone"] = errInvalidArgs })
	_, err := o.SetTimezone(ctx, "America/New_York")
	want := `timedate1: set time zone "America/New_York": org.freedesktop.DBus.Error.InvalidArgs: Invalid time zone 'x'`
	if err == nil || err.Error() != want {
		t.Fatalf("SetTimezone error = %v, want %s", err, want)
	}
	if se, ok := serviceErrorOf(err); !ok || se.Name != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("error %v carries no ServiceError InvalidArgs", err)
	}
	if got, err := o.Time(ctx); err != nil || got.Timezone != "Etc/UTC" {
		t.Errorf("after refusal Time = %+v, %v; want the previous zone Etc/UTC", got, err)
	}
}

func TestBadTimezoneRejectedBeforeAnyCall(t *testing.T) {
	o, f := setup(t)
	for _, tz := range []string{"", "Local", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/Paris "} {
		if _, err := o.SetTimezone(testContext(t), tz); !errors.Is(err, ErrInvalidTimezone) {
			t.Errorf("SetTimezone(%q) = %v, want ErrInvalidTimezone", tz, err)
		}
	}
	if f.String() != "" {
		t.Errorf("calls made:\n%s", f)
	}
}

func TestSetTimezoneTimeout(t *testing.T) {
	o, f := setup(t)
	f.do(func(f *fakeOS) { f.stall["SetTimezone"] = true })
	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := o.SetTimezone(ctx, "Asia/Tokyo")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), `timedate1: set time zone "Asia/Tokyo": `) {
		t.Fatalf("SetTimezone error = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SetTimezone returned after %v, long after its deadline", d)
	}
}

func TestSetNTP(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	got, err := o.SetNTP(ctx, true)
	if err != nil || !got.NTP {
		t.Fatalf("SetNTP(true) = %+v, %v", got, err)
	}
	got, err = o.SetNTP(ctx, false)
	if err != nil || got.NTP {
		t.Fatalf("SetNTP(false) = %+v, %v", got, err)
	}
	f.do(func(f *fakeOS) { f.refuse["SetNTP"] = errAccessDenied })
	_, err = o.SetNTP(ctx, true)
	if se, ok := serviceErrorOf(err); !ok || se.Name != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Errorf("refused SetNTP error = %v", err)
	}
	if got, _ := o.Time(ctx); got.NTP {
		t.Errorf("NTP on after a refusal")
	}
	if want := "SetNTP true false\nSetNTP false false\nSetNTP true false"; f.String() != want {
		t.Errorf("calls:\n%s\nwant:\n%s", f, want)
	}
}
