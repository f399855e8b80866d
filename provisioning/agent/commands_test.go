package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// enrolled starts an agent, enrolls it and waits for its first check-in.
func enrolled(t *testing.T) (*harness, *Agent) {
	t.Helper()
	h := newHarness(t)
	a := h.start()
	h.enroll()
	h.checkIns(1)
	return h, a
}

func waitResult(t *testing.T, h *harness, id string) fleetapi.Result {
	t.Helper()
	var r fleetapi.Result
	until(t, h.clk, "the result of "+id, func() bool {
		var ok bool
		r, ok = h.srv.result(id)
		return ok
	})
	return r
}

func TestCommandsRunOnce(t *testing.T) {
	h, _ := enrolled(t)
	h.srv.addCommand("c1", fleetapi.CommandJoin, `{"url":"https://meet.example/room"}`)
	h.srv.addCommand("c2", fleetapi.CommandLeaveMeeting, `{}`)
	r := waitResult(t, h, "c1")
	if r.Status != fleetapi.ResultSucceeded || string(r.Output) != `{"ok":true}` {
		t.Errorf("join result %+v", r)
	}
	if r := waitResult(t, h, "c2"); r.Status != fleetapi.ResultSucceeded {
		t.Errorf("leave result %+v", r)
	}
	// The server lists c3 again because the answer carrying the ack gets
	// lost, then because it lags behind: it still runs once.
	h.srv.dropResult("c3", 1)
	h.srv.set(func(s *fakeServer) { s.keepListing = true })
	h.srv.addCommand("c3", fleetapi.CommandNetworkTest, ``)
	waitResult(t, h, "c3")
	n := h.srv.checkInCount()
	h.checkIns(n + 4)
	h.srv.set(func(s *fakeServer) {
		s.keepListing = false
		s.commands = nil
	})
	for _, id := range []string{"c1", "c2", "c3"} {
		if c := h.dev.count(id); c != 1 {
			t.Errorf("%s executed %d times", id, c)
		}
	}
	if d := h.srv.delivered(resultKey("c3")); d != 2 {
		t.Errorf("c3's result delivered %d times; want 2 (one answer lost)", d)
	}
	// Acknowledged and no longer listed: the journal forgets them.
	until(t, h.clk, "the journal pruned", func() bool { return len(h.agent.journal.all()) == 0 })
}

// The agent dies after a command ran and before its result was queued:
// after the restart the command is not run again, and the server hears
// it was interrupted, once.
func TestRestartBetweenStartAndResult(t *testing.T) {
	h, _ := enrolled(t)
	h.dev.execHook = func(cmd fleetapi.Command) (json.RawMessage, error) {
		runtime.Goexit() // roomd dies right here
		return nil, nil
	}
	h.srv.addCommand("j1", fleetapi.CommandJoin, `{"url":"https://meet.example/x"}`)
	until(t, h.clk, "the command to run", func() bool { return h.dev.count("j1") == 1 })
	h.crashed()
	if _, ok := h.srv.result("j1"); ok {
		t.Fatal("a result reached the server before the crash")
	}
	h.dev.execHook = nil
	a := h.start()
	r := waitResult(t, h, "j1")
	if r.Status != fleetapi.ResultFailed || r.Detail != detailInterrupted {
		t.Errorf("result after restart: %+v", r)
	}
	n := h.srv.checkInCount()
	h.checkIns(n + 3)
	if c := h.dev.count("j1"); c != 1 {
		t.Errorf("executed %d times", c)
	}
	if d := h.srv.delivered(resultKey("j1")); d != 1 {
		t.Errorf("result delivered %d times", d)
	}
	_ = a
}

// The result was queued and the server stored it, but the answer was lost
// and the agent restarted: the server gets it again and keeps one.
func TestRestartBetweenResultAndAck(t *testing.T) {
	h, _ := enrolled(t)
	h.srv.dropResult("n1", 1)
	h.srv.addCommand("n1", fleetapi.CommandNetworkTest, `{}`)
	until(t, h.clk, "the result stored", func() bool { return h.srv.delivered(resultKey("n1")) == 1 })
	waitReal(t, "the lost answer", func() bool { return h.agent.Status().LastError != "" })
	h.stop()
	a := h.start()
	until(t, h.clk, "the outbox empty", func() bool { return a.Status().Outbox == 0 })
	if d := h.srv.delivered(resultKey("n1")); d != 2 {
		t.Errorf("delivered %d times, want 2", d)
	}
	if c := h.dev.count("n1"); c != 1 {
		t.Errorf("executed %d times", c)
	}
}

