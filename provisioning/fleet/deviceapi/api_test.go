package deviceapi

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// TestAPI runs every case over real TLS on both store engines.
func TestAPI(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, eng engine)
	}{
		{"EnrollAndCheckIn", testEnrollAndCheckIn},
		{"BadCodes", testBadCodes},
		{"RateLimit", testRateLimit},
		{"ForgedAndExpiredCertificates", testForgedCerts},
		{"Revocation", testRevocation},
		{"Renewal", testRenewal},
		{"BadBodies", testBadBodies},
		{"Outbox", testOutbox},
		{"Logs", testLogs},
		{"UpdateOffers", testUpdateOffers},
		{"BadUpdateStatus", testBadUpdateStatus},
		{"UpdateRepository", testUpdateRepository},
	}
	for _, eng := range engines(t) {
		t.Run(eng.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.fn(t, eng) })
			}
		})
	}
}

func testEnrollAndCheckIn(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := newDevice(t)
	code := e.code(time.Hour)
	a := e.mustPost(e.client(nil), fleetapi.PathEnroll, fleetapi.EnrollRequest{Code: strings.ToLower(code[:5]) + "-" + code[5:],
		CSR: d.csr(t), Facts: fleetapi.Facts{Model: "R1", Serial: "HW-1"}}, http.StatusOK)
	resp := decodeResp[fleetapi.EnrollResponse](t, a)
	d.id = resp.DeviceID
	d.setCert(t, resp.Certificate)
	dev, err := e.st.Device(e.ctx, resp.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.leaf.Subject.CommonName != dev.ID || ca.SerialString(d.leaf) != dev.CertSerial || !d.leaf.NotAfter.Equal(dev.CertNotAfter) ||
		resp.RoomID != e.room.ID || resp.RoomName != "Boardroom" || resp.CABundle != string(e.ca.Bundle()) || resp.CheckInSeconds != 60 {
		t.Fatalf("enrollment answer %+v, certificate CN %q serial %s, device %+v", resp, d.leaf.Subject.CommonName, ca.SerialString(d.leaf), dev)
	}
	if got := d.leaf.NotAfter.Sub(e.clock.Now()); got != ca.DefaultLifetime {
		t.Fatalf("certificate lifetime %v", got)
	}
	var facts fleetapi.Facts
	if err := json.Unmarshal(dev.Hardware, &facts); err != nil || facts.Serial != "HW-1" {
		t.Fatalf("stored facts %s", dev.Hardware)
	}

	// The first check-in: empty profile, no commands.
	c := e.client(&d.cert)
	first := decodeResp[fleetapi.CheckInResponse](t, e.mustPost(c, fleetapi.PathCheckIn, checkIn(), http.StatusOK))
	emptyVersion, _ := fleetapi.ProfileVersion(json.RawMessage(`{}`))
	if string(first.Profile.Body) != "{}" || first.Profile.Version != emptyVersion || len(first.Commands) != 0 ||
		first.Acked == nil || first.Commands == nil || first.CheckInSeconds != 60 {
		t.Fatalf("first check-in answer %+v", first)
	}

	// Profiles at org, room and device scope merge key by key.
	for _, p := range []struct {
		sc   store.Scope
		body string
	}{
		{store.Scope{Kind: store.ScopeOrg, ID: e.org.ID}, `{"ntp":true,"timezone":"Europe/Amsterdam"}`},
		{store.Scope{Kind: store.ScopeRoom, ID: e.room.ID}, `{"roomName":"Boardroom"}`},
		{store.Scope{Kind: store.ScopeDevice, ID: d.id}, `{"timezone":"Europe/Berlin"}`},
	} {
		if _, err := e.st.SetProfile(e.ctx, "alice", p.sc, 0, json.RawMessage(p.body)); err != nil {
			t.Fatal(err)
		}
	}
	cmd, _, err := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: d.id, Kind: fleetapi.CommandJoin,
		Args: json.RawMessage(`{"url":"https://meet.example/x"}`), IdempotencyKey: "j1"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	in := checkIn()
	in.Health = fleetapi.Health{Status: fleetapi.HealthDegraded, Problems: []string{"camera missing"}, UptimeSeconds: 65}
	in.CallQuality = &fleetapi.CallQuality{Seconds: 30, RTTMillis: 42, Participants: 3}
	in.Profile = fleetapi.ProfileState{Applied: emptyVersion, Last: fleetapi.ProfileOutcome{Version: emptyVersion, Status: fleetapi.ProfileApplied}}
	second := decodeResp[fleetapi.CheckInResponse](t, e.mustPost(c, fleetapi.PathCheckIn, in, http.StatusOK))
	wantBody := `{"ntp":true,"roomName":"Boardroom","timezone":"Europe/Berlin"}`
	wantVersion, _ := fleetapi.ProfileVersion(json.RawMessage(wantBody))
	if string(second.Profile.Body) != wantBody || second.Profile.Version != wantVersion || wantVersion == emptyVersion {
		t.Fatalf("effective profile %s version %s, want %s %s", second.Profile.Body, second.Profile.Version, wantBody, wantVersion)
	}
	if _, err := fleetapi.DecodeProfile(second.Profile.Body); err != nil {
		t.Fatalf("merged profile does not decode: %v", err)
	}
	if len(second.Commands) != 1 || second.Commands[0].ID != cmd.ID || second.Commands[0].Kind != fleetapi.CommandJoin ||
		string(second.Commands[0].Args) != `{"url":"https://meet.example/x"}` {
		t.Fatalf("commands %+v", second.Commands)
	}
	if got, _ := e.st.Command(e.ctx, cmd.ID); got.Status != store.CommandSent {
		t.Fatalf("delivered command is %s, want sent", got.Status)
	}
	sum, err := e.st.DeviceSummary(e.ctx, d.id)
	if err != nil || sum.Health != fleetapi.HealthDegraded || !reflect.DeepEqual(sum.Problems, []string{"camera missing"}) ||
		!sum.LastCheckIn.Equal(e.clock.Now()) || sum.ProfileApplied != emptyVersion || sum.ProfileStatus != fleetapi.ProfileApplied ||
		string(sum.Versions) != `{"roomd":"0.6.0"}` || !sum.Online {
		t.Fatalf("device after check-in %+v, %v", sum, err)
	}
	var inv fleetapi.Inventory
	if err := json.Unmarshal(sum.Inventory, &inv); err != nil || inv.Hostname != "room-1" {
		t.Fatalf("stored inventory %s", sum.Inventory)
	}
	calls, err := e.st.Samples(e.ctx, d.id, store.SampleCall, time.Time{}, 0)
	if err != nil || len(calls) != 1 || !bytes.Contains(calls[0].Body, []byte(`"rttMillis":42`)) {
		t.Fatalf("call samples %+v, %v", calls, err)
	}
	if health, _ := e.st.Samples(e.ctx, d.id, store.SampleHealth, time.Time{}, 0); len(health) != 2 {
		t.Fatalf("%d health samples, want 2", len(health))
	}
	// The command is given again until its result arrives, then no more.
	third := decodeResp[fleetapi.CheckInResponse](t, e.mustPost(c, fleetapi.PathCheckIn, checkIn(fleetapi.Record{Key: "res-1",
		Result: &fleetapi.Result{CommandID: cmd.ID, Status: fleetapi.ResultSucceeded, Detail: "joined"}}), http.StatusOK))
	if !reflect.DeepEqual(third.Acked, []string{"res-1"}) || len(third.Commands) != 0 {
		t.Fatalf("after the result %+v", third)
	}
	if got, _ := e.st.Command(e.ctx, cmd.ID); got.Status != store.CommandSucceeded || got.Result != "joined" {
		t.Fatalf("command after its result %+v", got)
	}
}

func testBadCodes(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	c := e.client(nil)
	d := newDevice(t)
	enroll := func(code, room string, csr []byte) answer {
		t.Helper()
		a, err := e.post(c, fleetapi.PathEnroll, fleetapi.EnrollRequest{Code: code, CSR: csr, RoomName: room}, "application/json")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	guess := strings.Repeat("A", len(e.code(time.Hour))) // a real code's shape that nobody issued
	wantProblem(t, "guessed code", enroll(guess, "", d.csr(t)), http.StatusForbidden, fleetapi.CodeInvalidCode, "code")
	wantProblem(t, "overlong code", enroll(strings.Repeat("B", 100), "", d.csr(t)), http.StatusForbidden, fleetapi.CodeInvalidCode, "code")
	wantProblem(t, "no code", enroll(" - ", "", d.csr(t)), http.StatusBadRequest, fleetapi.CodeBadRequest, "code")

	expiring := e.code(time.Minute)
	e.clock.Advance(2 * time.Minute)
	wantProblem(t, "expired code", enroll(expiring, "", d.csr(t)), http.StatusForbidden, fleetapi.CodeExpiredCode, "code")

	// A bad CSR is refused before the code is looked at, and spends nothing.
	code := e.code(time.Hour)
	wantProblem(t, "garbage CSR", enroll(code, "", []byte("not a csr")), http.StatusBadRequest, fleetapi.CodeBadRequest, "csr")
	wantProblem(t, "no CSR", enroll(code, "", nil), http.StatusBadRequest, fleetapi.CodeBadRequest, "csr")
	rsaLike, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaLike)
	wantProblem(t, "P-384 CSR", enroll(code, "", p384), http.StatusBadRequest, fleetapi.CodeBadRequest, "csr")
	if a := enroll(code, "", d.csr(t)); a.status != http.StatusOK {
		t.Fatalf("code after refused CSRs: %d %s", a.status, a.body)
	}
	wantProblem(t, "reused code", enroll(code, "", newDevice(t).csr(t)), http.StatusForbidden, fleetapi.CodeUsedCode, "code")

	// A site-wide code needs a room name, and creates that room.
	siteCode, _, err := e.st.CreateEnrollmentCode(e.ctx, "alice", store.CodeScope{SiteID: e.site.ID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "site code without room", enroll(siteCode, "", newDevice(t).csr(t)), http.StatusForbidden, fleetapi.CodeWrongScope, "roomName")
	wantProblem(t, "site code with a bad room name", enroll(siteCode, "a\x00b", newDevice(t).csr(t)), http.StatusBadRequest, fleetapi.CodeBadRequest, "roomName")
	a := enroll(siteCode, "Huddle 2", newDevice(t).csr(t))
	if a.status != http.StatusOK {
		t.Fatalf("site code with a room: %d %s", a.status, a.body)
	}
	resp := decodeResp[fleetapi.EnrollResponse](t, a)
	room, err := e.st.Room(e.ctx, resp.RoomID)
	if err != nil || room.Name != "Huddle 2" || room.SiteID != e.site.ID || resp.RoomName != "Huddle 2" {
		t.Fatalf("room of the site code %+v, %v (answer %+v)", room, err, resp)
	}
	if devs, _ := e.st.Devices(e.ctx, ""); len(devs) != 2 {
		t.Fatalf("%d devices enrolled, want 2", len(devs))
	}
}

func testRateLimit(t *testing.T, eng engine) {
	e := newEnv(t, eng, func(o *Options) { o.EnrollPerClient = RateLimit{Burst: 3, Every: time.Minute} })
	c := e.client(nil)
	d := newDevice(t)
	try := func(code string) answer {
		t.Helper()
		a, err := e.post(c, fleetapi.PathEnroll, fleetapi.EnrollRequest{Code: code, CSR: d.csr(t)}, "application/json")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for i := range 3 {
		wantProblem(t, "guess", try("GUESS"+string(rune('A'+i))), http.StatusForbidden, fleetapi.CodeInvalidCode, "code")
	}
	good := e.code(time.Hour)
	a := try(good)
	wantProblem(t, "fourth attempt", a, http.StatusTooManyRequests, fleetapi.CodeRateLimited, "")
	if a.header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After %q, want 60", a.header.Get("Retry-After"))
	}
	e.clock.Advance(30 * time.Second)
	if a := try(good); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "30" {
		t.Fatalf("half-way: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	e.clock.Advance(30 * time.Second)
	if a := try(good); a.status != http.StatusOK {
		t.Fatalf("after the refill: %d %s", a.status, a.body)
	}
	// The success gave its token back: one more failure is allowed…
	wantProblem(t, "used code", try(good), http.StatusForbidden, fleetapi.CodeUsedCode, "code")
	// …and then the bucket is empty again.
	wantProblem(t, "after the refund", try("GUESSZ"), http.StatusTooManyRequests, fleetapi.CodeRateLimited, "")
}

// TestRateLimitPerAddress drives the handler without TLS (enrollment
// needs none) to give requests different client addresses.
func TestRateLimitPerAddress(t *testing.T) {
	eng := engines(t)[0]
	e := newEnv(t, eng, func(o *Options) {
		o.EnrollPerClient = RateLimit{Burst: 2, Every: time.Minute}
		o.EnrollFailures = RateLimit{Burst: 5, Every: 10 * time.Second}
	})
	h := e.srv.Handler()
	d := newDevice(t)
	body, _ := json.Marshal(fleetapi.EnrollRequest{Code: "GUESS", CSR: d.csr(t)})
	try := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, fleetapi.PathEnroll, bytes.NewReader(body))
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	statuses := func(addrs ...string) []int {
		var out []int
		for _, a := range addrs {
			out = append(out, try(a).Code)
		}
		return out
	}
	// Client A (two ports, one address) is cut off after 2; B is not.
	got := statuses("192.0.2.1:1000", "192.0.2.1:1001", "192.0.2.1:1002", "192.0.2.2:1000")
	if want := []int{403, 403, 429, 403}; !reflect.DeepEqual(got, want) {
		t.Fatalf("per address: %v, want %v", got, want)
	}
	// Fleet-wide: 5 failures in all (A's refused one took none), then
	// every address waits.
	got = statuses("192.0.2.3:1", "192.0.2.4:1", "192.0.2.5:1")
	if want := []int{403, 403, 429}; !reflect.DeepEqual(got, want) {
		t.Fatalf("global: %v, want %v", got, want)
	}
	if w := try("192.0.2.6:1"); w.Header().Get("Retry-After") != "10" {
		t.Fatalf("global Retry-After %q, want 10", w.Header().Get("Retry-After"))
	}
	e.clock.Advance(10 * time.Second)
	if got := statuses("192.0.2.6:1", "192.0.2.7:1"); !reflect.DeepEqual(got, []int{403, 429}) {
		t.Fatalf("after one refill: %v", got)
	}
}

// TestLimiterBounded checks the per-address buckets stay bounded.
func TestLimiterBounded(t *testing.T) {
	clock := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	l := newLimiter(RateLimit{Burst: 2, Every: time.Minute}, RateLimit{Burst: 1 << 30, Every: time.Millisecond}, clock.Now)
	for i := range maxClients + 10 {
		if ok, _ := l.take(big.NewInt(int64(i)).String()); !ok {
			t.Fatalf("client %d refused", i)
		}
	}
	if n := len(l.clients); n > maxClients {
		t.Fatalf("%d buckets kept, bound %d", n, maxClients)
	}
}

// selfSigned makes a client certificate no fleet CA issued.
func selfSigned(t *testing.T, cn string, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func testForgedCerts(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	refused := func(what string, cert *tls.Certificate) {
		t.Helper()
		a, err := e.post(e.client(cert), fleetapi.PathCheckIn, checkIn(), "application/json")
		if err == nil && a.status != http.StatusUnauthorized {
			t.Fatalf("%s: answered %d %s, want a refused handshake or 401", what, a.status, a.body)
		}
	}
	// Self-signed with the device's own ID.
	forged := selfSigned(t, d.id, e.clock.Now().Add(time.Hour))
	refused("self-signed certificate", &forged)
	// Issued by another fleet's CA for the same device ID and key.
	other, err := ca.Open(ca.Options{Dir: t.TempDir(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	der, _, _, err := other.Sign(d.csr(t), d.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	otherCert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: d.key}
	refused("another CA's certificate", &otherCert)
	// No certificate: the handshake succeeds (enrollment needs none), the
	// endpoint refuses.
	a := e.mustPost(e.client(nil), fleetapi.PathCheckIn, checkIn(), http.StatusUnauthorized)
	wantProblem(t, "no certificate", a, http.StatusUnauthorized, fleetapi.CodeUnauthorized, "")
	if dev, _ := e.st.Device(e.ctx, d.id); !dev.LastCheckIn.IsZero() {
		t.Fatalf("a refused check-in was stored: %+v", dev)
	}
	// The real certificate works, until it expires.
	e.mustPost(e.client(&d.cert), fleetapi.PathCheckIn, checkIn(), http.StatusOK)
	e.clock.Advance(ca.DefaultLifetime + time.Minute)
	refused("expired certificate", &d.cert)
	if dev, _ := e.st.Device(e.ctx, d.id); !dev.LastCheckIn.Equal(e.clock.Now().Add(-ca.DefaultLifetime - time.Minute)) {
		t.Fatalf("expired certificate's check-in was stored: %v", dev.LastCheckIn)
	}
}

func testRevocation(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	c := e.client(&d.cert)
	e.mustPost(c, fleetapi.PathCheckIn, checkIn(), http.StatusOK)
	if err := e.st.RevokeDevice(e.ctx, "alice", d.id); err != nil {
		t.Fatal(err)
	}
	// The kept-alive connection was opened before the revocation: the
	// request is refused with the reason.
	a := e.mustPost(c, fleetapi.PathCheckIn, checkIn(), http.StatusForbidden)
	wantProblem(t, "revoked device on its open connection", a, http.StatusForbidden, fleetapi.CodeRevoked, "")
	// A new connection gets the same answer: the device learns that it was
	// revoked (a refused handshake would look like any network fault).
	a = e.mustPost(e.client(&d.cert), fleetapi.PathCheckIn, checkIn(), http.StatusForbidden)
	wantProblem(t, "revoked device on a new connection", a, http.StatusForbidden, fleetapi.CodeRevoked, "")
	// Renewal and log upload are refused the same way.
	wantProblem(t, "revoked renewal", e.mustPost(c, fleetapi.PathRenew, fleetapi.RenewRequest{CSR: d.csr(t)}, http.StatusForbidden),
		http.StatusForbidden, fleetapi.CodeRevoked, "")
	if dev, _ := e.st.Device(e.ctx, d.id); dev.CertSerial != ca.SerialString(d.leaf) {
		t.Fatalf("revoked device's certificate changed")
	}
}

func testRenewal(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	oldCert := d.cert
	oldClient := e.client(&oldCert)
	e.mustPost(oldClient, fleetapi.PathCheckIn, checkIn(), http.StatusOK)
	e.clock.Advance(20 * 24 * time.Hour)
	a := e.mustPost(oldClient, fleetapi.PathRenew, fleetapi.RenewRequest{CSR: d.csr(t)}, http.StatusOK)
	resp := decodeResp[fleetapi.RenewResponse](t, a)
	d.setCert(t, resp.Certificate)
	if resp.CABundle != string(e.ca.Bundle()) || d.leaf.Subject.CommonName != d.id ||
		!d.leaf.NotAfter.Equal(e.clock.Now().Add(ca.DefaultLifetime)) {
		t.Fatalf("renewed certificate CN %q until %v", d.leaf.Subject.CommonName, d.leaf.NotAfter)
	}
	dev, err := e.st.Device(e.ctx, d.id)
	if err != nil || dev.CertSerial != ca.SerialString(d.leaf) || !dev.CertNotAfter.Equal(d.leaf.NotAfter) {
		t.Fatalf("device after renewal %+v, %v", dev, err)
	}
	// The old certificate stops working: on its open connection and on a
	// new one.
	wantProblem(t, "old certificate, open connection", e.mustPost(oldClient, fleetapi.PathCheckIn, checkIn(), http.StatusUnauthorized),
		http.StatusUnauthorized, fleetapi.CodeUnauthorized, "")
	wantProblem(t, "old certificate, new connection", e.mustPost(e.client(&oldCert), fleetapi.PathCheckIn, checkIn(), http.StatusUnauthorized),
		http.StatusUnauthorized, fleetapi.CodeUnauthorized, "")
	wantProblem(t, "renew again with the old certificate", e.mustPost(e.client(&oldCert), fleetapi.PathRenew, fleetapi.RenewRequest{CSR: d.csr(t)}, http.StatusUnauthorized),
		http.StatusUnauthorized, fleetapi.CodeUnauthorized, "")
	e.mustPost(e.client(&d.cert), fleetapi.PathCheckIn, checkIn(), http.StatusOK)
	// The renewed certificate outlives the first one's expiry.
	e.clock.Advance(15 * 24 * time.Hour)
	e.mustPost(e.client(&d.cert), fleetapi.PathCheckIn, checkIn(), http.StatusOK)
	wantProblem(t, "renewal with a bad CSR", e.mustPost(e.client(&d.cert), fleetapi.PathRenew, fleetapi.RenewRequest{CSR: []byte("x")}, http.StatusBadRequest),
		http.StatusBadRequest, fleetapi.CodeBadRequest, "csr")
	if dev, _ := e.st.Device(e.ctx, d.id); dev.CertSerial != ca.SerialString(d.leaf) {
		t.Fatalf("refused renewal changed the certificate")
	}
}

func testBadBodies(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	c := e.client(&d.cert)
	huge := `{"sent":"2026-03-01T09:00:00Z","inventory":{"hostname":"` + strings.Repeat("x", fleetapi.MaxBody) + `"}}`
	many := checkIn()
	for i := range fleetapi.MaxOutbox + 1 {
		many.Outbox = append(many.Outbox, fleetapi.Record{Key: "k" + big.NewInt(int64(i)).String(), Event: &fleetapi.Event{Type: "x"}})
	}
	valid, _ := json.Marshal(checkIn())
	for _, tc := range []struct {
		name        string
		body        any
		contentType string
		status      int
		field       string
		detail      string
	}{
		{"oversized", huge, "application/json", http.StatusRequestEntityTooLarge, "", "larger than 1048576 bytes"},
		{"malformed", `{"health":`, "application/json", http.StatusBadRequest, "", "ends early"},
		{"syntax error", `{"health" 1}`, "application/json", http.StatusBadRequest, "", "malformed JSON at byte"},
		{"empty", ``, "application/json", http.StatusBadRequest, "", "empty"},
		{"not an object", `[1]`, "application/json", http.StatusBadRequest, "", "must be a JSON object"},
		{"unknown field", `{"health":{"status":"ok"},"colour":"red"}`, "application/json", http.StatusBadRequest, "colour", "unknown field"},
		{"wrong type", `{"health":{"status":5}}`, "application/json", http.StatusBadRequest, "health.status", "must be a string"},
		{"trailing data", string(valid) + `{}`, "application/json", http.StatusBadRequest, "", "after the JSON object"},
		{"bad health", `{"health":{"status":"great"}}`, "application/json", http.StatusBadRequest, "health.status", `"great"`},
		{"bad profile outcome", `{"health":{"status":"ok"},"profile":{"last":{"status":"maybe"}}}`, "application/json", http.StatusBadRequest, "profile.last.status", "maybe"},
		{"too many records", many, "application/json", http.StatusBadRequest, "outbox", "at most 200"},
		{"long version", `{"health":{"status":"ok"},"inventory":{"versions":{"roomd":"` + strings.Repeat("9", 2000) + `"}}}`, "application/json", http.StatusBadRequest, "inventory.versions.roomd", "at most"},
		{"wrong content type", valid, "text/plain", http.StatusUnsupportedMediaType, "", "application/json"},
	} {
		a, err := e.post(c, fleetapi.PathCheckIn, tc.body, tc.contentType)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wantProblem(t, tc.name, a, tc.status, fleetapi.CodeBadRequest, tc.field)
		if !strings.Contains(a.problem.Detail, tc.detail) {
			t.Errorf("%s: detail %q does not say %q", tc.name, a.problem.Detail, tc.detail)
		}
	}
	dev, _ := e.st.Device(e.ctx, d.id)
	events, _ := e.st.DeviceEvents(e.ctx, d.id, 0)
	if !dev.LastCheckIn.IsZero() || len(events) != 0 {
		t.Fatalf("refused check-ins stored something: %+v, %d events", dev, len(events))
	}
	// Enrollment bodies are strict too, and nothing is enrolled.
	a := e.mustPost(e.client(nil), fleetapi.PathEnroll, `{"code":"X","csr":"not base64!"}`, http.StatusBadRequest)
	wantProblem(t, "CSR not base64", a, http.StatusBadRequest, fleetapi.CodeBadRequest, "")
	a = e.mustPost(e.client(nil), fleetapi.PathEnroll, `{"code":"X","facts":{"model":"R1","ram":4}}`, http.StatusBadRequest)
	wantProblem(t, "unknown fact", a, http.StatusBadRequest, fleetapi.CodeBadRequest, "ram")
	if devs, _ := e.st.Devices(e.ctx, ""); len(devs) != 1 {
		t.Fatalf("%d devices after refused enrollments", len(devs))
	}
	// Methods and paths.
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.ts.URL+fleetapi.PathCheckIn, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET check-in: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	wantProblem(t, "unknown path", e.mustPost(c, "/device/v1/nope", `{}`, http.StatusNotFound), http.StatusNotFound, fleetapi.CodeBadRequest, "")
}

func testOutbox(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	other := e.enroll()
	c := e.client(&d.cert)
	cmd, _, err := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: d.id, Kind: fleetapi.CommandReboot, IdempotencyKey: "r"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: other.id, Kind: fleetapi.CommandReboot, IdempotencyKey: "r"})
	outbox := []fleetapi.Record{
		{Key: "ev-1", At: e.clock.Now().Add(-time.Hour), Event: &fleetapi.Event{Type: "meeting.joined", Message: "Joined Demo"}},
		{Key: "res-1", Result: &fleetapi.Result{CommandID: cmd.ID, Status: fleetapi.ResultFailed, Detail: "meeting in progress"}},
		{Key: "res-2", Result: &fleetapi.Result{CommandID: foreign.ID, Status: fleetapi.ResultSucceeded}},
		{Key: "bad-1"},
	}
	for range 2 { // the answer was lost: the device sends the same again
		resp := decodeResp[fleetapi.CheckInResponse](t, e.mustPost(c, fleetapi.PathCheckIn, checkIn(outbox...), http.StatusOK))
		if !reflect.DeepEqual(resp.Acked, []string{"ev-1", "res-1", "res-2", "bad-1"}) {
			t.Fatalf("acked %q", resp.Acked)
		}
	}
	events, err := e.st.DeviceEvents(e.ctx, d.id, 0)
	if err != nil || len(events) != 4 {
		t.Fatalf("%d events stored (%v), want 4", len(events), err)
	}
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	if want := []string{"meeting.joined", store.EventCommandResult, store.EventResultIgnored, store.EventRecordRejected}; !reflect.DeepEqual(types, want) {
		t.Fatalf("event types %q, want %q", types, want)
	}
	if got, _ := e.st.Command(e.ctx, cmd.ID); got.Status != store.CommandFailed || got.Result != "meeting in progress" {
		t.Fatalf("command %+v", got)
	}
	if got, _ := e.st.Command(e.ctx, foreign.ID); got.Status != store.CommandQueued {
		t.Fatalf("another device's result changed its command: %+v", got)
	}
	// A different result for the ended command under a new key changes
	// nothing.
	e.mustPost(c, fleetapi.PathCheckIn, checkIn(fleetapi.Record{Key: "res-3",
		Result: &fleetapi.Result{CommandID: cmd.ID, Status: fleetapi.ResultSucceeded}}), http.StatusOK)
	if got, _ := e.st.Command(e.ctx, cmd.ID); got.Status != store.CommandFailed {
		t.Fatalf("ended command changed to %s", got.Status)
	}
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testLogs(t *testing.T, eng engine) {
	e := newEnv(t, eng, nil)
	d := e.enroll()
	other := e.enroll()
	c := e.client(&d.cert)
	logs, _, _ := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: d.id, Kind: fleetapi.CommandCollectLogs, IdempotencyKey: "l"})
	reboot, _, _ := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: d.id, Kind: fleetapi.CommandReboot, IdempotencyKey: "r"})
	foreign, _, _ := e.st.EnqueueCommand(e.ctx, "alice", store.NewCommand{DeviceID: other.id, Kind: fleetapi.CommandCollectLogs, IdempotencyKey: "l"})
	bundle := gz(t, []byte("Mar 01 09:00 roomd[1]: started\n"))
	upload := func(command string, body []byte, contentType string) answer {
		t.Helper()
		a, err := e.post(c, fleetapi.PathLogs+"?command="+command, body, contentType)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := upload(logs.ID, bundle, "application/gzip"); a.status != http.StatusNoContent {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	meta, got, err := e.st.LogBundle(e.ctx, logs.ID)
	if err != nil || !bytes.Equal(got, bundle) || meta.DeviceID != d.id {
		t.Fatalf("stored bundle %+v, %v", meta, err)
	}
	wantProblem(t, "not gzip", upload(logs.ID, []byte("plain text"), "application/gzip"), http.StatusBadRequest, fleetapi.CodeBadRequest, "")
	wantProblem(t, "wrong type", upload(logs.ID, bundle, "application/json"), http.StatusUnsupportedMediaType, fleetapi.CodeBadRequest, "")
	wantProblem(t, "no command", upload("", bundle, "application/gzip"), http.StatusBadRequest, fleetapi.CodeBadRequest, "command")
	wantProblem(t, "a reboot command", upload(reboot.ID, bundle, "application/gzip"), http.StatusBadRequest, fleetapi.CodeBadRequest, "command")
	wantProblem(t, "another device's command", upload(foreign.ID, bundle, "application/gzip"), http.StatusNotFound, fleetapi.CodeBadRequest, "command")
	wantProblem(t, "unknown command", upload("nope", bundle, "application/gzip"), http.StatusNotFound, fleetapi.CodeBadRequest, "command")
	huge := append(gz(t, nil), make([]byte, fleetapi.MaxLogBundle)...)
	wantProblem(t, "oversized", upload(logs.ID, huge, "application/gzip"), http.StatusRequestEntityTooLarge, fleetapi.CodeBadRequest, "")
	if _, got, _ := e.st.LogBundle(e.ctx, logs.ID); !bytes.Equal(got, bundle) {
		t.Fatalf("a refused upload replaced the bundle")
	}
	if _, _, err := e.st.LogBundle(e.ctx, foreign.ID); err == nil {
		t.Fatalf("another device's command got a bundle")
	}
	// A second upload replaces the first.
	second := gz(t, []byte("again\n"))
	if a := upload(logs.ID, second, "application/gzip"); a.status != http.StatusNoContent {
		t.Fatalf("second upload: %d %s", a.status, a.body)
	}
	if _, got, _ := e.st.LogBundle(e.ctx, logs.ID); !bytes.Equal(got, second) {
		t.Fatalf("second upload did not replace the first")
	}
}

// TestNewOptions needs no database: bad options are refused at New.
func TestNewOptions(t *testing.T) {
	st, authority := &store.Store{}, &ca.CA{}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no store", Options{CA: authority}},
		{"no CA", Options{Store: st}},
		{"interval under a second", Options{Store: st, CA: authority, CheckInInterval: time.Millisecond}},
		{"lifetime too long", Options{Store: st, CA: authority, CertLifetime: ca.MaxLifetime + time.Hour}},
		{"negative lifetime", Options{Store: st, CA: authority, CertLifetime: -time.Hour}},
		{"zero burst", Options{Store: st, CA: authority, EnrollPerClient: RateLimit{Every: time.Second}}},
		{"zero refill", Options{Store: st, CA: authority, EnrollFailures: RateLimit{Burst: 3}}},
	} {
		if _, err := New(tc.opts); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := New(Options{Store: st, CA: authority}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
