package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Device is roomd as the agent sees it.
type Device interface {
	// Report is the room's state for a check-in.
	Report(ctx context.Context) Report
	// ApplyProfile validates and applies p as the fleet's whole layer of
	// settings: a key absent from p goes back to the device's own setting.
	// All keys or none: an error means p was refused and nothing changed.
	ApplyProfile(ctx context.Context, p fleetapi.Profile) error
	// Healthy is nil while roomd is healthy; it is watched after a
	// profile is applied.
	Healthy(ctx context.Context) error
	// Execute runs roomd's own commands: leave-meeting, join and
	// network-test. The output, if any, is JSON for the console.
	Execute(ctx context.Context, cmd fleetapi.Command) (output json.RawMessage, err error)
	// CollectLogs returns a gzip-compressed bundle of roomd's logs since
	// the given time, at most maxBytes long.
	CollectLogs(ctx context.Context, since time.Time, maxBytes int64) ([]byte, error)
}

// Power reboots the device (login1 in roomd).
type Power interface {
	Reboot(ctx context.Context) error
}

// Wiper erases roomd's state and the device identity; roomd restarts
// afterwards.
type Wiper interface {
	FactoryReset(ctx context.Context) error
}

// Report is what Device.Report returns for a check-in.
type Report struct {
	Inventory   fleetapi.Inventory
	Health      fleetapi.Health
	Meeting     fleetapi.Meeting
	CallQuality *fleetapi.CallQuality
	// Update is the update engine's state, sent as CheckIn.Update; nil
	// when the device does not update itself.
	Update *fleetapi.UpdateStatus
}

// Updates receives the fleet's update offer after every successful
// check-in (roomd's update engine). The agent calls it from its check-in
// loop, so it must return at once: keep the offer and act on it
// elsewhere. A nil offer means the fleet offers nothing (any more).
type Updates interface {
	OfferUpdate(ctx context.Context, offer *fleetapi.UpdateOffer)
}

// Defaults of Options.
const (
	DefaultCheckIn        = 60 * time.Second
	DefaultSettlePeriod   = 30 * time.Second
	DefaultHealthPoll     = 5 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	// MaxBackoff caps the wait between failed check-ins.
	MaxBackoff = 5 * time.Minute
	// RevokedInterval is how often a revoked device still asks, in case
	// the fleet takes it back.
	RevokedInterval = 6 * time.Hour
	// minBackoff is the first wait after a failure.
	minBackoff = 5 * time.Second
	// deliverTimeout bounds the check-in that delivers a reboot's or
	// factory reset's result before acting.
	deliverTimeout = 20 * time.Second
	// minInterval and maxInterval bound the server's interval, so a
	// mistaken answer neither floods the server nor silences the device.
	minInterval = 10 * time.Second
	maxInterval = 24 * time.Hour
)

