package netwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/test/netns"
)

// TestNetlinkSource changes the namespace's real interfaces (see TestMain)
// and checks the kernel's notifications come out as events.
func TestNetlinkSource(t *testing.T) {
	if !netns.Inside() {
		t.Fatal("not in the test network namespace")
	}
	defer goleak.VerifyNone(t)
	src, err := NewNetlinkSource()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// expect reads events until want arrives or 2 s pass.
	expect := func(want Event) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		var seen []Event
		for {
			e, err := src.Next(ctx)
			if err != nil {
				t.Fatalf("no %+v within 2s (%v); saw %+v", want, err, seen)
			}
			if e == want {
				if len(seen) > 0 {
					t.Logf("before %+v: %+v", want, seen)
				}
				return
			}
			if e.Kind == KindAddrAdded && e.Addr == netns.Addr+"/24" {
				t.Errorf("the address present at start was reported: %+v", e)
			}
			seen = append(seen, e)
		}
	}

	// Put the namespace back as netns made it, for -count and later tests.
	t.Cleanup(func() {
		_ = exec.Command("ip", "route", "del", "default").Run()
		_ = exec.Command("ip", "addr", "del", "10.231.0.9/24", "dev", netns.Interface).Run()
		_ = exec.Command("ip", "link", "set", netns.Interface+"p", "up").Run()
	})

	// The interfaces set up by netns are the present, not changes.
	ip("addr", "add", "10.231.0.9/24", "dev", netns.Interface)
	expect(Event{Kind: KindAddrAdded, Interface: netns.Interface, Addr: "10.231.0.9/24"})
	ip("route", "add", "default", "via", "10.231.0.254", "dev", netns.Interface)
	expect(Event{Kind: KindRouteChanged, Interface: netns.Interface, Addr: "10.231.0.254"})
	ip("link", "set", netns.Interface+"p", "down")
	expect(Event{Kind: KindLinkDown, Interface: netns.Interface + "p"})
	// The peer going down takes atrium0's carrier (IFF_RUNNING).
	expect(Event{Kind: KindLinkDown, Interface: netns.Interface})
	ip("link", "set", netns.Interface+"p", "up")
	expect(Event{Kind: KindLinkUp, Interface: netns.Interface})
	ip("route", "del", "default")
	expect(Event{Kind: KindRouteChanged, Interface: netns.Interface, Addr: "10.231.0.254"})
	ip("addr", "del", "10.231.0.9/24", "dev", netns.Interface)
	expect(Event{Kind: KindAddrRemoved, Interface: netns.Interface, Addr: "10.231.0.9/24"})
}

// TestWatcherNetlink runs a Watcher on the real source, as roomd does.
func TestWatcherNetlink(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, err := NewNetlinkSource()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := New(src, slog.New(slog.NewTextHandler(io.Discard, nil)), 100*time.Millisecond, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	changes := make(chan Event, 4)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(e Event) { changes <- e }) }()
	if out, err := exec.Command("ip", "addr", "add", "10.231.0.10/24", "dev", netns.Interface).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	defer exec.Command("ip", "addr", "del", "10.231.0.10/24", "dev", netns.Interface).Run()
	select {
	case e := <-changes:
		if want := (Event{Kind: KindAddrAdded, Interface: netns.Interface, Addr: "10.231.0.10/24"}); e != want {
			t.Errorf("change = %+v, want %+v", e, want)
		}
	case <-ctx.Done():
		t.Error("no change within 2s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestNetlinkSourceContext checks Next gives up when its context ends and
// after Close.
func TestNetlinkSourceContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	src, err := NewNetlinkSource()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := src.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next = %v, want deadline exceeded", err)
	}
	// A later call is not hurt by the earlier deadline.
	ctx2, cancel2 := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := src.Next(ctx2); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel2()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Next = %v, want canceled", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(t.Context()); err == nil {
		t.Error("Next after Close succeeded")
	}
}
