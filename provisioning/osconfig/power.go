package osconfig

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// systemd-logind's bus name, object and interface.
const (
	logindService = "org.freedesktop.login1"
	logindPath    = "/org/freedesktop/login1"
	logindIface   = "org.freedesktop.login1.Manager"
)

// The inhibitor Atrium takes: it blocks shutdown and sleep (a reboot command
// from the fleet waits, a user's cannot cut the meeting) under our name.
const (
	inhibitWhat = "shutdown:sleep"
	inhibitWho  = "Atrium"
	inhibitMode = "block"
)

// Reboot asks logind to reboot the system now. It is not interactive: a
// policy that would ask for authorisation refuses instead. While a block
// inhibitor is held (by anyone, this process included) logind refuses
// callers that its policy does not let ignore inhibitors, so release the
// lock first when the reboot should win over the meeting or update.
func (o *OS) Reboot(ctx context.Context) error {
	o.log.Info("asking logind to reboot")
	if err := o.call(ctx, logindService, logindPath, logindIface+".Reboot", nil, false); err != nil {
		return fmt.Errorf("login1: reboot: %w", err)
	}
	return nil
}

// PowerOff asks logind to power the system off now, like Reboot.
func (o *OS) PowerOff(ctx context.Context) error {
	o.log.Info("asking logind to power off")
	if err := o.call(ctx, logindService, logindPath, logindIface+".PowerOff", nil, false); err != nil {
		return fmt.Errorf("login1: power off: %w", err)
	}
	return nil
}

// InhibitLock is a held logind inhibitor: while it is held, logind blocks
// shutdown and sleep. It is a file descriptor that logind watches; closing
// it, by Release or by this process ending, releases the lock. Keep it
// referenced until Release: the garbage collector closes a lost one.
type InhibitLock struct {
	f    *os.File
	why  string
	once sync.Once
	err  error
}

// Why returns the reason the lock was taken with.
func (l *InhibitLock) Why() string { return l.why }

// Release releases the lock. Later calls do nothing and return the first
// call's result.
func (l *InhibitLock) Release() error {
	l.once.Do(func() {
		if err := l.f.Close(); err != nil {
			l.err = fmt.Errorf("login1: release inhibitor %q: %w", l.why, err)
		}
	})
	return l.err
}

// Inhibit takes a blocking shutdown and sleep inhibitor under the name
// "Atrium" with why as the reason people see (systemd-inhibit --list), for
// as long as a meeting or an update runs. why must not be empty.
func (o *OS) Inhibit(ctx context.Context, why string) (*InhibitLock, error) {
	if strings.TrimSpace(why) == "" {
		return nil, fmt.Errorf("login1: inhibit: %w", ErrNoReason)
	}
	var fd dbus.UnixFD
	if err := o.call(ctx, logindService, logindPath, logindIface+".Inhibit", []any{&fd}, inhibitWhat, inhibitWho, why, inhibitMode); err != nil {
		return nil, fmt.Errorf("login1: inhibit %q: %w", why, err)
	}
	// Go receives descriptors with MSG_CMSG_CLOEXEC, so children do not
	// inherit the lock.
	o.log.Info("inhibitor taken", "what", inhibitWhat, "why", why)
	return &InhibitLock{f: os.NewFile(uintptr(fd), "logind-inhibitor"), why: why}, nil
}

// Inhibitor is one inhibitor lock logind holds, from any program.
type Inhibitor struct {
	What, Who, Why, Mode string
	UID, PID             uint32
}

// Inhibitors lists the inhibitor locks logind holds.
func (o *OS) Inhibitors(ctx context.Context) ([]Inhibitor, error) {
	var rows []struct {
		What, Who, Why, Mode string
		UID, PID             uint32
	}
	if err := o.call(ctx, logindService, logindPath, logindIface+".ListInhibitors", []any{&rows}); err != nil {
		return nil, fmt.Errorf("login1: list inhibitors: %w", err)
	}
	out := make([]Inhibitor, len(rows))
	for i, r := range rows {
		out[i] = Inhibitor(r)
	}
	return out, nil
}
