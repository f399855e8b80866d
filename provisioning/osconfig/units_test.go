package osconfig

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRestartUnit(t *testing.T) {
	o, f := setup(t)
	ctx := testContext(t)
	if err := o.RestartUnit(ctx, "roomd.service"); err != nil {
		t.Fatalf("RestartUnit: %v", err)
	}
	f.do(func(f *fakeOS) { f.results["janus.service"] = "failed" })
	err := o.RestartUnit(ctx, "janus.service")
	if !errors.Is(err, ErrJobFailed) || !strings.Contains(err.Error(), `result "failed"`) {
		t.Errorf("RestartUnit of a failing unit = %v, want ErrJobFailed with the result", err)
	}
	f.do(func(f *fakeOS) { f.refuse["RestartUnit"] = errNoSuchUnit })
	err = o.RestartUnit(ctx, "nope.service")
	want := "systemd1: restart nope.service: org.freedesktop.systemd1.NoSuchUnit: Unit nope.service not found."
	if err == nil || err.Error() != want {
		t.Errorf("RestartUnit of a missing unit = %v, want %s", err, want)
	}
	if want := "RestartUnit roomd.service replace\nRestartUnit janus.service replace\nRestartUnit nope.service replace"; f.String() != want {
		t.Errorf("calls:\n%s\nwant:\n%s", f, want)
	}
}

func TestRestartUnitTimeout(t *testing.T) {
	o, f := setup(t)
	f.do(func(f *fakeOS) { f.hold["slow.service"] = true })
	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	err := o.RestartUnit(ctx, "slow.service")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the job") {
		t.Fatalf("RestartUnit of a held job = %v, want the deadline while waiting", err)
	}
	// The call itself honours the deadline too.
	f.do(func(f *fakeOS) { f.stall["RestartUnit"] = true })
	ctx2, cancel2 := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel2()
	if err := o.RestartUnit(ctx2, "roomd.service"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RestartUnit of a stalled manager = %v, want the deadline", err)
	}
}

func TestBadUnitRejectedBeforeAnyCall(t *testing.T) {
	o, f := setup(t)
	for _, unit := range []string{"", ".service", "roomd", "roomd.exe", "a b.service", "../x.service", strings.Repeat("a", 250) + ".service"} {
		if err := o.RestartUnit(testContext(t), unit); !errors.Is(err, ErrInvalidUnit) {
			t.Errorf("RestartUnit(%q) = %v, want ErrInvalidUnit", unit, err)
		}
	}
	if f.String() != "" {
		t.Errorf("calls made:\n%s", f)
	}
}
