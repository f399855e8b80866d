package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/provisioning/identity"
)

func storedCert(t *testing.T, h *harness) time.Time {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dir, certFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter
}

func renewals(h *harness) int {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.renewals
}

func TestRenewalAtTwoThirds(t *testing.T) {
	h := newHarness(t)
	h.srv.set(func(s *fakeServer) { s.certLifetime = 30 * time.Minute })
	a := h.start()
	h.enroll()
	h.checkIns(1)
	first := a.Status().CertNotAfter
	enrolledAt := h.clk.Now()
	// The CA backdates by 5 minutes: 35 minutes of life, renewal due 2/3
	// in, about 18 minutes after enrollment.
	until(t, h.clk, "renewal", func() bool { return renewals(h) == 1 })
	if in := h.clk.Now().Sub(enrolledAt); in < 17*time.Minute || in > 20*time.Minute {
		t.Errorf("renewed %v after enrollment, want about 18m", in)
	}
	until(t, h.clk, "the new certificate", func() bool { return a.Status().CertNotAfter.After(first) })
	if got := storedCert(t, h); !got.Equal(a.Status().CertNotAfter) {
		t.Errorf("cert.pem expires %v, Status says %v", got, a.Status().CertNotAfter)
	}
	// Check-ins go on with the new certificate beyond the old one's end,
	// and the new one is renewed at its own two thirds (about 36m in).
	until(t, h.clk, "past the first certificate", func() bool { return h.clk.Now().After(first.Add(10 * time.Minute)) })
	n := h.srv.checkInCount()
	h.checkIns(n + 1)
	if st := a.Status(); st.State != StateEnrolled || st.LastError != "" {
		t.Errorf("after renewal: %+v", st)
	}
	if r := renewals(h); r < 2 {
		t.Errorf("%d renewals after more than a lifetime", r)
	}

	// renew-identity renews now.
	before := renewals(h)
	h.srv.addCommand("ri", fleetapi.CommandRenewIdentity, `{}`)
	if r := waitResult(t, h, "ri"); r.Status != fleetapi.ResultSucceeded || !strings.Contains(string(r.Output), "notAfter") {
		t.Errorf("renew-identity: %+v", r)
	}
	if renewals(h) != before+1 {
		t.Error("renew-identity did not renew")
	}
}

func TestExpiredCertificate(t *testing.T) {
	h := newHarness(t)
	h.srv.set(func(s *fakeServer) { s.certLifetime = 30 * time.Minute })
	a := h.start()
	h.enroll()
	h.checkIns(1)
	// The server is unreachable past the certificate's end: renewal fails.
	h.dialer.setCut(true)
	notAfter := a.Status().CertNotAfter
	until(t, h.clk, "expiry", func() bool { return a.Status().State == StateExpired })
	if !h.clk.Now().After(notAfter.Add(-time.Second)) {
		t.Error("expired early")
	}
	waitReal(t, "the loop to settle", func() bool { return strings.Contains(a.Status().LastError, "enroll") })
	// Nothing more to try: no timer, no calls.
	h.dialer.setCut(false)
	n := h.srv.checkInCount()
	h.clk.Advance(24 * time.Hour)
	time.Sleep(20 * time.Millisecond)
	if h.srv.checkInCount() != n {
		t.Error("an expired device kept calling")
	}
	// It may enroll again.
	h.enroll()
	until(t, h.clk, "check-in after re-enrollment", func() bool { return h.srv.checkInCount() > n })
	if st := a.Status(); st.State != StateEnrolled || st.DeviceID != "dev-2" {
		t.Errorf("after re-enrollment: %+v", st)
	}
}

