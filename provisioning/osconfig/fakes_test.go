package osconfig

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// Errors the fakes answer with, as the real services do.
var (
	errAccessDenied = dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"Permission denied"})
	errInvalidArgs  = dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"Invalid time zone 'x'"})
	errNoSuchUnit   = dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{"Unit nope.service not found."})
)

// fakeOS is hostnamed, timedated, logind, systemd's manager and
// NetworkManager in miniature, exported under their real names, object
// paths and interfaces on one connection to the test's bus. It records each
// method call as a line (String) and can refuse, ignore or stall any method
// by name. Its properties are served by godbus's prop package, as a real
// service serves them.
type fakeOS struct {
	conn *dbus.Conn

	hostname, timedate *prop.Properties

	mu      sync.Mutex
	calls   []string
	refuse  map[string]*dbus.Error // method → the error it answers
	ignore  map[string]bool        // method → accepted but not applied
	stall   map[string]bool        // method → waits until unstalled
	unstall chan struct{}          // closed to let stalled methods return
	results map[string]string      // unit → job result (default "done")
	hold    map[string]bool        // unit → its job never ends
	jobs    uint32

	inhibitors map[int]fakeInhibitor
	nextLock   int
	pending    []*os.File     // write ends sent to clients, closed at the next call
	released   chan string    // the reasons of released inhibitors
	readers    []*os.File     // read ends, closed at cleanup
	wg         sync.WaitGroup // the inhibitor watchers and job signals
}

type fakeInhibitor struct {
	what, who, why, mode string
	uid, pid             uint32
}

// newFakeOS exports the fakes on conn and owns their names; everything is
// torn down when the test ends.
func newFakeOS(t *testing.T, conn *dbus.Conn) *fakeOS {
	t.Helper()
	f := &fakeOS{
		conn:       conn,
		refuse:     map[string]*dbus.Error{},
		ignore:     map[string]bool{},
		stall:      map[string]bool{},
		unstall:    make(chan struct{}),
		results:    map[string]string{},
		hold:       map[string]bool{},
		inhibitors: map[int]fakeInhibitor{},
		released:   make(chan string, 16),
	}
	t.Cleanup(f.close)
	ro := func(v any) *prop.Prop { return &prop.Prop{Value: v, Emit: prop.EmitFalse} }
	var err error
	f.hostname, err = prop.Export(conn, hostnamePath, prop.Map{hostnameIface: {
		"StaticHostname": ro("localhost"),
		"PrettyHostname": ro(""),
		"Hostname":       ro("localhost"),
	}})
	check(t, err)
	f.timedate, err = prop.Export(conn, timedatePath, prop.Map{timedateIface: {
		"Timezone":        ro("Etc/UTC"),
		"NTP":             ro(false),
		"CanNTP":          ro(true),
		"NTPSynchronized": ro(false),
	}})
	check(t, err)
	_, err = prop.Export(conn, nmPath, prop.Map{nmIface: {
		"Connectivity": ro(uint32(ConnectivityFull)),
		"State":        ro(uint32(70)),
	}})
	check(t, err)

	check(t, conn.ExportMethodTable(map[string]any{
		"SetStaticHostname": func(name string, interactive bool) *dbus.Error {
			return f.set(f.hostname, hostnameIface, "StaticHostname", "SetStaticHostname", name, interactive)
		},
		"SetPrettyHostname": func(name string, interactive bool) *dbus.Error {
			return f.set(f.hostname, hostnameIface, "PrettyHostname", "SetPrettyHostname", name, interactive)
		},
	}, hostnamePath, hostnameIface))
	check(t, conn.ExportMethodTable(map[string]any{
		"SetTimezone": func(tz string, interactive bool) *dbus.Error {
			return f.set(f.timedate, timedateIface, "Timezone", "SetTimezone", tz, interactive)
		},
		"SetNTP": func(on, interactive bool) *dbus.Error {
			return f.set(f.timedate, timedateIface, "NTP", "SetNTP", on, interactive)
		},
	}, timedatePath, timedateIface))
	check(t, conn.ExportMethodTable(map[string]any{
		"Reboot":         func(interactive bool) *dbus.Error { return f.enter("Reboot", interactive) },
		"PowerOff":       func(interactive bool) *dbus.Error { return f.enter("PowerOff", interactive) },
		"Inhibit":        f.inhibit,
		"ListInhibitors": f.listInhibitors,
	}, logindPath, logindIface))
	check(t, conn.ExportMethodTable(map[string]any{
		"RestartUnit": f.restartUnit,
	}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"))

	for _, name := range []string{hostnameService, timedateService, logindService, "org.freedesktop.systemd1", nmService} {
		reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
		check(t, err)
		if reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("fake could not own %s: reply %v", name, reply)
		}
	}
	return f
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// enter records a call to method and says how the fake answers it: the
// refusal set for method, or nil after any stall ends.
func (f *fakeOS) enter(method string, args ...any) *dbus.Error {
	f.mu.Lock()
	line := method
	for _, a := range args {
		line += fmt.Sprintf(" %v", a)
	}
	f.calls = append(f.calls, line)
	refusal, stall := f.refuse[method], f.stall[method]
	f.mu.Unlock()
	if stall {
		<-f.unstall
	}
	return refusal
}

// set is a setter: the property changes unless the method is refused or
// ignored.
func (f *fakeOS) set(p *prop.Properties, iface, property, method string, v any, interactive bool) *dbus.Error {
	if err := f.enter(method, v, interactive); err != nil {
		return err
	}
	f.mu.Lock()
	ignore := f.ignore[method]
	f.mu.Unlock()
	if !ignore {
		p.SetMust(iface, property, v)
	}
	return nil
}

// closePending closes the fake's copies of the inhibitor fds it has sent.
// godbus sends a reply after the method returns and gives no hook after
// that, so they are closed at the next call to logind, which comes after
// the client had the reply; until then logind's copy keeps the pipe open.
func (f *fakeOS) closePending() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.pending {
		w.Close()
	}
	f.pending = nil
}

// inhibit is logind's Inhibit: a pipe whose write end goes to the caller;
// the lock lasts until every copy of it is closed, which the fake sees as
// end of file on the read end.
func (f *fakeOS) inhibit(sender dbus.Sender, what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	f.closePending()
	if err := f.enter("Inhibit", what, who, why, mode); err != nil {
		return -1, err
	}
	var pid uint32
	if err := f.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, string(sender)).Store(&pid); err != nil {
		return -1, dbus.MakeFailedError(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return -1, dbus.MakeFailedError(err)
	}
	f.mu.Lock()
	id := f.nextLock
	f.nextLock++
	f.inhibitors[id] = fakeInhibitor{what: what, who: who, why: why, mode: mode, uid: uint32(os.Getuid()), pid: pid}
	f.pending = append(f.pending, w)
	f.readers = append(f.readers, r)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, err := io.Copy(io.Discard, r)
		if err != nil { // closed by the fake's cleanup, not released
			return
		}
		f.mu.Lock()
		delete(f.inhibitors, id)
		f.mu.Unlock()
		f.released <- why
	}()
	return dbus.UnixFD(w.Fd()), nil
}

