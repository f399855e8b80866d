package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

const (
	// maxCommandID bounds a command ID the agent accepts.
	maxCommandID = 200
	// maxOutput bounds a command's output in its result, so results stay
	// within MaxRecordSize.
	maxOutput = 8 << 10
	// maxDetail bounds a result's detail text.
	maxDetail = 1000
	// uploadTimeout bounds a log bundle's upload.
	uploadTimeout = 5 * time.Minute
	// maxLogMinutes bounds CollectLogsArgs.SinceMinutes (30 days).
	maxLogMinutes = 30 * 24 * 60
)

// Result details the console shows for interrupted commands.
const (
	detailInterrupted = "interrupted by a restart; not run again"
	detailRebooted    = "rebooted"
)

// command handles one listed command; it returns false when a factory
// reset wiped the agent.
func (a *Agent) command(ctx context.Context, id *enrollment, cmd fleetapi.Command) bool {
	if cmd.ID == "" || len(cmd.ID) > maxCommandID || !utf8.ValidString(cmd.ID) {
		// Without a usable ID there is nothing to report a result to.
		a.log.Error("fleet agent: command without a usable ID ignored", "kind", cmd.Kind, "id_len", len(cmd.ID))
		return true
	}
	e, found, err := a.journal.get(cmd.ID)
	if err != nil {
		// Seen before, state unknown: it may have run. Never run it again.
		a.log.Error("fleet agent: command journal", "command", cmd.ID, "err", err)
		a.finishInterrupted(jentry{ID: cmd.ID, Kind: cmd.Kind, State: cmdStarted, At: a.clock.Now().UTC()})
		return true
	}
	if found {
		if e.State == cmdStarted {
			// Started in this run but its result could not be queued.
			a.finishInterrupted(e)
		}
		return true
	}
	e = jentry{ID: cmd.ID, Kind: cmd.Kind, State: cmdStarted, At: a.clock.Now().UTC()}
	if reason := a.check(id, cmd); reason != "" {
		a.log.Warn("fleet agent: command rejected", "command", cmd.ID, "kind", cmd.Kind, "reason", reason)
		a.finish(e, fleetapi.Result{Status: fleetapi.ResultRejected, Detail: reason})
		return true
	}
	if err := a.journal.put(e); err != nil {
		// Not journalled, so not run: the server lists it again.
		a.log.Error("fleet agent: cannot journal command; not running it now", "command", cmd.ID, "err", err)
		return true
	}
	a.log.Info("fleet agent: running command", "command", cmd.ID, "kind", cmd.Kind)
	switch cmd.Kind {
	case fleetapi.CommandReboot:
		a.finish(e, fleetapi.Result{Status: fleetapi.ResultSucceeded, Detail: "rebooting"})
		a.deliver(ctx, id)
		if err := a.opts.Power.Reboot(ctx); err != nil {
			// The result is out already; the history gets the failure.
			a.log.Error("fleet agent: reboot failed", "command", cmd.ID, "err", err)
			a.queueEvent("reboot.failed", "reboot failed: "+err.Error(), map[string]string{"commandId": cmd.ID})
		}
		return true
	case fleetapi.CommandFactoryReset:
		e.Wipe = true
		a.finish(e, fleetapi.Result{Status: fleetapi.ResultSucceeded, Detail: "factory reset once this result is stored"})
		a.deliver(ctx, id)
		return a.wipeIfAcked(ctx)
	}
	a.finish(e, a.run(ctx, id, cmd))
	return true
}

// finish queues a command's result, then marks it done. A crash between
// the two leaves "started" with the result queued, which recovery sees.
func (a *Agent) finish(e jentry, r fleetapi.Result) {
	r.CommandID = e.ID
	if len(r.Detail) > maxDetail {
		r.Detail = r.Detail[:maxDetail] + "…"
	}
	if len(r.Output) > maxOutput {
		r.Output = nil
		r.Detail += " (output too large; dropped)"
	}
	rec := fleetapi.Record{Key: resultKey(e.ID), At: a.clock.Now().UTC(), Result: &r}
	if err := a.outbox.add(rec); err != nil {
		a.log.Error("fleet agent: cannot queue command result", "command", e.ID, "err", err)
		return
	}
	e.State = cmdDone
	if err := a.journal.put(e); err != nil {
		a.log.Error("fleet agent: journal", "command", e.ID, "err", err)
	}
}

// finishInterrupted ends a command found started without its result: a
// reboot happened (the restart was the reboot); anything else may have
// half-run and is not run again.
func (a *Agent) finishInterrupted(e jentry) {
	if a.outbox.has(resultKey(e.ID)) {
		e.State = cmdDone
		if err := a.journal.put(e); err != nil {
			a.log.Error("fleet agent: journal", "command", e.ID, "err", err)
		}
		return
	}
	if e.Kind == fleetapi.CommandReboot {
		a.finish(e, fleetapi.Result{Status: fleetapi.ResultSucceeded, Detail: detailRebooted})
		return
	}
	a.finish(e, fleetapi.Result{Status: fleetapi.ResultFailed, Detail: detailInterrupted})
}

