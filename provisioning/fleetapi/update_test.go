package fleetapi

import (
	"errors"
	"testing"
	"time"
)

func TestMaintenanceWindow(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		w        MaintenanceWindow
		now      string
		contains bool
		next     string
	}{
		{DefaultMaintenanceWindow(), "2026-11-21 02:00", true, "2026-11-21 02:00"},
		{DefaultMaintenanceWindow(), "2026-11-21 04:59", true, "2026-11-21 04:59"},
		{DefaultMaintenanceWindow(), "2026-11-21 05:00", false, "2026-11-22 02:00"},
		{DefaultMaintenanceWindow(), "2026-11-21 01:30", false, "2026-11-21 02:00"},
		{MaintenanceWindow{"22:00", "04:00"}, "2026-11-21 23:10", true, "2026-11-21 23:10"},
		{MaintenanceWindow{"22:00", "04:00"}, "2026-11-21 03:10", true, "2026-11-21 03:10"},
		{MaintenanceWindow{"22:00", "04:00"}, "2026-11-21 12:00", false, "2026-11-21 22:00"},
		{MaintenanceWindow{"00:00", "00:00"}, "2026-11-21 12:00", true, "2026-11-21 12:00"},
		// The night clocks go back (25 Oct 2026 in Berlin): 02:00 local
		// is still the next start.
		{DefaultMaintenanceWindow(), "2026-10-24 12:00", false, "2026-10-25 02:00"},
	}
	for _, c := range cases {
		now := at(c.now)
		if got := c.w.Contains(now); got != c.contains {
			t.Errorf("%v.Contains(%s) = %v, want %v", c.w, c.now, got, c.contains)
		}
		if got, want := c.w.Next(now), at(c.next); !got.Equal(want) {
			t.Errorf("%v.Next(%s) = %s, want %s", c.w, c.now, got, want)
		}
	}
}

func TestMaintenanceWindowInvalid(t *testing.T) {
	for _, w := range []MaintenanceWindow{{"2:00", "05:00"}, {"02:00", "24:00"}, {"", "05:00"}, {"02:00", "5pm"}} {
		err := w.Validate()
		if !errors.Is(err, ErrBadWindow) {
			t.Errorf("%v.Validate() = %v, want ErrBadWindow", w, err)
		}
		if w.Contains(time.Now()) || !w.Next(time.Now()).IsZero() {
			t.Errorf("invalid window %v contains or schedules a time", w)
		}
	}
	if err := (MaintenanceWindow{"02:00", "5pm"}).Validate(); err == nil || err.Error() != `invalid maintenance window: end "5pm" is not a 24-hour HH:MM time` {
		t.Errorf("message = %v", err)
	}
}
