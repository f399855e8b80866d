package deviceapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/test/pgtest"
)

// fakeClock is the clock the code under test is given.
type fakeClock = testclock.Clock

// env is one case's world: a fresh store, a CA in a temporary directory,
// the API served over real TLS on loopback, and a small fleet.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *fakeClock
	st    *store.Store
	ca    *ca.CA
	srv   *Server
	ts    *httptest.Server
	org   store.Organisation
	site  store.Site
	room  store.Room
}

// testWriter sends the HTTP server's own log (handshake errors) to the
// test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// engines are the store configurations every case runs on.
type engine struct {
	name string
	opts func(t *testing.T) store.Options
}

func engines(t *testing.T) []engine {
	pg := pgtest.Start(t)
	return []engine{
		{"sqlite", func(t *testing.T) store.Options {
			return store.Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db")}
		}},
		{"postgres", func(t *testing.T) store.Options { return store.Options{PostgresDSN: pg.NewDatabase(t)} }},
	}
}

func newEnv(t *testing.T, eng engine, tweak func(*Options)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	clock := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	so := eng.opts(t)
	so.Now = clock.Now
	st, err := store.Open(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	authority, err := ca.Open(ca.Options{Dir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: st, CA: authority, Now: clock.Now}
	if tweak != nil {
		tweak(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := authority.ServerCert(ca.MaxLifetime)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig(serverCert)
	ts.Config.ErrorLog = log.New(testWriter{t}, "http server: ", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	e := &env{t: t, ctx: ctx, clock: clock, st: st, ca: authority, srv: srv, ts: ts}
	if e.org, err = st.CreateOrganisation(ctx, "admin", "Acme"); err != nil {
		t.Fatal(err)
	}
	if e.site, err = st.CreateSite(ctx, "admin", e.org.ID, "Amsterdam"); err != nil {
		t.Fatal(err)
	}
	if e.room, err = st.CreateRoom(ctx, "admin", e.site.ID, "Boardroom"); err != nil {
		t.Fatal(err)
	}
	return e
}

// client is a device's HTTPS client: it trusts the fleet CA at the fake
// clock and presents cert when given.
func (e *env) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.ca.Pool(), Time: e.clock.Now, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// answer is one response: status, Problem for errors, raw body.
type answer struct {
	status  int
	header  http.Header
	problem fleetapi.Problem
	body    []byte
}

// post sends body (bytes as they are, anything else as JSON) and reads
// the answer; a transport error is returned as it is.
func (e *env) post(c *http.Client, path string, body any, contentType string) (answer, error) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.ts.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		return answer{}, err
	}
	if resp.StatusCode >= 400 {
		if resp.Header.Get("Content-Type") != "application/problem+json" {
			e.t.Fatalf("%s answered %d with %q, not a Problem: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), a.body)
		}
		if err := json.Unmarshal(a.body, &a.problem); err != nil || a.problem.Status != resp.StatusCode {
			e.t.Fatalf("%s: Problem %s (%v) does not match status %d", path, a.body, err, resp.StatusCode)
		}
	}
	return a, nil
}

// mustPost is post where a transport error fails the test and the status
// must be want.
func (e *env) mustPost(c *http.Client, path string, body any, want int) answer {
	e.t.Helper()
	a, err := e.post(c, path, body, "application/json")
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	if a.status != want {
		e.t.Fatalf("POST %s: %d %s, want %d", path, a.status, a.body, want)
	}
	return a
}

// wantProblem checks an error answer's status, code and field.
func wantProblem(t *testing.T, what string, a answer, status int, code, field string) {
	t.Helper()
	if a.status != status || a.problem.Code != code || a.problem.Field != field || a.problem.Detail == "" {
		t.Fatalf("%s: %d %+v, want %d %s field %q", what, a.status, a.problem, status, code, field)
	}
}

// device is a device's key and, once enrolled, its certificate.
type device struct {
	key  *ecdsa.PrivateKey
	id   string
	cert tls.Certificate
	leaf *x509.Certificate
}

func newDevice(t *testing.T) *device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &device{key: key}
}

func (d *device) csr(t *testing.T) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "whatever-the-device-claims", SerialNumber: "HW-1"}}, d.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// setCert installs a PEM certificate issued for the device's key.
func (d *device) setCert(t *testing.T, certPEM string) {
	t.Helper()
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d.leaf = leaf
	d.cert = tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: d.key, Leaf: leaf}
}

// code makes an activation code for the env's room.
func (e *env) code(ttl time.Duration) string {
	e.t.Helper()
	code, _, err := e.st.CreateEnrollmentCode(e.ctx, "alice", store.CodeScope{RoomID: e.room.ID}, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// enroll makes a code, enrolls a new device with it and returns the
// device with its certificate.
func (e *env) enroll() *device {
	e.t.Helper()
	d := newDevice(e.t)
	a := e.mustPost(e.client(nil), fleetapi.PathEnroll, fleetapi.EnrollRequest{Code: e.code(time.Hour), CSR: d.csr(e.t),
		Facts: fleetapi.Facts{Model: "R1", Serial: "HW-1", MACs: []string{"02:00:00:00:00:01"}}}, http.StatusOK)
	var resp fleetapi.EnrollResponse
	if err := json.Unmarshal(a.body, &resp); err != nil {
		e.t.Fatal(err)
	}
	d.id = resp.DeviceID
	d.setCert(e.t, resp.Certificate)
	return d
}

// checkIn is a minimal valid check-in.
func checkIn(outbox ...fleetapi.Record) fleetapi.CheckIn {
	return fleetapi.CheckIn{
		Health:    fleetapi.Health{Status: fleetapi.HealthOK, UptimeSeconds: 5},
		Inventory: fleetapi.Inventory{Versions: map[string]string{"roomd": "0.6.0"}, Hostname: "room-1"},
		Meeting:   fleetapi.Meeting{State: "idle"},
		Outbox:    outbox,
	}
}

func decodeResp[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer %s: %v", a.body, err)
	}
	return v
}
