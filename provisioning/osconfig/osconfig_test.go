package osconfig

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestConnectivity(t *testing.T) {
	o, _ := setup(t)
	c, err := o.Connectivity(testContext(t))
	if err != nil || c != ConnectivityFull || c.String() != "full" {
		t.Fatalf("Connectivity = %v, %v; want full", c, err)
	}
}

// A service that is not on the bus is reported with the bus's error.
func TestServiceMissing(t *testing.T) {
	checkLeaks(t)
	o := openOS(t, startBus(t))
	ctx := testContext(t)
	_, err := o.SetTimezone(ctx, "Europe/Paris")
	if se, ok := serviceErrorOf(err); !ok || se.Name != "org.freedesktop.DBus.Error.ServiceUnknown" {
		t.Errorf("SetTimezone with no timedated = %v, want ServiceUnknown", err)
	}
	if err := o.RestartUnit(ctx, "roomd.service"); err == nil {
		t.Error("RestartUnit with no systemd succeeded")
	}
}

// Open with no options uses the system bus, which DBUS_SYSTEM_BUS_ADDRESS
// redirects.
func TestOpenSystemBusFromEnvironment(t *testing.T) {
	checkLeaks(t)
	addr := startBus(t)
	newFakeOS(t, connect(t, addr))
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	o, err := Open(testContext(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer o.Close()
	if h, err := o.Hostname(testContext(t)); err != nil || h.Static != "localhost" {
		t.Errorf("Hostname = %+v, %v", h, err)
	}
}

// A bus that never answers the authentication does not hang Open past its
// context: a listening socket nobody accepts on takes the connection and
// says nothing.
func TestOpenHonoursContext(t *testing.T) {
	checkLeaks(t)
	dir, err := os.MkdirTemp("", "osconfig")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "mute")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	o, err := Open(ctx, WithAddress("unix:path="+sock))
	if !errors.Is(err, context.DeadlineExceeded) {
		if o != nil {
			o.Close()
		}
		t.Fatalf("Open on a mute bus = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open returned after %v", d)
	}

	cancelled, cancel2 := context.WithCancel(testContext(t))
	cancel2()
	if _, err := Open(cancelled, WithAddress("unix:path="+sock)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
}

// One OS serves concurrent callers (run under -race). Each setting has one
// writer here: two writers of one setting race in the service itself, and
// the loser's read-back rightly says ErrNotApplied.
func TestConcurrentUse(t *testing.T) {
	o, _ := setup(t)
	ctx := testContext(t)
	ops := []func() error{
		func() error { _, err := o.SetTimezone(ctx, "Europe/Paris"); return err },
		func() error { _, err := o.SetRoomName(ctx, "Atelier"); return err },
		func() error { _, err := o.SetNTP(ctx, true); return err },
		func() error { _, err := o.Connectivity(ctx); return err },
		func() error { return o.RestartUnit(ctx, "roomd.service") },
	}
	errs := make(chan error, 3*len(ops))
	var wg sync.WaitGroup
	for range 3 {
		for _, op := range ops {
			wg.Go(func() { errs <- op() })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got, err := o.Time(ctx); err != nil || got.Timezone != "Europe/Paris" || !got.NTP {
		t.Errorf("Time after concurrent sets = %+v, %v", got, err)
	}
}
