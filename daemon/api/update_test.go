package api

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// The plain test backend has updates switched off.
func (b *testBackend) UpdateStatus() apiv1.UpdateStatus {
	return apiv1.UpdateStatus{Disabled: "no [update] section in roomd.toml", Running: "1.0.0", State: apiv1.UpdateIdle,
		Deferred: apiv1.DeferredWindow, NextWindow: time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)}
}

func (b *testBackend) KioskReady() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kiosk++
}

func TestUpdateStatus(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	r := call(t, ts, "GET", "/api/v1/update", "", "")
	st := decodeInto[apiv1.UpdateStatus](t, r)
	if r.status != 200 || st.Enabled || st.Disabled == "" || st.Running != "1.0.0" || st.NextWindow.IsZero() {
		t.Fatalf("GET /update: %d %s", r.status, r.body)
	}
}

func TestKioskReadyOnlyFromTheKiosk(t *testing.T) {
	socket, b := newTestServer(t, AccessLocal, "")
	kiosk := httptest.NewServer(New(slog.New(slog.DiscardHandler), b, Mounts{}, "").Handler(AccessLoopback))
	t.Cleanup(kiosk.Close)
	r := call(t, socket, "POST", "/api/v1/kiosk/ready", "", "")
	if r.status != 403 || r.problem.Type != apiv1.ProblemUnauthorized {
		t.Fatalf("from the socket: %d %s", r.status, r.body)
	}
	r = call(t, kiosk, "POST", "/api/v1/kiosk/ready", "", "")
	if r.status != 204 {
		t.Fatalf("from the kiosk: %d %s", r.status, r.body)
	}
	b.mu.Lock()
	n := b.kiosk
	b.mu.Unlock()
	if n != 1 {
		t.Fatalf("KioskReady called %d times", n)
	}
}