// deliver tries one check-in right away so a result reaches the server
// before the device goes away; its commands wait for the next one.
func (a *Agent) deliver(ctx context.Context, id *enrollment) {
	ctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	if _, err := a.checkIn(ctx, id); err != nil {
		a.log.Warn("fleet agent: could not deliver the result before acting", "err", err)
	}
}

// decodeArgs decodes a command's arguments strictly: unknown fields,
// wrong types and trailing data are errors. Absent or null arguments are
// the empty object.
func decodeArgs(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed arguments: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed arguments: data after the JSON object")
	}
	return nil
}

// check returns why cmd is rejected, or "".
func (a *Agent) check(id *enrollment, cmd fleetapi.Command) string {
	bad := func(err error) string {
		if err != nil {
			return err.Error()
		}
		return ""
	}
	switch cmd.Kind {
	case fleetapi.CommandReboot:
		if a.opts.Power == nil {
			return "this device has no power control"
		}
		return bad(decodeArgs(cmd.Args, &struct{}{}))
	case fleetapi.CommandLeaveMeeting, fleetapi.CommandNetworkTest, fleetapi.CommandRenewIdentity:
		return bad(decodeArgs(cmd.Args, &struct{}{}))
	case fleetapi.CommandJoin:
		var args fleetapi.JoinArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return err.Error()
		}
		if args.URL == "" {
			return "url: missing"
		}
		return ""
	case fleetapi.CommandCollectLogs:
		var args fleetapi.CollectLogsArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return err.Error()
		}
		if args.MaxBytes < 0 || args.MaxBytes > fleetapi.MaxLogBundle {
			return fmt.Sprintf("maxBytes: %d is not from 0 to %d", args.MaxBytes, fleetapi.MaxLogBundle)
		}
		if args.SinceMinutes < 0 || args.SinceMinutes > maxLogMinutes {
			return fmt.Sprintf("sinceMinutes: %d is not from 0 to %d", args.SinceMinutes, maxLogMinutes)
		}
		return ""
	case fleetapi.CommandSetSetting:
		var args fleetapi.SetSettingArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return err.Error()
		}
		if !slices.Contains(fleetapi.ProfileKeys, args.Key) {
			return fmt.Sprintf("key: %q is not a setting", args.Key)
		}
		one, err := json.Marshal(map[string]json.RawMessage{args.Key: args.Value})
		if err != nil {
			return "value: " + err.Error()
		}
		if _, err := fleetapi.DecodeProfile(one); err != nil {
			return err.Error()
		}
		return ""
	case fleetapi.CommandFactoryReset:
		if a.opts.Wiper == nil {
			return "this device cannot be factory-reset remotely"
		}
		var args fleetapi.FactoryResetArgs
		if err := decodeArgs(cmd.Args, &args); err != nil {
			return err.Error()
		}
		if args.Confirm != id.DeviceID {
			return "confirm: must be this device's ID"
		}
		return ""
	}
	return fmt.Sprintf("unknown command kind %q", cmd.Kind)
}

// run carries out a checked command other than reboot and factory reset.
func (a *Agent) run(ctx context.Context, id *enrollment, cmd fleetapi.Command) fleetapi.Result {
	switch cmd.Kind {
	case fleetapi.CommandCollectLogs:
		return a.collectLogs(ctx, id, cmd)
	case fleetapi.CommandSetSetting:
		return a.setSetting(ctx, cmd)
	case fleetapi.CommandRenewIdentity:
		if err := a.renew(ctx, id); err != nil {
			return fleetapi.Result{Status: fleetapi.ResultFailed, Detail: err.Error()}
		}
		out, _ := json.Marshal(map[string]time.Time{"notAfter": a.identity().cert.NotAfter.UTC()})
		return fleetapi.Result{Status: fleetapi.ResultSucceeded, Output: out}
	}
	out, err := a.execute(ctx, cmd)
	if err != nil {
		return fleetapi.Result{Status: fleetapi.ResultFailed, Detail: err.Error()}
	}
	if len(out) > 0 && !json.Valid(out) {
		out, _ = json.Marshal(string(out))
	}
	return fleetapi.Result{Status: fleetapi.ResultSucceeded, Output: out}
}

// execute calls Device.Execute; a panic in it is a failed command, not a
// dead agent.
func (a *Agent) execute(ctx context.Context, cmd fleetapi.Command) (out json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("fleet agent: command panicked", "command", cmd.ID, "kind", cmd.Kind, "panic", r)
			out, err = nil, fmt.Errorf("the command crashed: %v", r)
		}
	}()
	return a.opts.Device.Execute(ctx, cmd)
}

