package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

func TestEnrollThenCheckIn(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	if st := a.Status(); st.State != StateNotEnrolled || st.Enrolled {
		t.Fatalf("fresh agent: %+v", st)
	}
	// Not enrolled: Run waits without calling anyone, whatever the time.
	h.clk.Advance(time.Hour)
	if n := h.srv.checkInCount(); n != 0 {
		t.Fatalf("%d check-ins before enrollment", n)
	}
	h.enroll()
	h.checkIns(1)

	st := a.Status()
	if st.State != StateEnrolled || st.DeviceID != "dev-1" || st.RoomName != "Room 1" || st.Server != h.srv.url {
		t.Errorf("status after enrollment: %+v", st)
	}
	if st.CertNotAfter.IsZero() {
		t.Error("no certificate expiry in Status")
	}
	ci := h.srv.lastCheckIn()
	if ci.Inventory.Versions["roomd"] != "0.6.0" || ci.Inventory.Versions["image"] != "1.0" || ci.Health.Status != fleetapi.HealthOK {
		t.Errorf("check-in report: %+v", ci)
	}
	until(t, h.clk, "the enrolled event", func() bool { return len(h.srv.events("enrolled")) == 1 })
	waitReal(t, "next check-in scheduled", func() bool { return !a.Status().NextCheckIn.IsZero() })

	// State files: private, written atomically (no temporaries left).
	for _, name := range []string{deviceFile, certFile, caFile} {
		fi, err := os.Stat(filepath.Join(h.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(h.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}

	// Enrolled: a second enrollment is refused, nothing is sent.
	err := a.Enroll(context.Background(), h.srv.newCode(), "")
	if !errors.Is(err, ErrEnrolled) {
		t.Errorf("second Enroll: %v, want ErrEnrolled", err)
	}

	// Interval from the server, ±10%.
	h.srv.set(func(s *fakeServer) { s.interval = 300 })
	n := h.srv.checkInCount()
	h.checkIns(n + 1)
	waitReal(t, "the next timer", func() bool { d, ok := h.clk.pendingTimer(); return ok && d > 0 })
	if d, _ := h.clk.pendingTimer(); d < 270*time.Second || d > 330*time.Second {
		t.Errorf("next check-in in %v, want 300s ±10%%", d)
	}

	// A restart keeps the enrollment.
	h.stop()
	b := h.start()
	if st := b.Status(); st.DeviceID != "dev-1" || st.State != StateEnrolled {
		t.Errorf("after restart: %+v", st)
	}
	n = h.srv.checkInCount()
	h.checkIns(n + 1)
}

func TestEnrollRefusedCodes(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	ctx := context.Background()

	err := a.Enroll(ctx, "NOPE", "")
	var p *fleetapi.Problem
	if !errors.As(err, &p) || p.Code != fleetapi.CodeInvalidCode || p.Status != 400 {
		t.Fatalf("unknown code: %v", err)
	}
	h.srv.set(func(s *fakeServer) { s.codes["OLD"] = fleetapi.CodeExpiredCode })
	err = a.Enroll(ctx, "OLD", "")
	if !errors.As(err, &p) || p.Code != fleetapi.CodeExpiredCode {
		t.Fatalf("expired code: %v", err)
	}
	if !strings.Contains(err.Error(), "expired-code") {
		t.Errorf("error text %q does not say why", err)
	}
	if err := a.Enroll(ctx, "  ", ""); err == nil {
		t.Error("empty code accepted")
	}
	if st := a.Status(); st.Enrolled {
		t.Errorf("refused enrollment left state: %+v", st)
	}
	if fileExists(filepath.Join(h.dir, deviceFile)) {
		t.Error("device.json written for a refused code")
	}
}

func TestEnrollTrust(t *testing.T) {
	h := newHarness(t)
	sum := sha256.Sum256(h.srv.caDER)
	ctx := context.Background()

	// No CA configured: the system roots do not know the fleet's CA.
	opts := h.options()
	opts.ServerCA = nil
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enroll(ctx, h.srv.newCode(), ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("enrollment against an unknown CA: %v", err)
	}

	// A wrong pin is refused before the code is sent.
	opts.ServerCAPin = strings.Repeat("ab", 32)
	a, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	code := h.srv.newCode()
	if err := a.Enroll(ctx, code, ""); err == nil || !strings.Contains(err.Error(), "pin") {
		t.Errorf("enrollment with a wrong pin: %v", err)
	}
	// The right pin, written with colons and upper case.
	hexPin := strings.ToUpper(hex.EncodeToString(sum[:]))
	var colons []string
	for i := 0; i < len(hexPin); i += 2 {
		colons = append(colons, hexPin[i:i+2])
	}
	opts.ServerCAPin = "sha256:" + strings.Join(colons, ":")
	a, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enroll(ctx, code, ""); err != nil {
		t.Fatalf("enrollment with the right pin (code unused so far): %v", err)
	}

	// Bad options.
	bad := h.options()
	bad.ServerCAPin = "xyz"
	bad.ServerCA = nil
	if _, err := New(bad); err == nil {
		t.Error("a malformed pin was accepted")
	}
	bad = h.options()
	bad.ServerCAPin = hexPin
	if _, err := New(bad); err == nil {
		t.Error("both ServerCA and ServerCAPin accepted")
	}
	bad = h.options()
	bad.Server = "http://plain"
	if _, err := New(bad); err == nil {
		t.Error("an http server URL was accepted")
	}
	bad = h.options()
	bad.Device = nil
	if _, err := New(bad); err == nil {
		t.Error("no Device accepted")
	}
}

func TestRecordTooLarge(t *testing.T) {
	h := newHarness(t)
	a, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	err = a.Record(fleetapi.Event{Type: "big", Message: strings.Repeat("x", MaxRecordSize)})
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("oversized record: %v", err)
	}
	if err := a.Record(fleetapi.Event{Type: "x", Details: []byte("{bad")}); err == nil {
		t.Error("details that are not JSON accepted")
	}
	if a.Status().Outbox != 0 {
		t.Error("refused records were queued")
	}
}
