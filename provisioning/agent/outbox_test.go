package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// queued keys in the order they are on disk.
func outboxKeys(t *testing.T, a *Agent) []string {
	t.Helper()
	recs, err := a.outbox.peek(-1)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, q := range recs {
		keys = append(keys, q.rec.Key)
	}
	return keys
}

func TestOutboxSurvivesOutageAndRestart(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	until(t, h.clk, "the enrolled event", func() bool { return a.Status().Outbox == 0 })

	// The server goes down and asks for two minutes' patience.
	h.srv.set(func(s *fakeServer) { s.down, s.retryAfter = true, "120" })
	for i := range 5 {
		if err := a.Record(fleetapi.Event{Type: "meeting.joined", Message: fmt.Sprint("meeting ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	keys := outboxKeys(t, a)
	if len(keys) != 5 {
		t.Fatalf("outbox holds %d records, want 5", len(keys))
	}
	n := h.srv.checkInCount()
	// Fire timers until the agent has failed and waits again.
	until(t, h.clk, "a failed check-in", func() bool { return a.Status().LastError != "" })
	waitReal(t, "the retry timer", func() bool { _, ok := h.clk.pendingTimer(); return ok })
	if d, _ := h.clk.pendingTimer(); d < 120*time.Second {
		t.Errorf("retry in %v, Retry-After said 120s", d)
	}
	if st := a.Status(); !strings.Contains(st.LastError, "503") && !strings.Contains(st.LastError, "down") {
		t.Errorf("LastError %q does not say what failed", st.LastError)
	}
	if h.srv.checkInCount() != n {
		t.Error("a refused check-in was counted as stored")
	}

	// roomd restarts during the outage; the queue is on disk.
	h.stop()
	a = h.start()
	if got := outboxKeys(t, a); fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Fatalf("after restart the outbox holds %v, want %v", got, keys)
	}
	// Ten minutes of outage: the agent keeps trying, Run keeps running.
	start := h.clk.Now()
	until(t, h.clk, "ten minutes of outage", func() bool { return h.clk.Now().Sub(start) > 10*time.Minute })

	h.srv.set(func(s *fakeServer) { s.down = false })
	until(t, h.clk, "the outbox delivered", func() bool { return a.Status().Outbox == 0 })
	for _, k := range keys {
		if d := h.srv.delivered(k); d != 1 {
			t.Errorf("record %s delivered %d times, want once", k, d)
		}
	}
	evs := h.srv.events("meeting.joined")
	if len(evs) != 5 {
		t.Fatalf("history holds %d meeting events, want 5", len(evs))
	}
	for i, ev := range evs {
		if want := fmt.Sprint("meeting ", i); ev.Event.Message != want {
			t.Errorf("event %d is %q, want %q (oldest first)", i, ev.Event.Message, want)
		}
	}
	waitReal(t, "LastError cleared", func() bool { return a.Status().LastError == "" })
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	h.dialer.setCut(true)
	var waits []time.Duration
	for len(waits) < 12 {
		waitReal(t, "a timer", func() bool { _, ok := h.clk.pendingTimer(); return ok })
		d, _ := h.clk.fireNext()
		if a.Status().LastError != "" {
			waits = append(waits, d)
		}
	}
	for i, d := range waits[1:] {
		if d > MaxBackoff {
			t.Errorf("wait %d is %v, above the cap", i+1, d)
		}
	}
	if waits[len(waits)-1] < MaxBackoff/2 {
		t.Errorf("backoff did not grow: %v", waits)
	}
	if waits[2] > 40*time.Second {
		t.Errorf("backoff grew too fast: %v", waits)
	}
	h.dialer.setCut(false)
}

// The network dies after the server stored a check-in and before the
// device read the answer: the device sends the records again with the same
// keys, and the history holds each once.
func TestNetworkCutMidCheckIn(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	until(t, h.clk, "outbox empty", func() bool { return a.Status().Outbox == 0 })

	if err := a.Record(fleetapi.Event{Type: "meeting.left", Message: "bye"}); err != nil {
		t.Fatal(err)
	}
	key := outboxKeys(t, a)[0]
	cutOnce := true
	h.srv.set(func(s *fakeServer) {
		s.onCheckIn = func(ci fleetapi.CheckIn) {
			if cutOnce && len(ci.Outbox) > 0 && ci.Outbox[0].Key == key {
				cutOnce = false
				h.dialer.setCut(true)
			}
		}
	})
	until(t, h.clk, "the stored check-in", func() bool { return h.srv.delivered(key) == 1 })
	waitReal(t, "the failure", func() bool { return a.Status().LastError != "" })
	if a.Status().Outbox != 1 {
		t.Fatal("a record left the outbox without an acknowledgement")
	}
	// Minutes without network.
	start := h.clk.Now()
	until(t, h.clk, "five minutes", func() bool { return h.clk.Now().Sub(start) > 5*time.Minute })
	h.dialer.setCut(false)
	until(t, h.clk, "delivery", func() bool { return a.Status().Outbox == 0 })
	if d := h.srv.delivered(key); d != 2 {
		t.Errorf("delivered %d times, want 2 (once lost on the way back)", d)
	}
	if n := len(h.srv.events("meeting.left")); n != 1 {
		t.Errorf("history holds the event %d times", n)
	}
}

func TestCorruptOutboxEntrySkipped(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	until(t, h.clk, "outbox empty", func() bool { return a.Status().Outbox == 0 })
	h.stop()

	// A torn write (as a bad disk might leave) in front of the queue, and
	// a record without a key behind it.
	dir := filepath.Join(h.dir, outboxDir)
	torn := filepath.Join(dir, fmt.Sprintf("%0*d.json", seqWidth, 0))
	if err := os.WriteFile(torn, []byte(`{"key":"event:x","at":"20`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"first", "second"} {
		if err := a.Record(fleetapi.Event{Type: "test", Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%0*d.json", seqWidth, 99999)), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.run(a)
	until(t, h.clk, "the good records", func() bool { return len(h.srv.events("test")) == 2 })
	if !fileExists(torn + ".bad") {
		t.Error("the torn record was not set aside")
	}
	until(t, h.clk, "an empty outbox", func() bool { return a.Status().Outbox == 0 })
	if msgs := h.srv.events("test"); msgs[0].Event.Message != "first" || msgs[1].Event.Message != "second" {
		t.Errorf("order: %v", msgs)
	}
}

// A full outbox of large records does not fit one body: it goes out in
// several check-ins, each within fleetapi.MaxBody, oldest first.
func TestLargeOutboxSplitAcrossCheckIns(t *testing.T) {
	h := newHarness(t)
	a, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	// Queued before enrollment: delivered after it.
	const n = 150
	for i := range n {
		msg := fmt.Sprintf("%03d ", i) + strings.Repeat("x", 15<<10)
		if err := a.Record(fleetapi.Event{Type: "big", Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	h.run(a)
	h.enroll()
	until(t, h.clk, "all delivered", func() bool { return len(h.srv.events("big")) == n })
	evs := h.srv.events("big")
	for i, ev := range evs {
		if !strings.HasPrefix(ev.Event.Message, fmt.Sprintf("%03d ", i)) {
			t.Fatalf("event %d is %.4s: out of order", i, ev.Event.Message)
		}
		if d := h.srv.delivered(ev.Key); d != 1 {
			t.Errorf("event %d delivered %d times", i, d)
		}
	}
	if c := h.srv.checkInCount(); c < 3 {
		t.Errorf("%d check-ins carried %d records of 15 KiB", c, n)
	}
}