func (a *Agent) collectLogs(ctx context.Context, id *enrollment, cmd fleetapi.Command) (res fleetapi.Result) {
	var args fleetapi.CollectLogsArgs
	_ = decodeArgs(cmd.Args, &args) // checked already
	limit := args.MaxBytes
	if limit == 0 {
		limit = fleetapi.MaxLogBundle
	}
	minutes := args.SinceMinutes
	if minutes == 0 {
		minutes = 60
	}
	since := a.clock.Now().Add(-time.Duration(minutes) * time.Minute)
	failed := func(format string, args ...any) fleetapi.Result {
		return fleetapi.Result{Status: fleetapi.ResultFailed, Detail: fmt.Sprintf(format, args...)}
	}
	var bundle []byte
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("crashed: %v", r)
			}
		}()
		bundle, err = a.opts.Device.CollectLogs(ctx, since, limit)
		return err
	}()
	switch {
	case err != nil:
		return failed("collect logs: %v", err)
	case int64(len(bundle)) > limit:
		return failed("collect logs: bundle is %d bytes, more than %d", len(bundle), limit)
	case len(bundle) < 2 || bundle[0] != 0x1f || bundle[1] != 0x8b:
		return failed("collect logs: the bundle is not gzip")
	}
	// A bundle of up to 8 MiB needs more than one ordinary call's time on
	// a slow room network.
	uctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	if err := a.call(uctx, id, fleetapi.PathLogs, url.Values{"command": {cmd.ID}}, "application/gzip", bundle, nil); err != nil {
		return failed("upload logs: %v", err)
	}
	out, _ := json.Marshal(map[string]int{"bytes": len(bundle)})
	return fleetapi.Result{Status: fleetapi.ResultSucceeded, Output: out}
}

// setSetting merges one key into the profile in effect and applies the
// merged profile (see the package documentation).
func (a *Agent) setSetting(ctx context.Context, cmd fleetapi.Command) fleetapi.Result {
	var args fleetapi.SetSettingArgs
	_ = decodeArgs(cmd.Args, &args) // checked already
	cur, err := a.loadProfile(profileFile)
	if err != nil {
		a.log.Error("fleet agent: profile in effect unreadable; merging into an empty one", "err", err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(cur.Body, &body); err != nil || body == nil {
		body = map[string]json.RawMessage{}
	}
	body[args.Key] = args.Value
	merged, err := json.Marshal(body)
	if err != nil {
		return fleetapi.Result{Status: fleetapi.ResultFailed, Detail: err.Error()}
	}
	p, err := fleetapi.DecodeProfile(merged)
	if err != nil {
		return fleetapi.Result{Status: fleetapi.ResultRejected, Detail: err.Error()}
	}
	if err := a.applyToDevice(ctx, p); err != nil {
		return fleetapi.Result{Status: fleetapi.ResultFailed, Detail: "roomd refused the setting: " + err.Error()}
	}
	if err := a.saveProfile(profileFile, storedProfile{Version: cur.Version, Body: merged}); err != nil {
		a.log.Error("fleet agent: cannot store the profile in effect", "err", err)
	}
	return fleetapi.Result{Status: fleetapi.ResultSucceeded}
}

// wipeIfAcked carries out a factory reset whose result the server has
// stored: Wiper.FactoryReset, then the agent's own state. It returns false
// when it wiped.
func (a *Agent) wipeIfAcked(ctx context.Context) bool {
	var pending *jentry
	for _, e := range a.journal.all() {
		if e.Wipe && e.State == cmdAcked {
			pending = &e
			break
		}
	}
	if pending == nil {
		return true
	}
	a.log.Warn("fleet agent: factory reset", "command", pending.ID)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("crashed: %v", r)
			}
		}()
		return a.opts.Wiper.FactoryReset(ctx)
	}()
	if err != nil {
		// Retried every cycle and after a restart: the journal still says
		// acked.
		a.log.Error("fleet agent: factory reset failed; retrying", "err", err)
		a.setError(fmt.Errorf("factory reset: %w", err))
		return true
	}
	if err := a.erase(); err != nil {
		a.log.Error("fleet agent: cannot erase the agent's state", "err", err)
	}
	a.mu.Lock()
	a.id = nil
	a.prof = profileState{}
	a.lastErr = ""
	a.mu.Unlock()
	return false
}

// erase removes everything in the agent's directory, keeping the
// directory itself and the outbox and journal directories.
func (a *Agent) erase() error {
	entries, err := os.ReadDir(a.opts.StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(a.opts.StateDir, e.Name())
		if e.Name() == outboxDir {
			errs = append(errs, a.outbox.clear())
			continue
		}
		errs = append(errs, os.RemoveAll(path))
	}
	errs = append(errs, os.MkdirAll(a.journal.dir, 0o700), os.MkdirAll(a.outbox.dir, 0o700))
	return errors.Join(errs...)
}