func (f *fakeOS) listInhibitors() ([]struct {
	What, Who, Why, Mode string
	UID, PID             uint32
}, *dbus.Error) {
	f.closePending()
	if err := f.enter("ListInhibitors"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []struct {
		What, Who, Why, Mode string
		UID, PID             uint32
	}{}
	for _, i := range f.inhibitors {
		out = append(out, struct {
			What, Who, Why, Mode string
			UID, PID             uint32
		}{i.what, i.who, i.why, i.mode, i.uid, i.pid})
	}
	return out, nil
}

// restartUnit is systemd's RestartUnit: it answers with a job's path and
// announces the job's end with JobRemoved, as systemd does, unless the unit
// is held.
func (f *fakeOS) restartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	if err := f.enter("RestartUnit", name, mode); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.jobs++
	id := f.jobs
	result, hold := f.results[name], f.hold[name]
	f.mu.Unlock()
	if result == "" {
		result = "done"
	}
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	if !hold {
		// After the reply, from another goroutine, as systemd's signal
		// comes after its reply.
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.conn.Emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", id, job, name, result)
		}()
	}
	return job, nil
}

// String returns the calls the fakes received, one a line.
func (f *fakeOS) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "\n")
}

// do changes the fake's behaviour under its lock.
func (f *fakeOS) do(change func(f *fakeOS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// close lets stalled calls return, stops the inhibitor watchers and waits
// for the fake's goroutines.
func (f *fakeOS) close() {
	f.mu.Lock()
	select {
	case <-f.unstall:
	default:
		close(f.unstall)
	}
	for _, w := range f.pending {
		w.Close()
	}
	f.pending = nil
	for _, r := range f.readers {
		r.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// serviceErrorOf is errors.As for a *ServiceError, returning it.
func serviceErrorOf(err error) (*ServiceError, bool) {
	var se *ServiceError
	ok := errors.As(err, &se)
	return se, ok
}
