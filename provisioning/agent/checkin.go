package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// call posts to the enrolled device's server over mTLS.
func (a *Agent) call(ctx context.Context, id *enrollment, path string, query url.Values, contentType string, body []byte, out any) error {
	target, host, err := endpoint(id.Server, path, query)
	if err != nil {
		return err
	}
	return a.post(ctx, a.httpClient(a.deviceTLS(host, id)), target, contentType, body, out)
}

// checkIn sends one check-in and handles its acknowledgements; the rest
// of the answer is the caller's.
func (a *Agent) checkIn(ctx context.Context, id *enrollment) (*fleetapi.CheckInResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	rep := a.report(rctx)
	cancel()
	if rep.Inventory.Versions == nil {
		rep.Inventory.Versions = map[string]string{}
	} else {
		rep.Inventory.Versions = maps.Clone(rep.Inventory.Versions)
	}
	if a.opts.Version != "" {
		rep.Inventory.Versions["roomd"] = a.opts.Version
	}
	sent, err := a.outbox.peek(fleetapi.MaxOutbox)
	if err != nil {
		// The check-in still reports health; the outbox waits.
		a.log.Error("fleet agent: cannot read the outbox", "err", err)
	}
	// Duplicate keys (possible only after a crash at the wrong moment)
	// are sent once; the acknowledgement removes every copy.
	seen := map[string]bool{}
	a.mu.Lock()
	prof := fleetapi.ProfileState{Applied: a.prof.Applied, Last: a.prof.Last}
	a.mu.Unlock()
	ci := fleetapi.CheckIn{
		Sent: a.clock.Now().UTC(), Inventory: rep.Inventory, Health: rep.Health,
		Meeting: rep.Meeting, CallQuality: rep.CallQuality, Profile: prof,
		Outbox: []fleetapi.Record{}, Update: rep.Update,
	}
	for _, q := range sent {
		if !seen[q.rec.Key] {
			seen[q.rec.Key] = true
			ci.Outbox = append(ci.Outbox, q.rec)
		}
	}
	body, err := json.Marshal(ci)
	// Records are bounded (MaxRecordSize) but a full outbox of large ones
	// may not fit one body: send fewer, the rest go next time.
	for err == nil && len(body) > fleetapi.MaxBody && len(ci.Outbox) > 0 {
		ci.Outbox = ci.Outbox[:len(ci.Outbox)/2]
		body, err = json.Marshal(ci)
	}
	if err != nil {
		return nil, fmt.Errorf("check in: encode: %w", err)
	}
	var resp fleetapi.CheckInResponse
	if err := a.call(ctx, id, fleetapi.PathCheckIn, nil, "application/json", body, &resp); err != nil {
		return nil, fmt.Errorf("check in: %w", err)
	}
	acked := make(map[string]bool, len(resp.Acked))
	for _, k := range resp.Acked {
		acked[k] = true
	}
	// The journal learns of acknowledged results before the records go:
	// a factory reset must know its result was stored even if the
	// device dies right after the removal.
	a.journalAcked(acked)
	if err := a.outbox.remove(sent, acked); err != nil {
		a.log.Error("fleet agent: outbox", "err", err)
	}
	return &resp, nil
}

// report asks roomd for its state, surviving a panic in it.
func (a *Agent) report(ctx context.Context) (rep Report) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("fleet agent: Device.Report panicked", "panic", r)
			rep = Report{Health: fleetapi.Health{Status: fleetapi.HealthFailed, Problems: []string{fmt.Sprint("report failed: ", r)}}}
		}
	}()
	return a.opts.Device.Report(ctx)
}

// handle acts on a check-in's answer: the profile, then the commands in
// order. It returns false when a factory reset wiped the agent.
func (a *Agent) handle(ctx context.Context, id *enrollment, resp *fleetapi.CheckInResponse) bool {
	a.applyProfile(ctx, resp.Profile)
	listed := map[string]bool{}
	for _, cmd := range resp.Commands {
		listed[cmd.ID] = true
	}
	for _, cmd := range resp.Commands {
		if ctx.Err() != nil {
			return true
		}
		if !a.command(ctx, id, cmd) {
			return false
		}
	}
	if !a.wipeIfAcked(ctx) {
		return false
	}
	a.journal.prune(listed)
	return true
}

// renew replaces the certificate with one for a fresh CSR.
func (a *Agent) renew(ctx context.Context, id *enrollment) error {
	csr, err := a.opts.CSR()
	if err != nil {
		return fmt.Errorf("renew: make CSR: %w", err)
	}
	body, err := json.Marshal(fleetapi.RenewRequest{CSR: csr})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	var resp fleetapi.RenewResponse
	if err := a.call(ctx, id, fleetapi.PathRenew, nil, "application/json", body, &resp); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if strings.TrimSpace(resp.CABundle) == "" {
		// A bundle is always expected; an empty one keeps the old.
		ca, err := readSmall(filepath.Join(a.opts.StateDir, caFile))
		if err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		resp.CABundle = string(ca)
	}
	cert, roots, err := a.checkIssued([]byte(resp.Certificate), []byte(resp.CABundle))
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	// The bundle first: a new certificate may chain only to a new CA, and
	// an old certificate verifies against a bundle that still holds its
	// CA. Either order leaves a working pair after a power cut as long as
	// the CA rolls over with overlap, which is the CA's promise.
	if err := atomicfile.Write(filepath.Join(a.opts.StateDir, caFile), []byte(resp.CABundle), 0o600); err != nil {
		return fmt.Errorf("renew: store: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(a.opts.StateDir, certFile), []byte(resp.Certificate), 0o600); err != nil {
		return fmt.Errorf("renew: store: %w", err)
	}
	next := *id
	next.cert, next.roots = cert, roots
	a.mu.Lock()
	if a.id == id {
		a.id = &next
	}
	a.mu.Unlock()
	a.log.Info("fleet agent: certificate renewed", "device", id.DeviceID, "not_after", cert.NotAfter)
	return nil
}
