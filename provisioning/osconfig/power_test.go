package osconfig

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestRebootAndPowerOff(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	if err := o.Reboot(ctx); err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	if err := o.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	f.do(func(f *fakeOS) { f.refuse["Reboot"] = errAccessDenied })
	err := o.Reboot(ctx)
	if want := "login1: reboot: org.freedesktop.DBus.Error.AccessDenied: Permission denied"; err == nil || err.Error() != want {
		t.Errorf("refused Reboot error = %v, want %s", err, want)
	}
	if want := "Reboot false\nPowerOff false\nReboot false"; f.String() != want {
		t.Errorf("calls:\n%s\nwant:\n%s", f, want)
	}
}

func TestInhibit(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	lock, err := o.Inhibit(ctx, "meeting in progress")
	if err != nil {
		t.Fatalf("Inhibit: %v", err)
	}
	got, err := o.Inhibitors(ctx)
	want := []Inhibitor{{What: "shutdown:sleep", Who: "Atrium", Why: "meeting in progress", Mode: "block",
		UID: uint32(os.Getuid()), PID: uint32(os.Getpid())}}
	if err != nil || len(got) != 1 || got[0] != want[0] {
		t.Fatalf("Inhibitors while held = %+v, %v; want %+v", got, err, want)
	}
	select {
	case why := <-f.released:
		t.Fatalf("inhibitor %q released while held", why)
	case <-time.After(50 * time.Millisecond):
	}
	if err := lock.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	select {
	case why := <-f.released:
		if why != "meeting in progress" {
			t.Errorf("released %q", why)
		}
	case <-ctx.Done():
		t.Fatal("the fake logind never saw the lock released")
	}
	if got, err := o.Inhibitors(ctx); err != nil || len(got) != 0 {
		t.Errorf("Inhibitors after Release = %+v, %v; want none", got, err)
	}
	if err := lock.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

func TestInhibitRefusedOrWithoutReason(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	if _, err := o.Inhibit(ctx, " "); !errors.Is(err, ErrNoReason) {
		t.Errorf("Inhibit without a reason = %v, want ErrNoReason", err)
	}
	if f.String() != "" {
		t.Errorf("calls made:\n%s", f)
	}
	f.do(func(f *fakeOS) { f.refuse["Inhibit"] = errAccessDenied })
	lock, err := o.Inhibit(ctx, "update")
	if se, ok := serviceErrorOf(err); lock != nil || !ok || se.Name != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Errorf("refused Inhibit = %v, %v", lock, err)
	}
}
