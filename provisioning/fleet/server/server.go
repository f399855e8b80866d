// Package server is fleetd: the fleet's storage, its certificate
// authority, the device API (mTLS) and the web console, opened from one
// data directory and served on two listeners until the context ends.
//
// The device API listens where devices reach it (configured explicitly)
// with TLS 1.3 and a server certificate from the fleet's own CA, renewed
// while fleetd runs. The console listens on loopback by default; on any
// other address it needs a certificate and key (a browser does not trust
// the fleet's CA), and its cookies are then marked Secure.
//
// With an update repository (Options.UpdatesDir) fleetd serves it to
// devices, lists its releases to the console, offers rollouts' releases
// in check-ins, and runs the rollout loop: every running rollout is
// evaluated every Options.RolloutInterval, and at once after a check-in
// that finished a device's update, to open its next ring, halt it or
// complete it.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleet/deviceapi"
	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

// Defaults.
const (
	DefaultDeviceListen  = "127.0.0.1:8443"
	DefaultConsoleListen = "127.0.0.1:8080"
	// ServerCertLifetime is the device API's certificate's; it is renewed
	// at two thirds of it while fleetd runs.
	ServerCertLifetime = 30 * 24 * time.Hour
	// DefaultRetention is how long telemetry samples are kept.
	DefaultRetention = 30 * 24 * time.Hour
	// EventRetention is how long devices' events and command results are
	// kept: the history people look back on.
	EventRetention = 365 * 24 * time.Hour
	// maintenanceEvery is how often expired sessions and old telemetry go.
	maintenanceEvery = time.Hour
)

// Options configure Open.
type Options struct {
	// DataDir holds fleet.db (SQLite, unless PostgresDSN is set) and the
	// CA in ca/. Created (0700) if missing.
	DataDir     string
	PostgresDSN string
	// DeviceListen and ConsoleListen are host:port; defaults above.
	DeviceListen  string
	ConsoleListen string
	// ServerNames are the device API certificate's DNS names and IP
	// addresses: what devices use in fleet.server. Default "localhost".
	ServerNames []string
	// ConsoleCert and ConsoleKey are PEM files for serving the console
	// over HTTPS; required when ConsoleListen is not loopback.
	ConsoleCert, ConsoleKey string
	CheckInInterval         time.Duration // default deviceapi's
	Retention               time.Duration // telemetry; default DefaultRetention
	Logger                  *slog.Logger
	Now                     func() time.Time
	// UpdatesDir is the TUF repository of releases (made by the release
	// tool): served to devices at fleetapi.PathUpdates, and the catalog
	// rollouts pick their release from. "" means no updates: no releases,
	// no offers.
	UpdatesDir string
	// RolloutInterval is how often running rollouts are evaluated
	// (advance, halt, complete); default DefaultRolloutInterval. A
	// check-in that finishes a device's update also evaluates its rollout
	// at once.
	RolloutInterval time.Duration
	// OfflineGrace is how long a device may go without checking in
	// before it stops holding its ring back; default
	// rollout.DefaultOfflineGrace.
	OfflineGrace time.Duration
}

// DefaultRolloutInterval is Options.RolloutInterval's default.
const DefaultRolloutInterval = 30 * time.Second

// Server is a running fleetd's parts.
type Server struct {
	opts    Options
	log     *slog.Logger
	Store   *store.Store
	CA      *ca.CA
	Device  *deviceapi.Server
	Console *console.Console
	// Releases is the update repository's catalog; nil without
	// Options.UpdatesDir.
	Releases rollout.Catalog
	// evaluate asks the rollout loop to evaluate one rollout now
	// (buffered; a full queue means an evaluation of everything is due
	// anyway).
	evaluate chan string

	mu         sync.Mutex
	serverCert *tls.Certificate
	deviceLn   net.Listener
	consoleLn  net.Listener
}

