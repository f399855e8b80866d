package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

func testDeviceRecords(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "o1")
	other := e.enroll(t, f.a2, "o2")
	cmd, _, err := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: "reboot", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, _, _ := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: "network-test", IdempotencyKey: "k2"})
	if _, err := e.st.SetCommandStatus(e.ctx, "alice", cancelled.ID, CommandRejected, "cancelled"); err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: other.ID, Kind: "reboot", IdempotencyKey: "k3"})
	at := e.clock.Now().Add(-time.Minute)
	recs := []fleetapi.Record{
		{Key: "e1", At: at, Event: &fleetapi.Event{Type: "meeting.joined", Message: "joined", Details: json.RawMessage(`{"provider":"janus"}`)}},
		{Key: "r1", At: at, Result: &fleetapi.Result{CommandID: cmd.ID, Status: "succeeded", Detail: "rebooted", Output: json.RawMessage(`{"s":1}`)}},
		{Key: "r2", Result: &fleetapi.Result{CommandID: cancelled.ID, Status: "succeeded"}},
		{Key: "r3", Result: &fleetapi.Result{CommandID: foreign.ID, Status: "failed"}},
		{Key: "r4", Result: &fleetapi.Result{CommandID: "nope", Status: "failed"}},
		{Key: "", Event: &fleetapi.Event{Type: "x"}},
		{Key: "bad1"},
		{Key: "bad2", Event: &fleetapi.Event{Type: "x"}, Result: &fleetapi.Result{CommandID: cmd.ID, Status: "failed"}},
		{Key: "bad3", Result: &fleetapi.Result{CommandID: cmd.ID, Status: "done"}},
		{Key: "bad4", Event: &fleetapi.Event{Type: ""}},
		{Key: "bad5", Event: &fleetapi.Event{Type: "x", Details: json.RawMessage(`{`)}},
	}
	auditBefore := e.auditCount(t)
	acked, err := e.st.AddDeviceRecords(e.ctx, dev.ID, recs)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key)
	}
	if !reflect.DeepEqual(acked, keys) {
		t.Fatalf("acked %q, want every key %q", acked, keys)
	}
	if n := e.auditCount(t); n != auditBefore+1 {
		t.Fatalf("%d audit entries added, want 1 (the command's end)", n-auditBefore)
	}
	got, err := e.st.Command(e.ctx, cmd.ID)
	if err != nil || got.Status != CommandSucceeded || got.Result != "rebooted" {
		t.Fatalf("command after its result: %+v, %v", got, err)
	}
	for id, want := range map[string]CommandStatus{cancelled.ID: CommandRejected, foreign.ID: CommandQueued} {
		if c, _ := e.st.Command(e.ctx, id); c.Status != want {
			t.Errorf("command %s is %s, want %s unchanged", c.Kind, c.Status, want)
		}
	}
	events, err := e.st.DeviceEvents(e.ctx, dev.ID, 0)
	if err != nil || len(events) != len(recs) {
		t.Fatalf("%d events stored (%v), want %d", len(events), err, len(recs))
	}
	wantTypes := []string{"meeting.joined", EventCommandResult, EventResultIgnored, EventResultIgnored, EventResultIgnored,
		EventRecordRejected, EventRecordRejected, EventRecordRejected, EventRecordRejected, EventRecordRejected, EventRecordRejected}
	for i, ev := range events {
		if ev.Key != recs[i].Key || ev.Type != wantTypes[i] {
			t.Errorf("event %d: key %q type %q, want %q %q (%s)", i, ev.Key, ev.Type, recs[i].Key, wantTypes[i], ev.Message)
		}
	}
	if ev := events[0]; !ev.At.Equal(at) || !ev.ReceivedAt.Equal(e.clock.Now()) || string(ev.Details) != `{"provider":"janus"}` {
		t.Errorf("event %+v", ev)
	}
	if ev := events[1]; ev.CommandID != cmd.ID || !bytes.Contains(ev.Details, []byte(`"output":{"s":1}`)) {
		t.Errorf("result event %+v details %s", ev, ev.Details)
	}
	if ev := events[2]; !ev.At.Equal(e.clock.Now()) {
		t.Errorf("record without time stored at %v, want receipt time", ev.At)
	}

	// Sent again (the device lost the answer): all acked, nothing stored
	// again, nothing changed.
	e.clock.Advance(time.Minute)
	auditBefore = e.auditCount(t)
	acked, err = e.st.AddDeviceRecords(e.ctx, dev.ID, append(recs, fleetapi.Record{Key: "e2", Event: &fleetapi.Event{Type: "later"}}))
	if err != nil || len(acked) != len(recs)+1 {
		t.Fatalf("resend acked %d (%v)", len(acked), err)
	}
	if events, _ := e.st.DeviceEvents(e.ctx, dev.ID, 0); len(events) != len(recs)+1 || events[len(recs)].Key != "e2" {
		t.Fatalf("after resend %d events", len(events))
	}
	if n := e.auditCount(t); n != auditBefore {
		t.Fatalf("resend wrote %d audit entries", n-auditBefore)
	}
	// A key is per device: the other device may use "e1" too.
	if acked, err := e.st.AddDeviceRecords(e.ctx, other.ID, recs[:1]); err != nil || len(acked) != 1 {
		t.Fatalf("other device's e1: %v, %v", acked, err)
	}
	if events, _ := e.st.DeviceEvents(e.ctx, other.ID, 0); len(events) != 1 {
		t.Fatalf("other device has %d events", len(events))
	}
	if last, _ := e.st.DeviceEvents(e.ctx, dev.ID, 2); len(last) != 2 || last[1].Key != "e2" {
		t.Fatalf("newest 2 events %+v", last)
	}
	_, err = e.st.AddDeviceRecords(e.ctx, "nope", recs[:1])
	wantErr(t, "records of a missing device", err, ErrNotFound)

	// Retention: the first batch (received 1 minute earlier) goes, e2 stays.
	if n, err := e.st.PurgeDeviceEvents(e.ctx, 30*time.Second); err != nil || n != int64(len(recs)) {
		t.Fatalf("purged %d (%v), want %d", n, err, len(recs))
	}
	if left, _ := e.st.DeviceEvents(e.ctx, dev.ID, 0); len(left) != 1 || left[0].Key != "e2" {
		t.Fatalf("left after purge %+v", left)
	}
	_, err = e.st.PurgeDeviceEvents(e.ctx, 0)
	wantErr(t, "zero retention", err, ErrInvalid)
}

