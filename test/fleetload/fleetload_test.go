package fleetload

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// fakeFleetd is a stand-in for fleetd's check-in endpoint, enough to
// observe the generator: it requires the fleet CA's client certificates
// (ca.ServerTLS, with the store's revocation state), decodes each body
// strictly, remembers every outbox key per device and acknowledges it.
type fakeFleetd struct {
	srv   *httptest.Server
	conns atomic.Int64

	mu       sync.Mutex
	checkIns map[string]int            // device ID → check-ins
	keys     map[string]map[string]int // device ID → outbox key → times received
	bodies   []fleetapi.CheckIn        // the first few, for inspection
	refuse   bool                      // answer 503 to every check-in
}

func startFake(t *testing.T, authority *ca.CA, st *store.Store) *fakeFleetd {
	t.Helper()
	f := &fakeFleetd{checkIns: map[string]int{}, keys: map[string]map[string]int{}}
	cert, err := authority.ServerCert(time.Hour, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+fleetapi.PathCheckIn, f.checkIn)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.TLS = authority.ServerTLS(cert, func(ctx context.Context, serial string) (bool, error) {
		d, err := st.DeviceByCertSerial(ctx, serial)
		if err != nil {
			return false, err
		}
		return d.Revoked, nil
	})
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFleetd) checkIn(w http.ResponseWriter, r *http.Request) {
	id := r.TLS.PeerCertificates[0].Subject.CommonName
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, fleetapi.MaxBody))
	dec.DisallowUnknownFields()
	var c fleetapi.CheckIn
	if err := dec.Decode(&c); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(fleetapi.Problem{Status: 400, Code: fleetapi.CodeBadRequest, Detail: err.Error()})
		return
	}
	f.mu.Lock()
	refuse := f.refuse
	f.checkIns[id]++
	if len(f.bodies) < 50 {
		f.bodies = append(f.bodies, c)
	}
	resp := fleetapi.CheckInResponse{CheckInSeconds: 60, Acked: []string{}, Commands: []fleetapi.Command{},
		Profile: fleetapi.EffectiveProfile{Version: "v1", Body: json.RawMessage(`{}`)}}
	if !refuse {
		for _, rec := range c.Outbox {
			if f.keys[id] == nil {
				f.keys[id] = map[string]int{}
			}
			f.keys[id][rec.Key]++
			resp.Acked = append(resp.Acked, rec.Key)
		}
	}
	f.mu.Unlock()
	if refuse {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(fleetapi.Problem{Status: 503, Code: fleetapi.CodeInternal, Detail: "refusing for the test"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// newFleet opens a real SQLite store and CA in a temporary directory and
// provisions n devices into it.
func newFleet(t *testing.T, n int) (*store.Store, *ca.CA, Fleet) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(dir, "fleet.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	authority, err := ca.Open(ca.Options{Dir: filepath.Join(dir, "ca")})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := Provision(ctx, ProvisionOptions{Store: st, CA: authority, Count: n, DevicesPerRoom: 2})
	if err != nil {
		t.Fatal(err)
	}
	return st, authority, fl
}

func TestProvisionedDevicesAreEnrolledInTheStore(t *testing.T) {
	st, authority, fl := newFleet(t, 5)
	if len(fl.Devices) != 5 {
		t.Fatalf("%d devices, want 5", len(fl.Devices))
	}
	rooms := map[string]bool{}
	for _, d := range fl.Devices {
		got, err := st.Device(context.Background(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CertSerial != ca.SerialString(d.Cert.Leaf) || got.RoomID != d.RoomID {
			t.Errorf("device %s: store has serial %s room %s, generator has %s room %s",
				d.ID, got.CertSerial, got.RoomID, ca.SerialString(d.Cert.Leaf), d.RoomID)
		}
		if d.Cert.Leaf.Subject.CommonName != d.ID {
			t.Errorf("certificate names %q, device is %q", d.Cert.Leaf.Subject.CommonName, d.ID)
		}
		if _, err := d.Cert.Leaf.Verify(x509VerifyClient(authority)); err != nil {
			t.Errorf("device %s certificate does not chain to the fleet CA: %v", d.ID, err)
		}
		rooms[d.RoomID] = true
	}
	if len(rooms) != 3 {
		t.Errorf("%d rooms for 5 devices at 2 a room, want 3", len(rooms))
	}
}

func TestRunSpreadsCheckInsAndDeliversOutboxOnce(t *testing.T) {
	st, authority, fl := newFleet(t, 20)
	fake := startFake(t, authority, st)
	g, err := New(Options{BaseURL: "https://localhost:" + port(t, fake.srv.URL), Roots: authority.Pool(), Devices: fl.Devices, EventEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	res, err := g.Run(ctx, RunOptions{Interval: time.Second, Warmup: 500 * time.Millisecond, Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.ErrorSamples)
	}
	// 20 devices at 1 s over a 2 s window: 40 check-ins scheduled in it.
	if res.OK != 40 || len(res.Latencies) != 40 {
		t.Errorf("%d check-ins recorded (%d latencies), want 40", res.OK, len(res.Latencies))
	}
	if res.Offered() != 20 || res.Rate() < 15 || res.Rate() > 21 {
		t.Errorf("offered %.1f/s, sustained %.1f/s: want 20 and about 20", res.Offered(), res.Rate())
	}
	if p := res.Percentile(99); p <= 0 || p > time.Second {
		t.Errorf("p99 %v", p)
	}
	// A second run reuses the devices' connections: one per device in all.
	if _, err := g.Run(ctx, RunOptions{Devices: 10, Interval: 500 * time.Millisecond, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := fake.conns.Load(); n != 20 {
		t.Errorf("%d connections for 20 devices over two runs, want one each", n)
	}

	generated, pending := g.Outbox()
	if pending != 0 {
		t.Errorf("%d records still pending after acknowledged check-ins", pending)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	total := 0
	for id, keys := range generated {
		for _, k := range keys {
			total++
			if n := fake.keys[id][k]; n != 1 {
				t.Errorf("device %s event %s received %d times, want once", id, k, n)
			}
		}
		if len(fake.keys[id]) != len(keys) {
			t.Errorf("device %s: server has %d keys, generator made %d", id, len(fake.keys[id]), len(keys))
		}
	}
	if total == 0 {
		t.Error("no outbox events generated")
	}
	for _, d := range fl.Devices {
		if fake.checkIns[d.ID] < 2 {
			t.Errorf("device %s checked in %d times", d.ID, fake.checkIns[d.ID])
		}
	}
	b := fake.bodies[0]
	if len(b.Inventory.Devices) != 3 || b.Health.Status != fleetapi.HealthOK || b.Inventory.Versions["roomd"] == "" {
		t.Errorf("check-in body lacks inventory or health: %+v", b)
	}
}

func TestUnacknowledgedEventsAreResent(t *testing.T) {
	st, authority, fl := newFleet(t, 2)
	fake := startFake(t, authority, st)
	g, err := New(Options{BaseURL: fake.srv.URL, ServerName: "localhost", Roots: authority.Pool(), Devices: fl.Devices, EventEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	fake.mu.Lock()
	fake.refuse = true
	fake.mu.Unlock()
	res, err := g.Run(context.Background(), RunOptions{Interval: 200 * time.Millisecond, Window: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.OK != 0 || len(res.ErrorSamples) == 0 {
		t.Fatalf("refused check-ins: %d ok, %d errors %v", res.OK, res.Errors, res.ErrorSamples)
	}
	if !strings.Contains(res.ErrorSamples[0], "status 503") || !strings.Contains(res.ErrorSamples[0], fleetapi.CodeInternal) {
		t.Errorf("error %q does not name the status", res.ErrorSamples[0])
	}
	_, pending := g.Outbox()
	if pending == 0 {
		t.Fatal("no records queued while the server refused")
	}
	fake.mu.Lock()
	fake.refuse = false
	fake.mu.Unlock()
	if _, err := g.Run(context.Background(), RunOptions{Interval: 200 * time.Millisecond, Window: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	generated, pending := g.Outbox()
	if pending != 0 {
		t.Errorf("%d records pending after the server came back", pending)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for id, keys := range generated {
		for _, k := range keys {
			if fake.keys[id][k] != 1 {
				t.Errorf("event %s stored %d times", k, fake.keys[id][k])
			}
		}
	}
}

func TestBounds(t *testing.T) {
	_, authority, fl := newFleet(t, 1)
	for _, u := range []string{"https://192.0.2.1:8443", "http://localhost:1", "localhost:1"} {
		if _, err := New(Options{BaseURL: u, Roots: authority.Pool(), Devices: fl.Devices}); err == nil {
			t.Errorf("New accepted base URL %q", u)
		}
	}
	if _, err := New(Options{BaseURL: "https://localhost:1", Roots: authority.Pool()}); !errors.Is(err, ErrTooMany) {
		t.Errorf("no devices: %v, want ErrTooMany", err)
	}
	g, err := New(Options{BaseURL: "https://localhost:1", Roots: authority.Pool(), Devices: fl.Devices})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(context.Background(), RunOptions{Devices: 2, Interval: time.Second, Window: time.Second}); !errors.Is(err, ErrTooMany) {
		t.Errorf("2 of 1 devices: %v, want ErrTooMany", err)
	}
	if _, err := g.Run(context.Background(), RunOptions{Interval: time.Second, Warmup: time.Second, Window: MaxRunTime}); !errors.Is(err, ErrTooLong) {
		t.Errorf("window of MaxRunTime plus warm-up: %v, want ErrTooLong", err)
	}
	if _, _, err := Enroll(context.Background(), EnrollOptions{BaseURL: "https://192.0.2.1:8443", Roots: authority.Pool(), Code: "X"}); err == nil {
		t.Error("Enroll accepted a non-loopback base URL")
	}
	if _, err := Provision(context.Background(), ProvisionOptions{Count: 1}); err == nil {
		t.Error("Provision without store and CA succeeded")
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 100: 10, 1: 1} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 99) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func port(t *testing.T, rawURL string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(rawURL[len("https://"):])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func x509VerifyClient(authority *ca.CA) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: authority.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