// Open opens the storage and the CA and builds both APIs; it does not
// listen yet.
func Open(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("fleetd: a data directory is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeviceListen == "" {
		opts.DeviceListen = DefaultDeviceListen
	}
	if opts.ConsoleListen == "" {
		opts.ConsoleListen = DefaultConsoleListen
	}
	if len(opts.ServerNames) == 0 {
		opts.ServerNames = []string{"localhost"}
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.RolloutInterval == 0 {
		opts.RolloutInterval = DefaultRolloutInterval
	}
	if opts.OfflineGrace == 0 {
		opts.OfflineGrace = rollout.DefaultOfflineGrace
	}
	if opts.RolloutInterval < 0 || opts.OfflineGrace < 0 {
		return nil, fmt.Errorf("fleetd: rollout interval %v and offline grace %v must be positive", opts.RolloutInterval, opts.OfflineGrace)
	}
	if err := checkConsoleListen(opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("fleetd: data directory: %w", err)
	}
	so := store.Options{Logger: opts.Logger.With("subsystem", "store"), Now: opts.Now}
	if opts.PostgresDSN != "" {
		so.PostgresDSN = opts.PostgresDSN
	} else {
		so.SQLitePath = filepath.Join(opts.DataDir, "fleet.db")
	}
	st, err := store.Open(ctx, so)
	if err != nil {
		return nil, fmt.Errorf("fleetd: %w", err)
	}
	authority, err := ca.Open(ca.Options{Dir: filepath.Join(opts.DataDir, "ca"), Now: opts.Now, Logger: opts.Logger.With("subsystem", "ca")})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("fleetd: %w", err)
	}
	srv := &Server{opts: opts, log: opts.Logger, Store: st, CA: authority, evaluate: make(chan string, evaluateQueue)}
	if opts.UpdatesDir != "" {
		srv.Releases = rollout.NewRepoCatalog(opts.UpdatesDir)
	}
	srv.Device, err = deviceapi.New(deviceapi.Options{
		Store: st, CA: authority, Logger: opts.Logger.With("subsystem", "device-api"), Now: opts.Now,
		CheckInInterval: opts.CheckInInterval,
		UpdatesDir:      opts.UpdatesDir, Releases: srv.Releases, RolloutReported: srv.evaluateSoon,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("fleetd: device API: %w", err)
	}
	srv.Console, err = console.New(console.Options{
		Store: st, Logger: opts.Logger.With("subsystem", "console"), Now: opts.Now,
		SecureCookies: opts.ConsoleCert != "", Releases: srv.Releases,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("fleetd: console: %w", err)
	}
	return srv, nil
}

func checkConsoleListen(opts Options) error {
	if (opts.ConsoleCert == "") != (opts.ConsoleKey == "") {
		return errors.New("fleetd: the console needs both a certificate and a key, or neither")
	}
	host, _, err := net.SplitHostPort(opts.ConsoleListen)
	if err != nil {
		return fmt.Errorf("fleetd: console address %q: %w", opts.ConsoleListen, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && opts.ConsoleCert == "" {
		return fmt.Errorf("fleetd: the console on %s, a non-loopback address, needs a certificate and key (passwords must not cross a network in clear text)", opts.ConsoleListen)
	}
	return nil
}

// Listen opens both listeners; DeviceAddr and ConsoleAddr then say where
// they are (useful with port 0).
func (s *Server) Listen() error {
	dl, err := net.Listen("tcp", s.opts.DeviceListen)
	if err != nil {
		return fmt.Errorf("fleetd: device API: %w", err)
	}
	cl, err := net.Listen("tcp", s.opts.ConsoleListen)
	if err != nil {
		dl.Close()
		return fmt.Errorf("fleetd: console: %w", err)
	}
	s.mu.Lock()
	s.deviceLn, s.consoleLn = dl, cl
	s.mu.Unlock()
	return nil
}

// DeviceAddr is the device API's listening address.
func (s *Server) DeviceAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.deviceLn.Addr() }

// ConsoleAddr is the console's listening address.
func (s *Server) ConsoleAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.consoleLn.Addr() }

// Run serves until ctx ends (calling Listen first if it was not), then
// shuts both servers down and closes the store.
func (s *Server) Run(ctx context.Context) error {
	defer s.Store.Close()
	s.mu.Lock()
	listening := s.deviceLn != nil
	s.mu.Unlock()
	if !listening {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	if _, err := s.currentServerCert(); err != nil {
		return err
	}
	base := s.Device.TLSConfig(tls.Certificate{})
	devTLS := base.Clone()
	devTLS.Certificates = nil
	devTLS.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.currentServerCert() }

	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	devSrv := &http.Server{Handler: s.Device.Handler(), TLSConfig: devTLS, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, IdleTimeout: 5 * time.Minute, ErrorLog: errLog}
	conSrv := &http.Server{Handler: s.Console.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		s.log.Info("device API listening", "addr", s.DeviceAddr().String(), "names", s.opts.ServerNames)
		if err := devSrv.ServeTLS(s.deviceLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("fleetd: device API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		scheme := "http"
		var err error
		if s.opts.ConsoleCert != "" {
			scheme = "https"
			conSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			s.log.Info("console listening", "url", scheme+"://"+s.ConsoleAddr().String()+"/")
			err = conSrv.ServeTLS(s.consoleLn, s.opts.ConsoleCert, s.opts.ConsoleKey)
		} else {
			s.log.Info("console listening", "url", scheme+"://"+s.ConsoleAddr().String()+"/")
			err = conSrv.Serve(s.consoleLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("fleetd: console: %w", err)
		}
		return nil
	})
	g.Go(func() error { s.maintain(gctx); return nil })
	g.Go(func() error { s.rollouts(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		for _, srv := range []*http.Server{devSrv, conSrv} {
			// Requests still running after the grace period (an overloaded
			// store) are cut: the devices retry, and a stop is not a failure.
			if err := srv.Shutdown(shut); err != nil {
				s.log.Warn("requests cut at shutdown", "err", err)
				_ = srv.Close()
			}
		}
		return nil
	})
	return g.Wait()
}

// currentServerCert returns the device API's certificate, issuing a new
// one at start and when two thirds of its life are gone.
func (s *Server) currentServerCert() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.serverCert; c != nil && s.opts.Now().Before(ca.RenewAt(c.Leaf.NotBefore, c.Leaf.NotAfter)) {
		return c, nil
	}
	c, err := s.CA.ServerCert(ServerCertLifetime, s.opts.ServerNames...)
	if err != nil {
		return nil, fmt.Errorf("fleetd: server certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("fleetd: server certificate: %w", err)
		}
	}
	// The CA goes with the chain, so a device that pinned its fingerprint
	// (fleet.ca_sha256) finds it on first contact.
	if len(c.Certificate) == 1 {
		c.Certificate = append(c.Certificate, s.CA.Certificate().Raw)
	}
	s.serverCert = &c
	s.log.Info("server certificate issued", "names", s.opts.ServerNames, "not_after", c.Leaf.NotAfter)
	return s.serverCert, nil
}

// maintain drops expired console sessions, telemetry past retention and
// device events past a year, at start and then hourly.
func (s *Server) maintain(ctx context.Context) {
	t := time.NewTicker(maintenanceEvery)
	defer t.Stop()
	for {
		if n, err := s.Store.PurgeSessions(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("purge sessions", "err", err)
		} else if n > 0 {
			s.log.Info("expired sessions removed", "count", n)
		}
		if n, err := s.Store.PurgeSamples(ctx, s.opts.Retention); err != nil && ctx.Err() == nil {
			s.log.Warn("purge telemetry", "err", err)
		} else if n > 0 {
			s.log.Info("old telemetry removed", "count", n)
		}
		if n, err := s.Store.PurgeDeviceEvents(ctx, EventRetention); err != nil && ctx.Err() == nil {
			s.log.Warn("purge device events", "err", err)
		} else if n > 0 {
			s.log.Info("old device events removed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