func testCheckInAndCommands(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "c1")
	var cmds []Command
	for _, k := range []string{"a", "b"} {
		c, _, err := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: "reboot", IdempotencyKey: k})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		e.clock.Advance(time.Second)
	}
	next, err := e.st.NextCommands(e.ctx, dev.ID)
	if err != nil || len(next) != 2 || next[0].ID != cmds[0].ID || next[1].Status != CommandSent {
		t.Fatalf("next commands %+v, %v", next, err)
	}
	if c, _ := e.st.Command(e.ctx, cmds[1].ID); c.Status != CommandSent {
		t.Fatalf("stored status %s, want sent", c.Status)
	}
	auditBefore := e.auditCount(t)
	again, err := e.st.NextCommands(e.ctx, dev.ID)
	if err != nil || len(again) != 2 || e.auditCount(t) != auditBefore {
		t.Fatalf("sent commands are given again, unaudited: %+v, %v", again, err)
	}

	// One check-in: state, samples, a result and the remaining command.
	c := CheckIn{Health: "ok", Versions: json.RawMessage(`{"roomd":"2.0"}`), MeetingState: "idle",
		Inventory: json.RawMessage(`{"hostname":"r"}`), HealthSample: json.RawMessage(`{"status":"ok"}`),
		CallQuality: json.RawMessage(`{"rttMillis":20}`), ProfileApplied: "abc",
		ProfileLast: ProfileOutcome{Version: "abc", Status: "applied"}}
	res, err := e.st.ProcessCheckIn(e.ctx, dev.ID, c, []fleetapi.Record{
		{Key: "r", Result: &fleetapi.Result{CommandID: cmds[0].ID, Status: "failed", Detail: "busy"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Acked, []string{"r"}) || len(res.Commands) != 1 || res.Commands[0].ID != cmds[1].ID {
		t.Fatalf("check-in result %+v", res)
	}
	sum, err := e.st.DeviceSummary(e.ctx, dev.ID)
	if err != nil || sum.ProfileApplied != "abc" || sum.ProfileStatus != "applied" || !sum.LastCheckIn.Equal(e.clock.Now()) ||
		string(sum.Inventory) != `{"hostname":"r"}` {
		t.Fatalf("after check-in %+v, %v", sum, err)
	}
	samples, err := e.st.Samples(e.ctx, dev.ID, "", time.Time{}, 0)
	if err != nil || len(samples) != 2 || samples[0].Kind != SampleHealth || samples[1].Kind != SampleCall ||
		string(samples[1].Body) != `{"rttMillis":20}` {
		t.Fatalf("samples %+v, %v", samples, err)
	}
	// A check-in with a bad part stores nothing at all.
	bad := c
	bad.Versions = json.RawMessage(`{"roomd":2}`)
	_, err = e.st.ProcessCheckIn(e.ctx, dev.ID, bad, []fleetapi.Record{{Key: "z", Event: &fleetapi.Event{Type: "x"}}})
	wantErr(t, "roomd version not a string", err, ErrInvalid)
	bad = c
	bad.HealthSample = json.RawMessage(`{`)
	_, err = e.st.ProcessCheckIn(e.ctx, dev.ID, bad, nil)
	wantErr(t, "health sample not JSON", err, ErrInvalid)
	if ev, _ := e.st.DeviceEvents(e.ctx, dev.ID, 0); len(ev) != 1 {
		t.Fatalf("refused check-in stored records: %+v", ev)
	}
	if err := e.st.RevokeDevice(e.ctx, "alice", dev.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.st.ProcessCheckIn(e.ctx, dev.ID, c, nil)
	wantErr(t, "check-in of a revoked device", err, ErrRevoked)

	// Certificate replacement only from the current serial.
	d2 := e.enroll(t, f.a2, "c2")
	wantErr(t, "replace from an old serial", e.st.ReplaceCertificate(e.ctx, d2.ID, "old", "c3", e.clock.Now().Add(time.Hour)), ErrConflict)
	if err := e.st.ReplaceCertificate(e.ctx, d2.ID, "c2", "c3", e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "replace twice from the same serial", e.st.ReplaceCertificate(e.ctx, d2.ID, "c2", "c4", e.clock.Now().Add(time.Hour)), ErrConflict)
}

func testLogBundles(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "l1")
	other := e.enroll(t, f.a2, "l2")
	logs, _, _ := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: fleetapi.CommandCollectLogs, IdempotencyKey: "l"})
	reboot, _, _ := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: fleetapi.CommandReboot, IdempotencyKey: "r"})
	if err := e.st.PutLogBundle(e.ctx, dev.ID, logs.ID, []byte("first")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	data := bytes.Repeat([]byte{0x1f, 0x8b, 0, 0xff}, 1000)
	if err := e.st.PutLogBundle(e.ctx, dev.ID, logs.ID, data); err != nil {
		t.Fatal(err)
	}
	meta, got, err := e.st.LogBundle(e.ctx, logs.ID)
	if err != nil || !bytes.Equal(got, data) || meta.Size != int64(len(data)) || meta.DeviceID != dev.ID ||
		!meta.UploadedAt.Equal(e.clock.Now()) || len(meta.SHA256) != 64 {
		t.Fatalf("bundle %+v (%d bytes), %v", meta, len(got), err)
	}
	wantErr(t, "bundle for another device's command", e.st.PutLogBundle(e.ctx, other.ID, logs.ID, data), ErrNotFound)
	wantErr(t, "bundle for a reboot", e.st.PutLogBundle(e.ctx, dev.ID, reboot.ID, data), ErrInvalid)
	wantErr(t, "bundle for no command", e.st.PutLogBundle(e.ctx, dev.ID, "nope", data), ErrNotFound)
	wantErr(t, "empty bundle", e.st.PutLogBundle(e.ctx, dev.ID, logs.ID, nil), ErrInvalid)
	_, _, err = e.st.LogBundle(e.ctx, reboot.ID)
	wantErr(t, "no bundle", err, ErrNotFound)
}

