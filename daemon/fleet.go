package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/atriumroom/atrium/daemon/api"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/updater"
	"github.com/atriumroom/atrium/provisioning/agent"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/provisioning/identity"
	"github.com/atriumroom/atrium/provisioning/osconfig"
)

// ErrRestart ends Run when roomd must start afresh (after a factory
// reset); systemd starts it again (Restart=always).
var ErrRestart = errors.New("roomd restarts")

// fleetStatusPoll is how often the fleet status is compared for
// fleet.changed events.
const fleetStatusPoll = time.Second

// fleetSetup is the [fleet] section completed from the kernel command
// line, which factory images use (atrium.fleet=, atrium.fleet_ca_sha256=,
// atrium.activation_code=): roomd.toml wins where both say something.
func fleetSetup(cfg config.Fleet, cmdline string) config.Fleet {
	for _, word := range strings.Fields(cmdline) {
		key, val, ok := strings.Cut(word, "=")
		if !ok {
			continue
		}
		switch key {
		case "atrium.fleet":
			if cfg.Server == "" {
				cfg.Server = val
			}
		case "atrium.fleet_ca_sha256":
			if cfg.CASHA256 == "" && cfg.CAFile == "" {
				cfg.CASHA256 = val
			}
		case "atrium.activation_code":
			if cfg.ActivationCode == "" {
				cfg.ActivationCode = val
			}
		}
	}
	return cfg
}

