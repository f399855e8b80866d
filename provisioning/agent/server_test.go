package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// fakeServer speaks the device API of fleetapi over real TLS, with the
// fleet's real CA: enrollment without a client certificate, everything else
// with one. Its knobs are fields, set under mu.
type fakeServer struct {
	t     *testing.T
	ca    *ca.CA
	url   string
	caPEM []byte
	// caPin is the SHA-256 of the CA certificate, which the server
	// presents in its chain.
	caDER []byte
	srv   *http.Server

	mu           sync.Mutex
	codes        map[string]string // code → "" (valid), or a problem code
	nextDevice   int
	certLifetime time.Duration
	interval     int
	down         bool   // answer 503
	retryAfter   string // with this Retry-After
	revoked      map[string]bool
	unauthorized bool
	// refuseInHandshake refuses these devices in the TLS handshake, as
	// fleetd's revocation check does.
	refuseInHandshake map[string]bool
	// dropIf, when it says so, loses a check-in's answer after storing
	// what it carried (the network died on the way back).
	dropIf func(ci fleetapi.CheckIn) bool
	// keepListing keeps listing commands whose results are stored (a
	// server lagging behind).
	keepListing bool
	// onCheckIn runs after a check-in is stored, before its answer.
	onCheckIn  func(ci fleetapi.CheckIn)
	checkIns   int
	renewals   int
	deliveries map[string]int             // outbox key → times received
	history    map[string]fleetapi.Record // what the console shows, once per key
	order      []string
	profile    fleetapi.EffectiveProfile
	commands   []fleetapi.Command
	logs       map[string][]byte
	last       fleetapi.CheckIn
	// update is the offer in every check-in's answer.
	update *fleetapi.UpdateOffer
}

func startFakeServer(t *testing.T, clk *fakeClock) *fakeServer {
	t.Helper()
	c, err := ca.Open(ca.Options{Dir: t.TempDir(), Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := c.ServerCert(0)
	if err != nil {
		t.Fatal(err)
	}
	// Present the CA too, so a device may pin it.
	serverCert.Certificate = append(serverCert.Certificate, c.Certificate().Raw)
	s := &fakeServer{
		t: t, ca: c, caPEM: c.Bundle(), caDER: c.Certificate().Raw,
		codes: map[string]string{}, revoked: map[string]bool{}, refuseInHandshake: map[string]bool{},
		deliveries: map[string]int{}, history: map[string]fleetapi.Record{}, logs: map[string][]byte{},
		interval: 60,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler: http.HandlerFunc(s.serve),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{serverCert},
			// Enrollment comes without a certificate; the handler
			// requires one everywhere else.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  c.Pool(),
			Time:       clk.Now,
			// Like fleetd's ca.ServerTLS when refuseInHandshake is set:
			// a revoked certificate fails the handshake.
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return nil
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.refuseInHandshake[cs.PeerCertificates[0].Subject.CommonName] {
					return errors.New("revoked")
				}
				return nil
			},
		},
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 5 * time.Second,
	}
	s.srv.SetKeepAlivesEnabled(false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		<-done
	})
	return s
}

func (s *fakeServer) newCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := fmt.Sprintf("CODE-%d", len(s.codes)+1)
	s.codes[code] = ""
	return code
}

func (s *fakeServer) problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(fleetapi.Problem{Status: status, Code: code, Detail: detail})
}

func (s *fakeServer) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, fleetapi.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.problem(w, 400, fleetapi.CodeBadRequest, err.Error())
		return false
	}
	return true
}