func TestRevoked(t *testing.T) {
	h, a := enrolled(t)
	h.srv.set(func(s *fakeServer) { s.revoked["dev-1"] = true })
	until(t, h.clk, "revocation seen", func() bool { return a.Status().State == StateRevoked })
	waitReal(t, "the long wait", func() bool { d, ok := h.clk.pendingTimer(); return ok && d > time.Hour })
	if d, _ := h.clk.pendingTimer(); d != RevokedInterval {
		t.Errorf("next try in %v, want %v", d, RevokedInterval)
	}
	if !strings.Contains(a.Status().LastError, "revoked") {
		t.Errorf("LastError %q", a.Status().LastError)
	}
	// A restart remembers.
	h.stop()
	b := h.start()
	if b.Status().State != StateRevoked {
		t.Errorf("after restart: %+v", b.Status())
	}
	// A revoked device may enroll again with a new code.
	h.enroll()
	until(t, h.clk, "enrolled again", func() bool { return b.Status().State == StateEnrolled && b.Status().DeviceID == "dev-2" })
}

func TestUnauthorizedSaysEnrollAgain(t *testing.T) {
	h, a := enrolled(t)
	h.srv.set(func(s *fakeServer) { s.unauthorized = true })
	until(t, h.clk, "the refusal", func() bool { return strings.Contains(a.Status().LastError, "unauthorized") })
	if !strings.Contains(a.Status().LastError, "enroll the device again") {
		t.Errorf("LastError %q does not say what to do", a.Status().LastError)
	}
	h.srv.set(func(s *fakeServer) { s.unauthorized = false })
	until(t, h.clk, "recovery", func() bool { return a.Status().LastError == "" })
}

func TestCorruptStateFiles(t *testing.T) {
	for _, tc := range []struct {
		file, content, want string
	}{
		{certFile, "-----BEGIN CERTIFICATE-----\nMIIB", certFile},
		{caFile, "", caFile},
		{deviceFile, `{"deviceId":`, deviceFile},
	} {
		t.Run(tc.file, func(t *testing.T) {
			h, _ := enrolled(t)
			h.stop()
			path := filepath.Join(h.dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// The profile state too: starts from none.
			if err := os.WriteFile(filepath.Join(h.dir, profileStateFile), []byte("\x00\x00"), 0o600); err != nil {
				t.Fatal(err)
			}
			a := h.start()
			st := a.Status()
			if st.Enrolled || !strings.Contains(st.LastError, tc.want) || !strings.Contains(st.LastError, "enroll again") {
				t.Errorf("status with a damaged %s: %+v", tc.file, st)
			}
			h.enroll()
			n := h.srv.checkInCount()
			h.checkIns(n + 1)
			if a.Status().State != StateEnrolled {
				t.Errorf("not usable after enrolling again: %+v", a.Status())
			}
		})
	}
}

// fleetd's CA checking revocation in the handshake: the agent cannot read
// a Problem, keeps backing off normally, and says what may be wrong.
func TestRefusedInHandshake(t *testing.T) {
	h, a := enrolled(t)
	h.srv.set(func(s *fakeServer) { s.refuseInHandshake["dev-1"] = true })
	until(t, h.clk, "the refusal", func() bool { return strings.Contains(a.Status().LastError, "handshake") })
	if st := a.Status(); !strings.Contains(st.LastError, "enroll the device again") || st.State != StateEnrolled {
		t.Errorf("status %+v", st)
	}
	waitReal(t, "the retry", func() bool { _, ok := h.clk.pendingTimer(); return ok })
	if d, _ := h.clk.pendingTimer(); d > MaxBackoff {
		t.Errorf("retry in %v", d)
	}
}

// The agent with the device's real identity key (provisioning/identity's
// file backend): its CSR, its signer in the mTLS handshake.
func TestWithDeviceIdentity(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id, err := identity.Open(ctx, identity.Options{StateDir: t.TempDir(), Backend: identity.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = id.Close() })
	facts := identity.Facts{Model: "Atrium One", Serial: "SN-42", MachineID: strings.Repeat("ab", 16)}
	opts := h.options()
	opts.Signer = id
	opts.CSR = func() ([]byte, error) { return id.CSR(facts) }
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.run(a)
	h.enroll()
	h.checkIns(1)
	if st := a.Status(); st.State != StateEnrolled || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}