func TestRebootDeliversThenReboots(t *testing.T) {
	h, _ := enrolled(t)
	var storedBeforeReboot bool
	h.dev.rebootHook = func() {
		_, storedBeforeReboot = h.srv.result("r1")
		runtime.Goexit() // the machine goes down
	}
	h.srv.addCommand("r1", fleetapi.CommandReboot, `{}`)
	until(t, h.clk, "the reboot", func() bool { h.dev.mu.Lock(); defer h.dev.mu.Unlock(); return h.dev.reboots == 1 })
	h.crashed()
	if !storedBeforeReboot {
		t.Error("the result was not delivered before rebooting")
	}
	h.dev.rebootHook = nil
	h.start()
	n := h.srv.checkInCount()
	h.checkIns(n + 3)
	h.dev.mu.Lock()
	reboots := h.dev.reboots
	h.dev.mu.Unlock()
	if reboots != 1 {
		t.Errorf("rebooted %d times", reboots)
	}
	if r, _ := h.srv.result("r1"); r.Status != fleetapi.ResultSucceeded {
		t.Errorf("reboot result %+v", r)
	}
	if d := h.srv.delivered(resultKey("r1")); d != 1 {
		t.Errorf("delivered %d times", d)
	}
}

// A reboot journalled as started whose result never made it to the outbox
// (the machine went down in between): the restart was the reboot.
func TestRecoveryRebootStarted(t *testing.T) {
	h, a := enrolled(t)
	h.stop()
	if err := a.journal.put(jentry{ID: "r9", Kind: fleetapi.CommandReboot, State: cmdStarted}); err != nil {
		t.Fatal(err)
	}
	if err := a.journal.put(jentry{ID: "s9", Kind: fleetapi.CommandSetSetting, State: cmdStarted}); err != nil {
		t.Fatal(err)
	}
	h.srv.addCommand("r9", fleetapi.CommandReboot, `{}`)
	h.start()
	if r := waitResult(t, h, "r9"); r.Status != fleetapi.ResultSucceeded || r.Detail != detailRebooted {
		t.Errorf("reboot after restart: %+v", r)
	}
	if r := waitResult(t, h, "s9"); r.Status != fleetapi.ResultFailed || r.Detail != detailInterrupted {
		t.Errorf("set-setting after restart: %+v", r)
	}
	if h.dev.reboots != 0 {
		t.Error("rebooted again")
	}
}

func TestBadCommandsRejected(t *testing.T) {
	h, a := enrolled(t)
	h.dev.execHook = func(cmd fleetapi.Command) (json.RawMessage, error) {
		if cmd.ID == "panics" {
			panic("boom")
		}
		if cmd.ID == "fails" {
			return nil, errors.New("no meeting to leave")
		}
		return json.RawMessage(`not json`), nil
	}
	cases := []struct{ id, kind, args, status, detail string }{
		{"u1", "self-destruct", `{}`, fleetapi.ResultRejected, `unknown command kind "self-destruct"`},
		{"u2", fleetapi.CommandJoin, `{"url":"https://x","extra":1}`, fleetapi.ResultRejected, `unknown field "extra"`},
		{"u3", fleetapi.CommandJoin, `{"url":5}`, fleetapi.ResultRejected, "cannot unmarshal number"},
		{"u4", fleetapi.CommandJoin, `{}`, fleetapi.ResultRejected, "url: missing"},
		{"u5", fleetapi.CommandLeaveMeeting, `{"now":true}`, fleetapi.ResultRejected, `unknown field "now"`},
		{"u6", fleetapi.CommandReboot, `[]`, fleetapi.ResultRejected, "malformed arguments"},
		{"u7", fleetapi.CommandCollectLogs, `{"maxBytes":999999999}`, fleetapi.ResultRejected, "maxBytes"},
		{"u8", fleetapi.CommandSetSetting, `{"key":"volume","value":3}`, fleetapi.ResultRejected, `"volume" is not a setting`},
		{"u9", fleetapi.CommandSetSetting, `{"key":"adminPin","value":"12"}`, fleetapi.ResultRejected, "adminPin: must be 4 to 12 digits"},
		{"u10", fleetapi.CommandFactoryReset, `{"confirm":"dev-2"}`, fleetapi.ResultRejected, "confirm: must be this device's ID"},
		{"panics", fleetapi.CommandLeaveMeeting, ``, fleetapi.ResultFailed, "crashed: boom"},
		{"fails", fleetapi.CommandLeaveMeeting, ``, fleetapi.ResultFailed, "no meeting to leave"},
		{"text", fleetapi.CommandNetworkTest, ``, fleetapi.ResultSucceeded, ""},
	}
	for _, c := range cases {
		h.srv.addCommand(c.id, c.kind, c.args)
	}
	h.srv.addCommand("", fleetapi.CommandReboot, `{}`) // no ID: ignored, nothing to report to
	for _, c := range cases {
		r := waitResult(t, h, c.id)
		if r.Status != c.status || !strings.Contains(r.Detail, c.detail) {
			t.Errorf("%s (%s %s): %s %q, want %s containing %q", c.id, c.kind, c.args, r.Status, r.Detail, c.status, c.detail)
		}
	}
	if r, _ := h.srv.result("text"); string(r.Output) != `"not json"` {
		t.Errorf("output that is not JSON came back as %s", r.Output)
	}
	for _, id := range []string{"u1", "u2", "u4", "u10"} {
		if h.dev.count(id) != 0 {
			t.Errorf("rejected %s was executed", id)
		}
	}
	if h.dev.reboots != 0 || h.dev.resets != 0 {
		t.Error("a rejected command acted")
	}
	if st := a.Status(); st.State != StateEnrolled {
		t.Errorf("agent after bad commands: %+v", st)
	}
}

