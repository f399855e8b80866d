package api

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// The plain test backend is a standalone room: no fleet server.
func (b *testBackend) FleetStatus() apiv1.FleetStatus { return apiv1.FleetStatus{} }
func (b *testBackend) FleetEnroll(context.Context, apiv1.FleetEnrollRequest) (apiv1.FleetStatus, error) {
	return apiv1.FleetStatus{}, &FleetError{Type: apiv1.ProblemNotManaged, Status: 409, Detail: "no fleet server configured"}
}

// fleetBackend answers the fleet routes from fixed values and records what
// it was asked.
type fleetBackend struct {
	*adminBackend
	status apiv1.FleetStatus
	err    error
	got    []apiv1.FleetEnrollRequest
}

func (b *fleetBackend) FleetStatus() apiv1.FleetStatus { return b.status }
func (b *fleetBackend) FleetEnroll(_ context.Context, req apiv1.FleetEnrollRequest) (apiv1.FleetStatus, error) {
	b.got = append(b.got, req)
	if b.err != nil {
		return apiv1.FleetStatus{}, b.err
	}
	b.status.Enrolled, b.status.CanEnroll, b.status.DeviceID = true, false, "dev-1"
	return b.status, nil
}

func newFleetServers(t *testing.T) (kiosk, socket *httptest.Server, b *fleetBackend, pin func() string) {
	t.Helper()
	_, tb := newTestServer(t, AccessLocal, "")
	ab := newAdminBackend(t, tb, &testClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)})
	b = &fleetBackend{adminBackend: ab, status: apiv1.FleetStatus{Managed: true, Server: "https://fleet.example:8443", CanEnroll: true}}
	srv := New(slog.New(slog.DiscardHandler), b, Mounts{}, adminTestToken)
	kiosk = httptest.NewServer(srv.Handler(AccessLoopback))
	socket = httptest.NewServer(srv.Handler(AccessLocal))
	t.Cleanup(kiosk.Close)
	t.Cleanup(socket.Close)
	pin = func() string {
		if err := ab.guard.SetPIN("", "2468", false, ""); err != nil {
			t.Fatal(err)
		}
		s, err := ab.guard.Login("2468")
		if err != nil {
			t.Fatal(err)
		}
		return s.Token
	}
	return kiosk, socket, b, pin
}

func TestFleetStatusAndFirstSetupEnrollment(t *testing.T) {
	kiosk, _, b, _ := newFleetServers(t)
	r := call(t, kiosk, "GET", "/api/v1/fleet", "", "")
	st := decodeInto[apiv1.FleetStatus](t, r)
	if r.status != 200 || !st.Managed || st.Enrolled || !st.CanEnroll {
		t.Fatalf("GET /fleet: %d %s", r.status, r.body)
	}
	// First setup: the kiosk enrolls without a session.
	r = call(t, kiosk, "POST", "/api/v1/fleet/enroll", js, `{"code":"ABCD-EFGH","roomName":"Lab"}`)
	st = decodeInto[apiv1.FleetStatus](t, r)
	if r.status != 200 || !st.Enrolled || st.DeviceID != "dev-1" {
		t.Fatalf("enroll: %d %s", r.status, r.body)
	}
	if len(b.got) != 1 || b.got[0].Code != "ABCD-EFGH" || b.got[0].RoomName != "Lab" {
		t.Fatalf("backend got %+v", b.got)
	}
}

func TestFleetEnrollNeedsPINAfterSetup(t *testing.T) {
	kiosk, socket, b, login := newFleetServers(t)
	b.status.CanEnroll = false
	r := call(t, kiosk, "POST", "/api/v1/fleet/enroll", js, `{"code":"ABCD"}`)
	if r.status != 401 || r.problem.Type != apiv1.ProblemAdminRequired || len(b.got) != 0 {
		t.Fatalf("kiosk without session: %d %+v, backend got %v", r.status, r.problem, b.got)
	}
	token := login()
	r = call(t, kiosk, "POST", "/api/v1/fleet/enroll", js, `{"code":"ABCD"}`, apiv1.AdminHeader, token)
	if r.status != 200 {
		t.Fatalf("kiosk with session: %d %s", r.status, r.body)
	}
	r = call(t, socket, "POST", "/api/v1/fleet/enroll", js, `{"code":"WXYZ"}`)
	if r.status != 200 || len(b.got) != 2 {
		t.Fatalf("socket: %d %s", r.status, r.body)
	}
}

func TestFleetEnrollRefusals(t *testing.T) {
	kiosk, _, b, _ := newFleetServers(t)
	cases := []struct {
		body   string
		err    error
		status int
		typ    string
		field  string
	}{
		{`{"code":""}`, nil, 400, apiv1.ProblemBadRequest, "code"},
		{`{"code":"A","colour":1}`, nil, 400, apiv1.ProblemBadRequest, "colour"},
		{`{"code":"A"}`, &FleetError{Type: apiv1.ProblemEnrollRefused, Status: 422, Detail: "the activation code has expired"}, 422, apiv1.ProblemEnrollRefused, "code"},
		{`{"code":"A"}`, &FleetError{Type: apiv1.ProblemEnrollRefused, Status: 429, Detail: "too many attempts", RetryAfter: 90 * time.Second}, 429, apiv1.ProblemEnrollRefused, "code"},
		{`{"code":"A"}`, &FleetError{Type: apiv1.ProblemFleetUnreachable, Status: 502, Detail: "dial tcp: connection refused"}, 502, apiv1.ProblemFleetUnreachable, ""},
		{`{"code":"A"}`, &FleetError{Type: apiv1.ProblemAlreadyEnrolled, Status: 409, Detail: "enrolled as dev-1"}, 409, apiv1.ProblemAlreadyEnrolled, ""},
	}
	for _, c := range cases {
		b.err = c.err
		r := call(t, kiosk, "POST", "/api/v1/fleet/enroll", js, c.body)
		if r.status != c.status || r.problem.Type != c.typ || r.problem.Field != c.field {
			t.Errorf("%s with %v: %d %+v", c.body, c.err, r.status, r.problem)
		}
		if c.err != nil && r.problem.Detail != c.err.Error() {
			t.Errorf("%s: detail %q, want the fleet's reason %q", c.body, r.problem.Detail, c.err.Error())
		}
	}

	// The server's wish to wait is passed on to the kiosk.
	b.err = &FleetError{Type: apiv1.ProblemEnrollRefused, Status: 429, Detail: "too many attempts", RetryAfter: 90 * time.Second}
	resp, err := kiosk.Client().Post(kiosk.URL+"/api/v1/fleet/enroll", js, strings.NewReader(`{"code":"A"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "90" {
		t.Fatalf("rate-limited: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