// newFleet builds the fleet agent when a fleet server is configured: the
// device identity (TPM or file), the hardware facts, and the OS's D-Bus
// services when there is a system bus. Without a server it does nothing.
func (s *System) newFleet(ctx context.Context) error {
	log := s.Deps.Logger.With("subsystem", "fleet")
	root := s.Deps.Root
	if root == nil {
		root = os.DirFS("/")
	}
	cmdline, err := fs.ReadFile(root, "proc/cmdline")
	if err != nil {
		// Linux always has it: missing means a sandbox hides it (systemd's
		// ProcSubset=pid), and a factory image's room would never enroll,
		// without a word.
		log.Warn("kernel command line unreadable: fleet settings there are ignored", "err", err)
	}
	fc := fleetSetup(s.Config.Fleet, string(cmdline))
	if fc.Server == "" {
		return nil
	}
	s.fleetConf = fc
	// The kernel command line is not validated with roomd.toml.
	check := config.Default()
	check.Fleet = fc
	if err := check.Validate(); err != nil {
		return fmt.Errorf("fleet settings from the kernel command line: %w", err)
	}

	backend := map[string]identity.Backend{"auto": identity.BackendAuto, "tpm": identity.BackendTPM, "file": identity.BackendFile}[fc.Identity]
	id, err := identity.Open(ctx, identity.Options{
		StateDir: filepath.Join(s.Config.Daemon.StateDir, "identity"), Backend: backend, TPMPath: fc.TPM,
		OpenTPM: s.Deps.OpenTPM, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	facts, err := identity.ReadFacts(root, log)
	if err != nil {
		id.Close()
		return fmt.Errorf("fleet: hardware facts: %w", err)
	}
	var serverCA []byte
	if fc.CAFile != "" {
		if serverCA, err = os.ReadFile(fc.CAFile); err != nil {
			id.Close()
			return fmt.Errorf("fleet: ca_file: %w", err)
		}
	}
	s.OS = s.Deps.OS
	if s.OS == nil {
		if o, err := osconfig.Open(ctx, osconfig.WithLogger(log)); err != nil {
			log.Warn("no system bus: the fleet cannot set the time zone, NTP or host name, nor reboot", "err", err)
		} else {
			s.OS, s.closeOS = systemBus{o}, o.Close
		}
	}
	a, err := agent.New(agent.Options{
		StateDir: filepath.Join(s.Config.Daemon.StateDir, "fleet"),
		Server:   fc.Server, ServerCA: serverCA, ServerCAPin: fc.CASHA256,
		Signer: id, CSR: func() ([]byte, error) { return id.CSR(facts) },
		Facts:  fleetapi.Facts{Model: facts.Model, Vendor: facts.Vendor, Serial: facts.Serial, MACs: facts.MACs, MachineID: facts.MachineID},
		Device: fleetDevice{s}, Power: fleetPower{s}, Wiper: fleetWiper{s}, Updates: fleetUpdates{s},
		Version: s.Deps.Version, Logger: log,
		SettlePeriod: s.Deps.FleetSettle,
	})
	if err != nil {
		id.Close()
		return fmt.Errorf("fleet: %w", err)
	}
	s.Identity, s.Fleet = id, a
	s.inhibit = make(chan bool, 1)
	return nil
}

// runFleet runs the agent, enrolls with a configured activation code once
// roomd is ready, and turns status changes into fleet.changed events.
func (s *System) runFleet(ctx context.Context) error {
	if s.Fleet == nil {
		return nil
	}
	defer s.Identity.Close()
	if s.closeOS != nil {
		defer func() { _ = s.closeOS() }()
	}
	done := make(chan error, 1)
	go func() { done <- s.Fleet.Run(ctx) }()
	if code := s.fleetConf.ActivationCode; code != "" && !s.Fleet.Status().Enrolled {
		go s.enrollAtStart(ctx, code)
	}
	tick := time.NewTicker(fleetStatusPoll)
	defer tick.Stop()
	last := s.FleetStatus()
	var lock Releaser
	defer func() {
		if lock != nil {
			_ = lock.Release()
		}
	}()
	for {
		select {
		case err := <-done:
			return err
		case want := <-s.inhibit:
			lock = s.holdOff(ctx, lock, want)
		case <-tick.C:
			if st := s.FleetStatus(); !reflect.DeepEqual(st, last) {
				last = st
				if err := s.Events.Publish(apiv1.EventFleetChanged, st); err != nil {
					s.Deps.Logger.Error("publish fleet status", "err", err)
				}
			}
		}
	}
}

// holdOff takes login1's inhibitor lock while a meeting runs, so that
// nothing (an update, a remote reboot, an idle policy) powers the room off
// in the middle of one, and gives it back after.
func (s *System) holdOff(ctx context.Context, lock Releaser, want bool) Releaser {
	log := s.Deps.Logger.With("subsystem", "fleet")
	switch {
	case s.OS == nil, want == (lock != nil):
		return lock
	case want:
		l, err := s.OS.Inhibit(ctx, "Atrium: a meeting is in progress")
		if err != nil {
			log.Warn("no inhibitor lock for the meeting", "err", err)
			return nil
		}
		return l
	default:
		if err := lock.Release(); err != nil {
			log.Warn("release the meeting's inhibitor lock", "err", err)
		}
		return nil
	}
}

// wantInhibit tells runFleet whether a meeting runs; only the latest
// wish counts.
func (s *System) wantInhibit(on bool) {
	if s.inhibit == nil {
		return
	}
	for {
		select {
		case s.inhibit <- on:
			return
		default:
			select {
			case <-s.inhibit:
			default:
			}
		}
	}
}

// enrollAtStart enrolls with the configured code, retrying while the
// server cannot be reached; a refused code is logged and not retried (it
// would be refused again, and each try counts against the rate limit).
func (s *System) enrollAtStart(ctx context.Context, code string) {
	log := s.Deps.Logger.With("subsystem", "fleet")
	wait := 5 * time.Second
	for {
		err := s.Fleet.Enroll(ctx, code, s.roomName())
		var p *fleetapi.Problem
		switch {
		case err == nil, errors.Is(err, agent.ErrEnrolled):
			return
		case errors.As(err, &p) && p.Code != fleetapi.CodeInternal && p.Code != fleetapi.CodeRateLimited:
			log.Error("the configured activation code was refused; enroll from the kiosk or with roomctl", "err", err)
			return
		}
		log.Warn("enrollment with the configured code failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Minute)
	}
}

// FleetStatus implements api.Backend.
func (s *System) FleetStatus() apiv1.FleetStatus {
	if s.Fleet == nil {
		if s.fleetErr != nil {
			return apiv1.FleetStatus{Managed: true, Server: s.fleetConf.Server, LastError: "fleet management unavailable: " + s.fleetErr.Error()}
		}
		return apiv1.FleetStatus{}
	}
	st := s.Fleet.Status()
	out := apiv1.FleetStatus{
		Managed: true, Server: st.Server, Enrolled: st.Enrolled && st.State == agent.StateEnrolled,
		DeviceID: st.DeviceID, FleetRoom: st.RoomName, LastCheckIn: st.LastCheckIn, NextCheckIn: st.NextCheckIn,
		LastError: st.LastError, Revoked: st.State == agent.StateRevoked, CertificateExpires: st.CertNotAfter,
		Profile: st.ProfileApplied, Pending: st.Outbox,
	}
	if out.Server == "" {
		out.Server = s.fleetConf.Server
	}
	out.CanEnroll = !out.Enrolled && !s.Admin.Status().PINSet
	return out
}

// FleetEnroll implements api.Backend.
func (s *System) FleetEnroll(ctx context.Context, req apiv1.FleetEnrollRequest) (apiv1.FleetStatus, error) {
	if s.Fleet == nil {
		detail := "no fleet server is configured ([fleet] server in roomd.toml)"
		if s.fleetErr != nil {
			detail = "fleet management is unavailable on this room: " + s.fleetErr.Error()
		}
		return apiv1.FleetStatus{}, &api.FleetError{Type: apiv1.ProblemNotManaged, Status: http.StatusConflict, Detail: detail}
	}
	room := req.RoomName
	if room == "" {
		room = s.roomName()
	}
	err := s.Fleet.Enroll(ctx, req.Code, room)
	var p *fleetapi.Problem
	switch {
	case err == nil:
		return s.FleetStatus(), nil
	case errors.Is(err, agent.ErrEnrolled):
		return apiv1.FleetStatus{}, &api.FleetError{Type: apiv1.ProblemAlreadyEnrolled, Status: http.StatusConflict,
			Detail: "the room is enrolled already as " + s.Fleet.Status().DeviceID + "; a factory reset from the fleet console releases it"}
	case errors.As(err, &p):
		fe := &api.FleetError{Type: apiv1.ProblemEnrollRefused, Status: http.StatusUnprocessableEntity, Detail: p.Detail}
		switch p.Code {
		case fleetapi.CodeRateLimited:
			fe.Status = http.StatusTooManyRequests
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) {
				fe.RetryAfter = ra.RetryAfter()
			}
		case fleetapi.CodeInternal:
			fe.Type, fe.Status = apiv1.ProblemFleetUnreachable, http.StatusBadGateway
		case fleetapi.CodeBadRequest:
			fe.Status = http.StatusBadRequest
		}
		return apiv1.FleetStatus{}, fe
	case errors.Is(err, agent.ErrBadEnrollment):
		return apiv1.FleetStatus{}, &api.FleetError{Type: apiv1.ProblemFleetUnreachable, Status: http.StatusBadGateway, Detail: err.Error()}
	}
	// Anything else is the network or TLS between the room and the server.
	return apiv1.FleetStatus{}, &api.FleetError{Type: apiv1.ProblemFleetUnreachable, Status: http.StatusBadGateway, Detail: err.Error()}
}

// recordFleetEvent puts an event in the fleet's history (nothing without a
// fleet).
func (s *System) recordFleetEvent(typ, msg string, details any) {
	if s.Fleet == nil {
		return
	}
	ev := fleetapi.Event{Type: typ, Message: msg}
	if details != nil {
		if b, err := json.Marshal(details); err == nil {
			ev.Details = b
		}
	}
	if err := s.Fleet.Record(ev); err != nil {
		s.Deps.Logger.Warn("queue a fleet event", "type", typ, "err", err)
	}
}

// fleetDevice is roomd as the agent sees it (agent.Device).
type fleetDevice struct{ s *System }

func (d fleetDevice) Report(context.Context) agent.Report {
	inv, health, meeting, quality := d.s.fleetReport()
	return agent.Report{Inventory: inv, Health: health, Meeting: meeting, CallQuality: quality,
		Update: updater.FleetStatus(d.s.UpdateStatus())}
}

func (d fleetDevice) ApplyProfile(ctx context.Context, p fleetapi.Profile) error {
	return d.s.applyProfile(ctx, p)
}

func (d fleetDevice) Healthy(ctx context.Context) error { return d.s.fleetHealthy(ctx) }

func (d fleetDevice) Execute(ctx context.Context, cmd fleetapi.Command) (json.RawMessage, error) {
	return d.s.fleetExecute(ctx, cmd)
}

func (d fleetDevice) CollectLogs(ctx context.Context, since time.Time, maxBytes int64) ([]byte, error) {
	return d.s.collectLogs(ctx, since, maxBytes)
}

type fleetPower struct{ s *System }

func (p fleetPower) Reboot(ctx context.Context) error { return p.s.rebootRoom(ctx) }

type fleetWiper struct{ s *System }

// FactoryReset erases everything roomd keeps (settings, PIN, presets,
// calendar copy, identity; the agent erases its own directory) and ends
// Run with ErrRestart, so the room starts as it left the factory.
func (w fleetWiper) FactoryReset(ctx context.Context) error {
	s := w.s
	if s.inCall() {
		if _, err := s.Leave(ctx); err != nil {
			s.Deps.Logger.Warn("leave the meeting before a factory reset", "err", err)
		}
	}
	if err := s.Identity.Close(); err != nil {
		s.Deps.Logger.Warn("close the identity", "err", err)
	}
	if err := identity.Erase(filepath.Join(s.Config.Daemon.StateDir, "identity")); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	entries, err := os.ReadDir(s.Config.Daemon.StateDir)
	if err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == "fleet" {
			continue // the agent's own, which it erases after this returns
		}
		if err := os.RemoveAll(filepath.Join(s.Config.Daemon.StateDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	s.Deps.Logger.Warn("factory reset done; roomd restarts")
	s.restart()
	return nil
}

// restart ends Run with ErrRestart.
func (s *System) restart() {
	s.mu.Lock()
	cancel := s.stopRun
	s.restarting = true
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// openTPM is identity.Options.OpenTPM's type, for Deps.
type openTPM = func(ctx context.Context, path string) (transport.TPMCloser, error)