func TestFactoryResetOnlyAfterAck(t *testing.T) {
	h, a := enrolled(t)
	var storedAtReset bool
	h.dev.resetHook = func() { _, storedAtReset = h.srv.result("fr") }
	// The server stores the result but its answers are lost for a while.
	h.srv.dropResult("fr", 3)
	h.srv.addCommand("fr", fleetapi.CommandFactoryReset, `{"confirm":"dev-1"}`)
	until(t, h.clk, "three lost answers", func() bool { return h.srv.delivered(resultKey("fr")) >= 3 })
	h.dev.mu.Lock()
	early := h.dev.resets
	h.dev.mu.Unlock()
	if early != 0 {
		t.Fatal("factory reset before the server acknowledged the result")
	}
	until(t, h.clk, "the reset", func() bool { return !a.Status().Enrolled })
	if !storedAtReset || h.dev.resets != 1 {
		t.Errorf("reset %d times, result stored first: %v", h.dev.resets, storedAtReset)
	}
	for _, name := range []string{deviceFile, certFile, caFile} {
		if fileExists(filepath.Join(h.dir, name)) {
			t.Errorf("%s survived the factory reset", name)
		}
	}
	if n := len(a.journal.all()); n != 0 {
		t.Errorf("journal holds %d entries after the reset", n)
	}
	// The device can enroll again, and is not reset twice.
	h.enroll()
	n := h.srv.checkInCount()
	h.checkIns(n + 2)
	if h.dev.resets != 1 || a.Status().DeviceID != "dev-2" {
		t.Errorf("after re-enrollment: resets %d, %+v", h.dev.resets, a.Status())
	}
}

func TestCollectLogs(t *testing.T) {
	h, _ := enrolled(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte("roomd log line\n"))
	_ = zw.Close()
	h.dev.logs = buf.Bytes()
	h.srv.addCommand("l1", fleetapi.CommandCollectLogs, `{"maxBytes":4096,"sinceMinutes":10}`)
	if r := waitResult(t, h, "l1"); r.Status != fleetapi.ResultSucceeded {
		t.Fatalf("collect-logs: %+v", r)
	}
	h.srv.mu.Lock()
	got := h.srv.logs["l1"]
	h.srv.mu.Unlock()
	if !bytes.Equal(got, buf.Bytes()) {
		t.Error("uploaded bundle differs")
	}
	// Default bound, and a bundle over the bound fails.
	h.dev.logs = append([]byte{0x1f, 0x8b}, make([]byte, 100)...)
	h.srv.addCommand("l2", fleetapi.CommandCollectLogs, `{"maxBytes":50}`)
	if r := waitResult(t, h, "l2"); r.Status != fleetapi.ResultFailed || !strings.Contains(r.Detail, "more than 50") {
		t.Errorf("oversized bundle: %+v", r)
	}
	h.dev.logs = []byte("plain text")
	h.srv.addCommand("l3", fleetapi.CommandCollectLogs, ``)
	if r := waitResult(t, h, "l3"); r.Status != fleetapi.ResultFailed || !strings.Contains(r.Detail, "not gzip") {
		t.Errorf("plain bundle: %+v", r)
	}
	h.dev.mu.Lock()
	args := h.dev.logArgs
	h.dev.mu.Unlock()
	if len(args) != 3 || args[0] != 4096 || args[2] != fleetapi.MaxLogBundle {
		t.Errorf("CollectLogs bounds %v", args)
	}
}

func TestCorruptJournalEntryNotRun(t *testing.T) {
	h, a := enrolled(t)
	h.stop()
	// A torn journal file for a command: it was seen, maybe run.
	if err := os.WriteFile(a.journal.fileName("x1"), []byte(`{"id":"x1","ki`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.srv.addCommand("x1", fleetapi.CommandJoin, `{"url":"https://x"}`)
	h.start()
	if r := waitResult(t, h, "x1"); r.Status != fleetapi.ResultFailed {
		t.Errorf("result %+v", r)
	}
	if h.dev.count("x1") != 0 {
		t.Error("a command with a damaged journal entry was run")
	}
}

func TestDecodeArgsStrict(t *testing.T) {
	var j fleetapi.JoinArgs
	for _, bad := range []string{`{"url":"x"} {}`, `{"url":"x"}]`, `{"url":"x","u":1}`, `"x"`, `{"url":`} {
		if err := decodeArgs(json.RawMessage(bad), &j); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, good := range []string{``, `null`, ` {"url":"x"} `} {
		if err := decodeArgs(json.RawMessage(good), &j); err != nil {
			t.Errorf("%s refused: %v", good, err)
		}
	}
}
