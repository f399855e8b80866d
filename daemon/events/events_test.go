package events

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait in these tests.
const timeout = 5 * time.Second

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))

func newBus() *Bus {
	return New(slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return epoch })
}

// recv reads one event or fails after timeout.
func recv(t *testing.T, ch <-chan apiv1.Event) (apiv1.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(timeout):
		t.Fatal("timed out waiting for an event")
		return apiv1.Event{}, false
	}
}

// waitClosed reads ch until it closes, returning how many events it held.
func waitClosed(t *testing.T, ch <-chan apiv1.Event) int {
	t.Helper()
	n := 0
	for {
		if _, ok := recv(t, ch); !ok {
			return n
		}
		n++
	}
}

func TestPublishOrderAndSeq(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBus()
	if b.Seq() != 0 {
		t.Fatalf("new bus Seq = %d, want 0", b.Seq())
	}
	ch := b.Subscribe(ctx)
	types := []apiv1.EventType{apiv1.EventMeetingState, apiv1.EventDeviceAdded, apiv1.EventDeviceRemoved, apiv1.EventDeviceChanged}
	for i, typ := range types {
		if err := b.Publish(typ, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Seq() != uint64(len(types)) {
		t.Errorf("Seq = %d, want %d", b.Seq(), len(types))
	}
	for i, typ := range types {
		ev, ok := recv(t, ch)
		if !ok {
			t.Fatal("channel closed early")
		}
		if ev.Seq != uint64(i+1) || ev.Type != typ {
			t.Errorf("event %d = seq %d type %s, want seq %d type %s", i, ev.Seq, ev.Type, i+1, typ)
		}
		if !ev.Time.Equal(epoch) || ev.Time.Location() != time.UTC {
			t.Errorf("event time = %v, want %v in UTC", ev.Time, epoch)
		}
		var data struct{ N int }
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.N != i {
			t.Errorf("event data = %s (%v), want n=%d", ev.Data, err, i)
		}
	}
}

func TestSubscribeSeesOnlyLaterEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBus()
	_ = b.Publish(apiv1.EventStatus, 1)
	ch := b.Subscribe(ctx)
	_ = b.Publish(apiv1.EventStatus, 2)
	if ev, _ := recv(t, ch); ev.Seq != 2 {
		t.Errorf("first event seen has seq %d, want 2", ev.Seq)
	}
}

func TestPublishBadData(t *testing.T) {
	b := newBus()
	if err := b.Publish(apiv1.EventStatus, make(chan int)); err == nil {
		t.Error("Publish of unmarshallable data did not fail")
	}
	if b.Seq() != 0 {
		t.Errorf("a failed Publish used a sequence number: Seq = %d", b.Seq())
	}
}

func TestSeveralSubscribers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBus()
	subs := []<-chan apiv1.Event{b.Subscribe(ctx), b.Subscribe(ctx), b.Subscribe(ctx)}
	const n = 10
	for i := range n {
		if err := b.Publish(apiv1.EventDeviceChanged, i); err != nil {
			t.Fatal(err)
		}
	}
	for s, ch := range subs {
		for i := range n {
			ev, ok := recv(t, ch)
			if !ok || ev.Seq != uint64(i+1) {
				t.Fatalf("subscriber %d event %d: seq %d ok %v, want seq %d", s, i, ev.Seq, ok, i+1)
			}
		}
	}
}

func TestSlowSubscriberIsCutOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBus()
	slow := b.Subscribe(ctx)
	fast := b.Subscribe(ctx)

	// fast reads everything, in order, while slow reads nothing.
	const total = SubscriberBuffer + 10
	fastDone := make(chan int)
	go func() {
		n := 0
		for ev := range fast {
			n++
			if ev.Seq != uint64(n) {
				break
			}
			if n == total {
				break
			}
		}
		fastDone <- n
	}()
	for i := range total {
		if err := b.Publish(apiv1.EventDeviceChanged, i); err != nil {
			t.Fatal(err)
		}
		// Keep fast from lagging a full buffer behind, so only slow is cut off.
		if i%64 == 63 {
			for len(fast) > 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	select {
	case n := <-fastDone:
		if n != total {
			t.Errorf("fast subscriber got %d events in order, want %d", n, total)
		}
	case <-time.After(timeout):
		t.Fatal("fast subscriber did not receive every event")
	}

	// slow holds exactly the buffered events, in order, then is closed.
	for i := range SubscriberBuffer {
		ev, ok := recv(t, slow)
		if !ok || ev.Seq != uint64(i+1) {
			t.Fatalf("slow event %d: seq %d ok %v, want seq %d", i, ev.Seq, ok, i+1)
		}
	}
	if ev, ok := recv(t, slow); ok {
		t.Fatalf("slow subscriber was not cut off: got seq %d", ev.Seq)
	}
	// Publishing after the cut-off must not panic on the closed channel.
	if err := b.Publish(apiv1.EventDeviceChanged, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeClosesWithContext(t *testing.T) {
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	ch := b.Subscribe(ctx)
	keep := b.Subscribe(other)
	_ = b.Publish(apiv1.EventStatus, 1)
	cancel()
	// The buffered event is still delivered, then the channel closes.
	if n := waitClosed(t, ch); n > 1 {
		t.Errorf("got %d events after cancel, want at most the 1 buffered", n)
	}
	// The other subscriber is unaffected.
	_ = b.Publish(apiv1.EventStatus, 2)
	for want := uint64(1); want <= 2; want++ {
		if ev, ok := recv(t, keep); !ok || ev.Seq != want {
			t.Errorf("remaining subscriber: seq %d ok %v, want %d", ev.Seq, ok, want)
		}
	}
	b.mu.Lock()
	n := len(b.subs)
	b.mu.Unlock()
	if n != 1 {
		t.Errorf("bus has %d subscribers after one cancelled, want 1", n)
	}
}

func TestSubscribeWithDoneContext(t *testing.T) {
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waitClosed(t, b.Subscribe(ctx))
}

func TestCancelAfterCutOff(t *testing.T) {
	// A cut-off subscriber whose ctx then ends must not be closed twice.
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	ch := b.Subscribe(ctx)
	for i := range SubscriberBuffer + 1 {
		_ = b.Publish(apiv1.EventStatus, i)
	}
	cancel()
	if n := waitClosed(t, ch); n != SubscriberBuffer {
		t.Errorf("cut-off subscriber held %d events, want %d", n, SubscriberBuffer)
	}
	// Give the AfterFunc a chance to run (it would panic on a double close).
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(done) })
	defer stop()
	<-done
	time.Sleep(10 * time.Millisecond)
}

func TestConcurrentPublishers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBus()
	ch := b.Subscribe(ctx)
	const publishers, each = 4, 50
	done := make(chan struct{})
	for range publishers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				_ = b.Publish(apiv1.EventStatus, i)
			}
		}()
	}
	for range publishers {
		select {
		case <-done:
		case <-time.After(timeout):
			t.Fatal("publishers did not finish")
		}
	}
	for want := uint64(1); want <= publishers*each; want++ {
		if ev, ok := recv(t, ch); !ok || ev.Seq != want {
			t.Fatalf("seq %d ok %v, want %d: sequence numbers are not in publish order", ev.Seq, ok, want)
		}
	}
}
