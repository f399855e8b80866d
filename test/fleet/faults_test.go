package fleet_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
	"github.com/atriumroom/atrium/test/fleettest"
)

// The network is cut for two minutes on one engine, for less than one on
// the other: the long cut outlasts several request timeouts and backoff
// steps, and once is enough for the tier's time.
func TestFaultsSQLite(t *testing.T)   { t.Parallel(); faults(t, "sqlite", 2*time.Minute) }
func TestFaultsPostgres(t *testing.T) { t.Parallel(); faults(t, "postgres", 40*time.Second) }

// faults puts a room and its fleet through what a real network and real
// power do to them, then checks the fleet's history: every event the room
// recorded is there once, and the command interrupted by a crash ends once,
// as failed, without having run twice.
func faults(t *testing.T, engine string, cut time.Duration) {
	r := newRig(t, engine)
	proxy := fleettest.StartProxy(t, strings.TrimPrefix(r.fleet.DeviceURL, "https://localhost"))
	_, port, _ := net.SplitHostPort(proxy.Addr)
	server := "https://localhost:" + port
	state := filepath.Join(t.TempDir(), "state")
	room := r.startRoom(state, server)
	deviceID := enroll(t, room, r.code()).DeviceID
	waitFor(t, 30*time.Second, "first check-in", func() bool { return r.device(deviceID).Device.LastCheckIn != nil })

	failures := 0
	// fleetd dies (SIGKILL, as in a crash) while the room checks in, three
	// times, with events queued around each death.
	for i := range 3 {
		failJoin(t, room)
		failures++
		time.Sleep(time.Duration(300+700*i) * time.Millisecond)
		r.fleet.Kill()
		failJoin(t, room)
		failures++
		time.Sleep(2 * time.Second)
		r.fleet.Restart()
	}

	// The network between room and fleet is cut for longer than a
	// request's timeout; the room goes on and queues.
	proxy.Cut()
	failJoin(t, room)
	failJoin(t, room)
	failures += 2
	time.Sleep(cut)
	if st := fleetStatus(t, room); st.LastError == "" || st.Pending < 2 {
		t.Errorf("during the cut the room should say so and hold its events: %+v", st)
	}
	proxy.Restore()
	// The room is in a backoff that grew during the cut (up to minutes):
	// it comes back by itself, without being told the network is back.
	waitFor(t, 5*time.Minute, "the room back after the cut", func() bool { return fleetStatus(t, room).LastError == "" })

	// roomd is killed while it carries out a command: a join to a server
	// that accepts connections and never answers takes the whole setup
	// timeout, which leaves time to pull the plug.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	}()
	joinURL := "janus+ws://" + silent.Addr().String() + "/?room=7"
	cmd := r.sendCommand(deviceID, fleetapi.CommandJoin, map[string]string{"url": joinURL})
	waitFor(t, 60*time.Second, "the room taking the command", func() bool {
		heldMu.Lock()
		defer heldMu.Unlock()
		return len(held) > 0 // roomd is connecting: the command runs
	})
	room.Kill()
	room = r.startRoom(state, server)
	waitFor(t, 90*time.Second, "the interrupted command's result", func() bool {
		c := r.command(cmd.ID)
		return c.Status != "sent" && c.Status != "queued"
	})
	if c := r.command(cmd.ID); c.Status != fleetapi.ResultFailed || !strings.Contains(c.Result, "interrupted") {
		t.Errorf("interrupted command ended %s %q", c.Status, c.Result)
	}
	time.Sleep(2 * time.Second)
	if strings.Contains(room.Log(), silent.Addr().String()) {
		t.Errorf("the interrupted join ran again after the restart:\n%s", room.Log())
	}

	// Everything drains, and the history has each event once.
	waitFor(t, 90*time.Second, "the room's queue to drain", func() bool { return fleetStatus(t, room).Pending == 0 })
	dd := r.device(deviceID)
	if got := countEvents(dd.Events, "meeting.failed"); got != failures {
		t.Errorf("%d meeting.failed events in the fleet's history, the room had %d:\n%s", got, failures, describeEvents(dd.Events))
	}
	results := 0
	for _, c := range dd.Commands {
		if c.ID == cmd.ID {
			results++
		}
	}
	if results != 1 {
		t.Errorf("the command is listed %d times", results)
	}
	if t.Failed() {
		t.Logf("--- roomd ---\n%s", room.Log())
		t.Logf("--- fleetd ---\n%s", r.fleet.Log())
	}
	_ = os.Remove(state)
}
