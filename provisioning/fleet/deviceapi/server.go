package deviceapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Options configure [New]. Store and CA are required.
type Options struct {
	Store *store.Store
	CA    *ca.CA
	// Logger receives refusals and failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock for rate limits, certificate checks and TLS; nil
	// means time.Now. Give the CA the same clock.
	Now func() time.Time
	// CheckInInterval is the interval devices are told to check in at;
	// 0 means 60 s. Whole seconds.
	CheckInInterval time.Duration
	// CertLifetime is the lifetime of issued device certificates; 0 means
	// ca.DefaultLifetime (30 days).
	CertLifetime time.Duration
	// EnrollPerClient limits failed enrollment attempts per client
	// address; zero means DefaultEnrollPerClient.
	EnrollPerClient RateLimit
	// EnrollFailures limits failed enrollment attempts fleet-wide; zero
	// means DefaultEnrollFailures.
	EnrollFailures RateLimit
	// UpdatesDir is the TUF repository of releases, served as static files
	// at fleetapi.PathUpdates to devices; "" serves nothing there (404).
	UpdatesDir string
	// Releases is the catalog rollouts' offers are checked against (a
	// device is offered a release only if it lists its hardware); nil
	// makes no offers.
	Releases rollout.Catalog
	// RolloutReported, when set, is called after a check-in that moved
	// its device into a final state in a rollout (committed, failed,
	// rolled back), so the rollout can be evaluated at once. It must not
	// block.
	RolloutReported func(rolloutID string)
}

// Server is the device API. Safe for concurrent use; it starts no
// goroutines of its own.
type Server struct {
	st       *store.Store
	ca       *ca.CA
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	lifetime time.Duration
	limit    *limiter
	mux      *http.ServeMux
	releases rollout.Catalog
	reported func(string)
	updates  string // the repository directory; "" when none is served
}

// New checks the options and makes the server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.CA == nil {
		return nil, errors.New("deviceapi: Store and CA are required")
	}
	s := &Server{st: opts.Store, ca: opts.CA, log: opts.Logger, now: opts.Now,
		interval: opts.CheckInInterval, lifetime: opts.CertLifetime,
		releases: opts.Releases, reported: opts.RolloutReported}
	if opts.UpdatesDir != "" {
		fi, err := os.Stat(opts.UpdatesDir)
		if err != nil {
			return nil, fmt.Errorf("deviceapi: updates repository: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("deviceapi: updates repository %s is not a directory", opts.UpdatesDir)
		}
		s.updates = opts.UpdatesDir
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.interval == 0:
		s.interval = 60 * time.Second
	case s.interval < time.Second:
		return nil, fmt.Errorf("deviceapi: check-in interval %v is under a second", s.interval)
	}
	if s.lifetime < 0 || s.lifetime > ca.MaxLifetime {
		return nil, fmt.Errorf("deviceapi: certificate lifetime %v outside 0 to %v", s.lifetime, ca.MaxLifetime)
	}
	perClient, failures := opts.EnrollPerClient, opts.EnrollFailures
	if perClient == (RateLimit{}) {
		perClient = DefaultEnrollPerClient
	}
	if failures == (RateLimit{}) {
		failures = DefaultEnrollFailures
	}
	for _, l := range []RateLimit{perClient, failures} {
		if l.Burst < 1 || l.Every <= 0 {
			return nil, fmt.Errorf("deviceapi: rate limit %+v needs a burst of at least 1 and a positive interval", l)
		}
	}
	s.limit = newLimiter(perClient, failures, s.now)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(fleetapi.PathEnroll, s.post(s.enroll))
	s.mux.HandleFunc(fleetapi.PathCheckIn, s.post(s.device(s.checkIn)))
	s.mux.HandleFunc(fleetapi.PathRenew, s.post(s.device(s.renew)))
	s.mux.HandleFunc(fleetapi.PathLogs, s.post(s.device(s.logs)))
	s.mux.HandleFunc(fleetapi.PathUpdates, s.get(s.device(s.serveUpdate)))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem(http.StatusNotFound, fleetapi.CodeBadRequest, "", "no endpoint %s", r.URL.Path), 0)
	})
	return s, nil
}