// testRecordsConcurrent sends the same outbox from two check-ins at once
// (a device retrying while its first request is still running): each
// record is stored once and the command ends once.
func testRecordsConcurrent(t *testing.T, e *env) {
	f := e.fleet(t)
	dev := e.enroll(t, f.a1, "cc1")
	cmd, _, err := e.st.EnqueueCommand(e.ctx, "alice", NewCommand{DeviceID: dev.ID, Kind: "reboot", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	recs := []fleetapi.Record{
		{Key: "e", Event: &fleetapi.Event{Type: "x"}},
		{Key: "r", Result: &fleetapi.Result{CommandID: cmd.ID, Status: "succeeded"}},
	}
	auditBefore := e.auditCount(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.st.ProcessCheckIn(e.ctx, dev.ID, CheckIn{Health: "ok"}, recs)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent check-ins: %v", err)
	}
	if events, _ := e.st.DeviceEvents(e.ctx, dev.ID, 0); len(events) != 2 {
		t.Fatalf("%d events stored, want 2", len(events))
	}
	// One audit entry for queued → succeeded; possibly one for
	// queued → sent if a check-in delivered the command before the result
	// was stored.
	if n := e.auditCount(t) - auditBefore; n < 1 || n > 2 {
		t.Fatalf("%d audit entries, want 1 or 2", n)
	}
	if c, _ := e.st.Command(e.ctx, cmd.ID); c.Status != CommandSucceeded {
		t.Fatalf("command %s", c.Status)
	}
}