// Options configure New.
type Options struct {
	// StateDir is the agent's own directory (created 0700), e.g.
	// <roomd state>/fleet. Required.
	StateDir string
	// Server is fleetd's device API base URL (https://host:port), used to
	// enroll; afterwards the server stored at enrollment is used.
	Server string
	// ServerCA (PEM) or ServerCAPin is the trust for enrollment, before
	// the fleet's CA bundle is known; neither means the system roots, and
	// not both. The pin is the SHA-256 (hex, colons and a "sha256:" prefix
	// allowed) of a certificate the server presents: the fleet CA's when
	// fleetd sends it in its chain, else the server's own; the server's
	// certificate must chain to it and name the host.
	ServerCA    []byte
	ServerCAPin string
	// Signer is the device key; CSR makes a fresh request signed by it.
	// Both required (provisioning/identity provides them).
	Signer crypto.Signer
	CSR    func() ([]byte, error)
	// Facts are sent with the enrollment.
	Facts fleetapi.Facts
	// Device is roomd. Required.
	Device Device
	// Power and Wiper carry out reboot and factory reset; nil refuses
	// those commands.
	Power Power
	Wiper Wiper
	// Updates receives update offers; nil ignores them.
	Updates Updates
	// Version is roomd's version for the inventory.
	Version string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Clock defaults to the system clock.
	Clock Clock
	// Rand draws the jitter (used by Run's goroutine only); default
	// seeded randomly.
	Rand *mrand.Rand
	// Dial opens connections to the server; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// SettlePeriod is how long roomd must stay healthy after a profile
	// is applied (default DefaultSettlePeriod); HealthPoll how often it
	// is asked in that time (default DefaultHealthPoll).
	SettlePeriod time.Duration
	HealthPoll   time.Duration
	// RequestTimeout bounds one call to the server (default
	// DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// Agent states in Status.
const (
	StateNotEnrolled = "not-enrolled"
	StateEnrolled    = "enrolled"
	// StateRevoked: the fleet revoked the device; it must enroll again.
	StateRevoked = "revoked"
	// StateExpired: the certificate expired before it could be renewed
	// (the device was offline for too long); it must enroll again.
	StateExpired = "expired"
)

// Status is the agent's state for the kiosk and roomctl.
type Status struct {
	// State is StateNotEnrolled, StateEnrolled, StateRevoked or
	// StateExpired (the last two must enroll again).
	State string
	// Enrolled: the device holds an enrollment (revoked or expired ones
	// too); DeviceID, RoomName, Server and CertNotAfter describe it.
	Enrolled       bool
	DeviceID       string
	RoomName       string
	Server         string
	LastCheckIn    time.Time // last successful one
	LastError      string    // of the last attempt; "" after a success
	NextCheckIn    time.Time
	CertNotAfter   time.Time
	ProfileApplied string
	ProfileLast    fleetapi.ProfileOutcome
	Outbox         int
}

// Agent is the fleet agent. Its methods are safe for concurrent use; Run
// is called once.
type Agent struct {
	opts  Options
	log   *slog.Logger
	clock Clock
	rnd   *mrand.Rand
	pin   []byte

	outbox  *outbox
	journal *journal
	wake    chan struct{}

	// opMu serialises Enroll with Run's cycles, so an identity is never
	// replaced under a check-in.
	opMu sync.Mutex

	mu          sync.Mutex // guards the fields below
	id          *enrollment
	interval    time.Duration
	lastCheckIn time.Time
	lastErr     string
	nextCheckIn time.Time
	prof        profileState
	running     bool
}

// New opens the agent's state in opts.StateDir. Damaged enrollment files
// do not stop it: the agent starts unenrolled, logs why, says so in
// Status().LastError, and may be enrolled again.
func New(opts Options) (*Agent, error) {
	switch {
	case opts.StateDir == "":
		return nil, errors.New("agent: Options.StateDir is empty")
	case opts.Signer == nil || opts.CSR == nil:
		return nil, errors.New("agent: Options.Signer and Options.CSR are required")
	case opts.Device == nil:
		return nil, errors.New("agent: Options.Device is required")
	case len(opts.ServerCA) > 0 && opts.ServerCAPin != "":
		return nil, errors.New("agent: give Options.ServerCA or Options.ServerCAPin, not both")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Rand == nil {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		opts.Rand = mrand.New(mrand.NewChaCha8(seed))
	}
	if opts.SettlePeriod <= 0 {
		opts.SettlePeriod = DefaultSettlePeriod
	}
	if opts.HealthPoll <= 0 {
		opts.HealthPoll = DefaultHealthPoll
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	a := &Agent{opts: opts, log: opts.Logger, clock: opts.Clock, rnd: opts.Rand, wake: make(chan struct{}, 1)}
	if opts.ServerCAPin != "" {
		pin, err := parsePin(opts.ServerCAPin)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.pin = pin
	}
	if len(opts.ServerCA) > 0 {
		if _, err := parseBundle(opts.ServerCA); err != nil {
			return nil, fmt.Errorf("agent: Options.ServerCA: %w", err)
		}
	}
	if opts.Server != "" {
		if _, _, err := endpoint(opts.Server, "", nil); err != nil {
			return nil, fmt.Errorf("agent: Options.Server: %w", err)
		}
	}
	// The agent's own directory: certificates, profiles with secrets,
	// results. Private whatever made it.
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Chmod(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var err error
	if a.outbox, err = openOutbox(filepath.Join(opts.StateDir, outboxDir), a.log); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.journal, err = openJournal(filepath.Join(opts.StateDir, journalDir), a.log); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	id, err := loadEnrollment(opts.StateDir)
	if err != nil {
		a.log.Error("fleet agent: enrollment state unusable; the device must enroll again", "err", err)
		a.lastErr = "enrollment state unusable, enroll again: " + err.Error()
	}
	a.id = id
	if id != nil {
		a.interval = secondsInterval(id.CheckInSeconds)
	}
	a.prof = a.loadProfileState()
	return a, nil
}

func secondsInterval(s int) time.Duration {
	d := time.Duration(s) * time.Second
	switch {
	case s <= 0:
		return DefaultCheckIn
	case d < minInterval:
		return minInterval
	case d > maxInterval:
		return maxInterval
	}
	return d
}

// Status returns the agent's state now.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Status{
		State:          StateNotEnrolled,
		LastCheckIn:    a.lastCheckIn,
		LastError:      a.lastErr,
		NextCheckIn:    a.nextCheckIn,
		ProfileApplied: a.prof.Applied,
		ProfileLast:    a.prof.Last,
		Outbox:         a.outbox.len(),
	}
	if id := a.id; id != nil {
		s.Enrolled = true
		s.State = StateEnrolled
		s.DeviceID, s.RoomName, s.Server = id.DeviceID, id.RoomName, id.Server
		s.CertNotAfter = id.cert.NotAfter
		switch {
		case id.Revoked:
			s.State = StateRevoked
		case !a.clock.Now().Before(id.cert.NotAfter):
			s.State = StateExpired
		}
	}
	return s
}

// LastCheckIn is the time of the last successful check-in (zero before
// one): the update health gate's proof that the fleet can reach the
// device.
func (a *Agent) LastCheckIn() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastCheckIn
}

// CheckInSoon asks for a check-in now rather than at the next interval,
// so that the fleet hears news (an update's verdict) at once. It does
// nothing while the device is not enrolled or a check-in is under way.
func (a *Agent) CheckInSoon() { a.poke() }

// UpdateHTTPClient returns an HTTP client that presents the device
// certificate to the enrolled fleet server and trusts only the fleet's CA
// bundle, together with that server's base URL: what the update engine
// fetches the release repository and images with (fleetapi.PathUpdates).
// It fails with ErrNotEnrolled before enrollment. The client follows no
// redirects and keeps no idle connections; take a fresh one for each
// piece of work, so a renewed certificate is used.
func (a *Agent) UpdateHTTPClient() (*http.Client, string, error) {
	id := a.identity()
	if id == nil {
		return nil, "", fmt.Errorf("agent: update client: %w", ErrNotEnrolled)
	}
	_, host, err := endpoint(id.Server, "", nil)
	if err != nil {
		return nil, "", fmt.Errorf("agent: update client: %w", err)
	}
	return a.httpClient(a.deviceTLS(host, id)), id.Server, nil
}

func (a *Agent) identity() *enrollment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

func (a *Agent) setError(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastErr = ""
	} else {
		a.lastErr = err.Error()
	}
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// newKey makes a record key: random, and stored with the record, so it is
// the same however often the record is sent.
func newKey(prefix string) string {
	return prefix + ":" + strings.ToLower(rand.Text())
}

// Record queues an event durably; it is delivered with a later check-in,
// once, even across restarts and outages.
func (a *Agent) Record(ev fleetapi.Event) error {
	if ev.Type == "" {
		return errors.New("agent: record: event has no type")
	}
	if len(ev.Details) > 0 && !json.Valid(ev.Details) {
		return fmt.Errorf("agent: record %s: details are not JSON", ev.Type)
	}
	rec := fleetapi.Record{Key: newKey("event"), At: a.clock.Now().UTC(), Event: &ev}
	if err := a.outbox.add(rec); err != nil {
		return fmt.Errorf("agent: record %s: %w", ev.Type, err)
	}
	return nil
}

// queueEvent records an event of the agent's own, logging a failure (the
// outcome is also in Status and the check-in's profile state).
func (a *Agent) queueEvent(typ, msg string, details any) {
	ev := fleetapi.Event{Type: typ, Message: msg}
	if details != nil {
		if b, err := json.Marshal(details); err == nil {
			ev.Details = b
		}
	}
	if err := a.Record(ev); err != nil {
		a.log.Error("fleet agent: cannot queue event", "type", typ, "err", err)
	}
}

// Enroll enrolls the device with an activation code. roomName names the
// room for a code that covers a site. A refusal by the server comes back as
// an error wrapping *fleetapi.Problem (errors.As), e.g. CodeExpiredCode.
// A device already enrolled is refused with ErrEnrolled, unless it was
// revoked or its certificate expired: those must enroll again.
func (a *Agent) Enroll(ctx context.Context, code, roomName string) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if cur := a.identity(); cur != nil && !cur.Revoked && a.clock.Now().Before(cur.cert.NotAfter) {
		return fmt.Errorf("agent: enroll: %w", ErrEnrolled)
	}
	if strings.TrimSpace(code) == "" {
		return errors.New("agent: enroll: the activation code is empty")
	}
	if a.opts.Server == "" {
		return errors.New("agent: enroll: no fleet server configured (Options.Server)")
	}
	target, host, err := endpoint(a.opts.Server, fleetapi.PathEnroll, nil)
	if err != nil {
		return fmt.Errorf("agent: enroll: %w", err)
	}
	csr, err := a.opts.CSR()
	if err != nil {
		return fmt.Errorf("agent: enroll: make CSR: %w", err)
	}
	body, err := json.Marshal(fleetapi.EnrollRequest{Code: code, CSR: csr, Facts: a.opts.Facts, RoomName: roomName})
	if err != nil {
		return fmt.Errorf("agent: enroll: %w", err)
	}
	cfg, err := a.firstContactTLS(host)
	if err != nil {
		return fmt.Errorf("agent: enroll: %w", err)
	}
	var resp fleetapi.EnrollResponse
	if err := a.post(ctx, a.httpClient(cfg), target, "application/json", body, &resp); err != nil {
		return fmt.Errorf("agent: enroll at %s: %w", a.opts.Server, err)
	}
	if resp.DeviceID == "" || strings.ContainsFunc(resp.DeviceID, func(r rune) bool { return r < ' ' }) {
		return fmt.Errorf("agent: enroll: device ID %q: %w", resp.DeviceID, ErrBadEnrollment)
	}
	cert, roots, err := a.checkIssued([]byte(resp.Certificate), []byte(resp.CABundle))
	if err != nil {
		return fmt.Errorf("agent: enroll: %w", err)
	}
	id := &enrollment{
		DeviceID: resp.DeviceID, RoomID: resp.RoomID, RoomName: resp.RoomName,
		Server: a.opts.Server, CheckInSeconds: resp.CheckInSeconds, EnrolledAt: a.clock.Now().UTC(),
		cert: cert, roots: roots,
	}
	if err := saveEnrollment(a.opts.StateDir, id, []byte(resp.Certificate), []byte(resp.CABundle)); err != nil {
		return fmt.Errorf("agent: enroll: store: %w", err)
	}
	a.mu.Lock()
	a.id = id
	a.interval = secondsInterval(resp.CheckInSeconds)
	a.lastErr = ""
	a.mu.Unlock()
	a.log.Info("fleet agent: enrolled", "device", id.DeviceID, "room", id.RoomName, "server", id.Server, "cert_not_after", cert.NotAfter)
	a.queueEvent("enrolled", "enrolled in room "+id.RoomName, nil)
	a.poke()
	return nil
}