// Handler returns the API's HTTP handler. Serve it with [Server.TLSConfig]:
// without TLS every device endpoint answers 401.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP refuses a repository path with a ".." segment before the mux,
// which would otherwise redirect it to its cleaned form elsewhere.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, fleetapi.PathUpdates) && hasDotDot(r.URL.Path) {
		writeProblem(w, problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "",
			"%q: a repository path must not contain \"..\"", r.URL.Path), 0)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// TLSConfig returns the TLS configuration to serve the API with: TLS 1.3,
// serverCert as the server's certificate, and a client certificate
// requested but not required (enrollment has none). A certificate that is
// given must chain to the fleet CA and be valid at the server's clock.
// Revocation is the handlers' check, on every request: a revoked device
// then hears 403 "revoked" and knows to stop, where a refused handshake
// would look like any network fault and be retried forever. Whether the
// certificate is the device's current one is checked there too (401).
func (s *Server) TLSConfig(serverCert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.ca.Pool(),
		Time:         s.now,
	}
}

// post refuses every method but POST.
func (s *Server) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeProblem(w, problem(http.StatusMethodNotAllowed, fleetapi.CodeBadRequest, "", "%s takes POST, not %s", r.URL.Path, r.Method), 0)
			return
		}
		h(w, r)
	}
}

// deviceHandler is a handler for an authenticated device.
type deviceHandler func(w http.ResponseWriter, r *http.Request, dev store.Device, cert *x509.Certificate)

// device authenticates the request's client certificate: it must be the
// device's current one, unexpired, and the device not revoked.
func (s *Server) device(h deviceHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeProblem(w, problem(http.StatusUnauthorized, fleetapi.CodeUnauthorized, "",
				"a device certificate issued by this fleet is required"), 0)
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		serial := ca.SerialString(cert)
		// The handshake checked the validity period, but a kept-alive
		// connection may outlive the certificate.
		if now := s.now(); now.After(cert.NotAfter) {
			writeProblem(w, problem(http.StatusUnauthorized, fleetapi.CodeUnauthorized, "",
				"the device certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339)), 0)
			return
		}
		dev, err := s.st.DeviceByCertSerial(r.Context(), serial)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.log.Info("refused a certificate that is not current", "serial", serial, "cn", cert.Subject.CommonName)
			writeProblem(w, problem(http.StatusUnauthorized, fleetapi.CodeUnauthorized, "",
				"certificate %s is not this device's current certificate; use the newest one or enroll again", serial), 0)
			return
		case err != nil:
			s.internal(w, "look up device certificate", err)
			return
		case dev.Revoked:
			writeProblem(w, problem(http.StatusForbidden, fleetapi.CodeRevoked, "",
				"device %s was revoked at %s; it must enroll again", dev.ID, dev.RevokedAt.Format(time.RFC3339)), 0)
			return
		case cert.Subject.CommonName != dev.ID:
			// Cannot happen with certificates this CA issued; refuse rather
			// than act for the wrong device.
			s.log.Error("certificate common name does not match its device", "serial", serial, "cn", cert.Subject.CommonName, "device", dev.ID)
			writeProblem(w, problem(http.StatusUnauthorized, fleetapi.CodeUnauthorized, "",
				"certificate %s does not name its device", serial), 0)
			return
		}
		h(w, r, dev, cert)
	}
}

// internal logs err and answers 500 without details.
func (s *Server) internal(w http.ResponseWriter, op string, err error) {
	s.log.Error("device API failure", "op", op, "err", err)
	writeProblem(w, problem(http.StatusInternalServerError, fleetapi.CodeInternal, "", "the server failed to %s; try again later", op), 0)
}

// clientAddr is the address rate limits count by: the peer's IP, without
// the port (a device reconnecting gets a new one).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