func (s *fakeServer) sign(csr []byte, device string) (string, error) {
	s.mu.Lock()
	lifetime := s.certLifetime
	s.mu.Unlock()
	der, _, _, err := s.ca.Sign(csr, device, lifetime)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

func (s *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, fleetapi.PathUpdates) {
		// The release repository, behind the device certificate: the
		// answer names the device the certificate says.
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			s.problem(w, 401, fleetapi.CodeUnauthorized, "no device certificate")
			return
		}
		fmt.Fprintf(w, "%s for %s", r.URL.Path, r.TLS.PeerCertificates[0].Subject.CommonName)
		return
	}
	if r.Method != http.MethodPost {
		s.problem(w, 405, fleetapi.CodeBadRequest, "POST only")
		return
	}
	if r.URL.Path == fleetapi.PathEnroll {
		s.enroll(w, r)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		s.problem(w, 401, fleetapi.CodeUnauthorized, "no device certificate")
		return
	}
	cert := r.TLS.PeerCertificates[0]
	device := cert.Subject.CommonName
	s.mu.Lock()
	revoked, down, retry := s.revoked[device], s.down, s.retryAfter
	s.mu.Unlock()
	if down {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		s.problem(w, 503, fleetapi.CodeInternal, "down for maintenance")
		return
	}
	if revoked {
		s.problem(w, 403, fleetapi.CodeRevoked, "this device was revoked")
		return
	}
	s.mu.Lock()
	unauthorized := s.unauthorized
	s.mu.Unlock()
	if unauthorized {
		s.problem(w, 401, fleetapi.CodeUnauthorized, "certificate not accepted")
		return
	}
	switch r.URL.Path {
	case fleetapi.PathCheckIn:
		s.checkIn(w, r)
	case fleetapi.PathRenew:
		var req fleetapi.RenewRequest
		if !s.decode(w, r, &req) {
			return
		}
		certPEM, err := s.sign(req.CSR, device)
		if err != nil {
			s.problem(w, 400, fleetapi.CodeBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		s.renewals++
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(fleetapi.RenewResponse{Certificate: certPEM, CABundle: string(s.caPEM)})
	case fleetapi.PathLogs:
		if r.Header.Get("Content-Type") != "application/gzip" {
			s.problem(w, 415, fleetapi.CodeBadRequest, "gzip only")
			return
		}
		data, _ := io.ReadAll(io.LimitReader(r.Body, fleetapi.MaxLogBundle+1))
		s.mu.Lock()
		s.logs[r.URL.Query().Get("command")] = data
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		s.problem(w, 404, fleetapi.CodeBadRequest, "no such path")
	}
}

func (s *fakeServer) enroll(w http.ResponseWriter, r *http.Request) {
	var req fleetapi.EnrollRequest
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	state, ok := s.codes[req.Code]
	if ok && state == "" {
		s.codes[req.Code] = fleetapi.CodeUsedCode
		s.nextDevice++
	}
	device := fmt.Sprintf("dev-%d", s.nextDevice)
	interval := s.interval
	s.mu.Unlock()
	switch {
	case !ok:
		s.problem(w, 400, fleetapi.CodeInvalidCode, "no such code")
		return
	case state != "":
		s.problem(w, 400, state, "code not usable")
		return
	}
	certPEM, err := s.sign(req.CSR, device)
	if err != nil {
		s.problem(w, 400, fleetapi.CodeBadRequest, err.Error())
		return
	}
	_ = json.NewEncoder(w).Encode(fleetapi.EnrollResponse{
		DeviceID: device, RoomID: "room-1", RoomName: req.RoomName,
		Certificate: certPEM, CABundle: string(s.caPEM), CheckInSeconds: interval,
	})
}

func (s *fakeServer) checkIn(w http.ResponseWriter, r *http.Request) {
	var ci fleetapi.CheckIn
	if !s.decode(w, r, &ci) {
		return
	}
	s.mu.Lock()
	s.checkIns++
	s.last = ci
	resp := fleetapi.CheckInResponse{CheckInSeconds: s.interval, Acked: []string{}, Profile: s.profile, Update: s.update}
	for _, rec := range ci.Outbox {
		s.deliveries[rec.Key]++
		if _, dup := s.history[rec.Key]; !dup {
			s.history[rec.Key] = rec
			s.order = append(s.order, rec.Key)
		}
		if rec.Result != nil && !s.keepListing {
			// A command with a stored result is over.
			for i, c := range s.commands {
				if c.ID == rec.Result.CommandID {
					s.commands = append(s.commands[:i], s.commands[i+1:]...)
					break
				}
			}
		}
		resp.Acked = append(resp.Acked, rec.Key)
	}
	resp.Commands = append([]fleetapi.Command{}, s.commands...)
	drop := s.dropIf != nil && s.dropIf(ci)
	hook := s.onCheckIn
	s.mu.Unlock()
	if hook != nil {
		hook(ci)
	}
	if drop {
		// The answer is lost: the connection dies before it is sent.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// dropResult loses the answers of the first n check-ins that carry the
// result of command id.
func (s *fakeServer) dropResult(id string, n int) {
	s.set(func(s *fakeServer) {
		s.dropIf = func(ci fleetapi.CheckIn) bool {
			for _, rec := range ci.Outbox {
				if rec.Key == resultKey(id) && n > 0 {
					n--
					return true
				}
			}
			return false
		}
	})
}

func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeServer) checkInCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkIns
}

func (s *fakeServer) lastCheckIn() fleetapi.CheckIn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// results returns the stored results of a command (at most one, if the
// server dedupes, which the test checks through deliveries).
func (s *fakeServer) result(commandID string) (fleetapi.Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.history[resultKey(commandID)]
	if !ok {
		return fleetapi.Result{}, false
	}
	return *rec.Result, true
}

func (s *fakeServer) delivered(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliveries[key]
}

// events lists the stored events of a type, in order.
func (s *fakeServer) events(typ string) []fleetapi.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fleetapi.Record
	for _, k := range s.order {
		if rec := s.history[k]; rec.Event != nil && (typ == "" || rec.Event.Type == typ) {
			out = append(out, rec)
		}
	}
	return out
}

func (s *fakeServer) addCommand(id, kind, args string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := fleetapi.Command{ID: id, Kind: kind}
	if args != "" {
		c.Args = json.RawMessage(args)
	}
	s.commands = append(s.commands, c)
}

func (s *fakeServer) setProfile(t *testing.T, body string) string {
	t.Helper()
	v, err := fleetapi.ProfileVersion(json.RawMessage(body))
	if err != nil {
		t.Fatal(err)
	}
	s.set(func(s *fakeServer) { s.profile = fleetapi.EffectiveProfile{Version: v, Body: json.RawMessage(body)} })
	return v
}