// checkIssued verifies a certificate the server issued: for this device's
// key, for client authentication, chaining to the bundle that comes with
// it.
func (a *Agent) checkIssued(certPEM, caPEM []byte) (*x509.Certificate, *x509.CertPool, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w: %w", err, ErrBadEnrollment)
	}
	roots, err := parseBundle(caPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA bundle: %w: %w", err, ErrBadEnrollment)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := a.opts.Signer.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("certificate is not for this device's key: %w", ErrBadEnrollment)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: a.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, nil, fmt.Errorf("certificate does not verify against the CA bundle: %w: %w", err, ErrBadEnrollment)
	}
	return cert, roots, nil
}

// Run checks in until ctx ends. While the device is not enrolled it only
// waits for Enroll. It returns nil when ctx ends; server or network
// failures never end it.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.running = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()

	a.opMu.Lock()
	a.recover(ctx)
	a.opMu.Unlock()

	failures := 0
	for {
		a.opMu.Lock()
		wait, ok := a.cycle(ctx, &failures)
		a.opMu.Unlock()

		if ok {
			if !a.wait(ctx, wait) {
				return nil
			}
			continue
		}
		a.mu.Lock()
		a.nextCheckIn = time.Time{}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		}
	}
}

// wait waits until the next check-in, watching a settling profile every
// HealthPoll meanwhile; a verdict on it ends the wait early, so the server
// hears it at once. It returns false when ctx ended.
func (a *Agent) wait(ctx context.Context, d time.Duration) bool {
	next := a.clock.Now().Add(d)
	a.mu.Lock()
	a.nextCheckIn = next
	a.mu.Unlock()
	for {
		left := next.Sub(a.clock.Now())
		if left <= 0 {
			return true
		}
		settling := a.isSettling()
		step := left
		if settling {
			step = min(step, a.opts.HealthPoll)
		}
		t := a.clock.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-a.wake:
			t.Stop()
			return true
		case <-t.C():
		}
		if settling {
			a.opMu.Lock()
			verdict := a.watchSettling(ctx)
			a.opMu.Unlock()
			if verdict {
				return true
			}
		}
	}
}

