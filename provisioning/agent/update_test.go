package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// offers records what the agent hands the update engine.
type offers struct {
	mu  sync.Mutex
	got []*fleetapi.UpdateOffer
}

func (o *offers) OfferUpdate(_ context.Context, offer *fleetapi.UpdateOffer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, offer)
}

func (o *offers) list() []*fleetapi.UpdateOffer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*fleetapi.UpdateOffer(nil), o.got...)
}

// TestUpdateOffersAndStatus: the device's update status goes out with
// every check-in, every answer's offer (nil included) reaches the update
// engine, and the time of the last good check-in is kept.
func TestUpdateOffersAndStatus(t *testing.T) {
	h := newHarness(t)
	rec := &offers{}
	h.dev.mu.Lock()
	h.dev.update = &fleetapi.UpdateStatus{Hardware: "atrium-amd64", Running: "1.0.0", Slot: "a", State: fleetapi.UpdateIdle}
	h.dev.mu.Unlock()
	opts := h.options()
	opts.Updates = rec
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !a.LastCheckIn().IsZero() {
		t.Fatal("LastCheckIn set before any check-in")
	}
	if _, _, err := a.UpdateHTTPClient(); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("UpdateHTTPClient before enrollment: %v", err)
	}
	h.run(a)
	h.enroll()
	h.checkIns(1)
	waitReal(t, "the first offer", func() bool { return len(rec.list()) >= 1 })
	if got := rec.list()[0]; got != nil {
		t.Fatalf("offer without a rollout: %+v", got)
	}
	if u := h.srv.lastCheckIn().Update; u == nil || u.Running != "1.0.0" || u.Hardware != "atrium-amd64" || u.State != fleetapi.UpdateIdle {
		t.Fatalf("check-in update status: %+v", u)
	}
	if got, want := a.LastCheckIn(), h.clk.Now(); !got.Equal(want) {
		t.Fatalf("LastCheckIn %v, want %v", got, want)
	}

	offer := &fleetapi.UpdateOffer{Rollout: "r1", Target: "atrium-2.0.0", Version: "2.0.0", Repository: fleetapi.PathUpdates,
		Window: &fleetapi.MaintenanceWindow{Start: "02:00", End: "05:00"}}
	h.srv.set(func(s *fakeServer) { s.update = offer })
	before := a.LastCheckIn()
	h.clk.Advance(time.Second) // so the next check-in has a later time
	h.checkIns(h.srv.checkInCount() + 1)
	latest := func() *fleetapi.UpdateOffer {
		l := rec.list()
		if len(l) == 0 {
			return nil
		}
		return l[len(l)-1]
	}
	waitReal(t, "the offer", func() bool { return latest() != nil })
	if got := latest(); got == nil || *got.Window != *offer.Window || got.Target != offer.Target || got.Rollout != "r1" {
		t.Fatalf("offer: %+v", got)
	}
	if !a.LastCheckIn().After(before) {
		t.Fatal("LastCheckIn did not move with the check-in")
	}

	// A failed check-in hands nothing over and leaves LastCheckIn.
	waitReal(t, "the agent to wait for its interval", func() bool { _, ok := h.clk.pendingTimer(); return ok })
	last := a.LastCheckIn()
	n := len(rec.list())
	h.srv.set(func(s *fakeServer) { s.down = true })
	until(t, h.clk, "a failed check-in", func() bool { return a.Status().LastError != "" })
	if len(rec.list()) != n || !a.LastCheckIn().Equal(last) {
		t.Fatalf("after a failed check-in: %d offers (was %d), LastCheckIn %v (was %v)", len(rec.list()), n, a.LastCheckIn(), last)
	}
}

// TestUpdateHTTPClient: the client presents the device certificate to
// the enrolled server, which serves the release repository.
func TestUpdateHTTPClient(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	cl, base, err := a.UpdateHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	if base != h.srv.url {
		t.Fatalf("base %q, want %q", base, h.srv.url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+fleetapi.PathUpdates+"metadata/timestamp.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if want := fleetapi.PathUpdates + "metadata/timestamp.json for " + a.Status().DeviceID; resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("GET: %d %q, want %q", resp.StatusCode, body, want)
	}
}

// TestCheckInSoon: asked for, the next check-in comes at once instead of
// after the interval.
func TestCheckInSoon(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	waitReal(t, "the agent to wait for its interval", func() bool { _, ok := h.clk.pendingTimer(); return ok })
	n := h.srv.checkInCount()
	a.CheckInSoon() // the clock stands still: only this can bring a check-in
	waitReal(t, "an early check-in", func() bool { return h.srv.checkInCount() > n })
}