// cycle is one turn of the loop: renew if due, check in, act on the
// answer. It returns the wait until the next turn, or ok false to wait for
// Enroll.
func (a *Agent) cycle(ctx context.Context, failures *int) (wait time.Duration, ok bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	id := a.identity()
	if id == nil {
		return 0, false
	}
	now := a.clock.Now()
	if !now.Before(id.cert.NotAfter) {
		a.setError(fmt.Errorf("the device certificate expired on %s before it could be renewed; enroll the device again with a new code", id.cert.NotAfter.UTC().Format(time.RFC3339)))
		return 0, false
	}
	if !now.Before(renewAt(id.cert)) {
		if err := a.renew(ctx, id); err != nil {
			a.log.Warn("fleet agent: certificate renewal failed; retrying at the next check-in", "err", err)
		}
		id = a.identity()
	}
	resp, err := a.checkIn(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false
		}
		return a.failed(id, err, failures), true
	}
	*failures = 0
	a.mu.Lock()
	a.lastCheckIn = a.clock.Now()
	a.lastErr = ""
	a.interval = secondsInterval(resp.CheckInSeconds)
	interval := a.interval
	a.mu.Unlock()
	if id.Revoked {
		a.setRevoked(id, false)
	}
	if a.opts.Updates != nil {
		a.opts.Updates.OfferUpdate(ctx, resp.Update)
	}
	if !a.handle(ctx, id, resp) {
		return 0, false // wiped: not enrolled any more
	}
	// ±10% so that a fleet restarted together does not check in together.
	return jitter(a.rnd, interval, 0.1), true
}

// failed records a failed check-in and returns the wait before the next.
func (a *Agent) failed(id *enrollment, err error, failures *int) time.Duration {
	*failures++
	a.setError(err)
	p := problemOf(err)
	if p != nil && p.Code == fleetapi.CodeRevoked {
		a.log.Error("fleet agent: the fleet revoked this device; it must be enrolled again", "device", id.DeviceID)
		a.setRevoked(id, true)
		return RevokedInterval
	}
	switch {
	case p != nil && p.Status == 401:
		a.setError(fmt.Errorf("%w (the server refuses the device certificate; if it persists, enroll the device again)", err))
	case p == nil && strings.Contains(err.Error(), "remote error: tls:"):
		// A server that checks revocation in the handshake answers with a
		// TLS alert, not a Problem: the agent cannot tell revoked from
		// expired or unknown, but can say where to look.
		a.setError(fmt.Errorf("%w (the server refused the device certificate during the handshake: revoked, expired or unknown to this fleet; if it persists, enroll the device again)", err))
	}
	d := backoff(a.rnd, *failures)
	var ce *CallError
	if errors.As(err, &ce) && ce.RetryAfter > d {
		d = min(ce.RetryAfter, RevokedInterval)
	}
	a.log.Warn("fleet agent: check-in failed", "err", err, "retry_in", d)
	return d
}

func (a *Agent) setRevoked(id *enrollment, revoked bool) {
	if id.Revoked == revoked {
		return
	}
	// Enrollments are never changed in place: other goroutines hold the
	// old pointer without the lock.
	next := *id
	next.Revoked = revoked
	a.mu.Lock()
	if a.id != id {
		a.mu.Unlock()
		return
	}
	a.id = &next
	a.mu.Unlock()
	if err := saveDevice(a.opts.StateDir, &next); err != nil {
		a.log.Error("fleet agent: cannot store revocation state", "err", err)
	}
}

// backoff is the wait after n failures in a row: doubling from minBackoff
// up to MaxBackoff, the upper half drawn at random.
func backoff(r *mrand.Rand, n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	return d/2 + time.Duration(r.Int64N(int64(d/2)+1))
}

// jitter spreads d by ±frac.
func jitter(r *mrand.Rand, d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 - frac + 2*frac*r.Float64()))
}

// renewAt is two thirds into the certificate's lifetime.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}
