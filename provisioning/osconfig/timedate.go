package osconfig

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// systemd-timedated's bus name, object and interface.
const (
	timedateService = "org.freedesktop.timedate1"
	timedatePath    = "/org/freedesktop/timedate1"
	timedateIface   = "org.freedesktop.timedate1"
)

// TimeSettings is the system's time configuration as systemd-timedated
// reports it.
type TimeSettings struct {
	Timezone        string // IANA name, e.g. "Europe/Paris"
	NTP             bool   // network time synchronisation is enabled
	CanNTP          bool   // a synchronisation service is installed
	NTPSynchronized bool   // the clock is synchronised now
}

// checkTimezone returns ErrInvalidTimezone unless name is an IANA time zone
// this system knows. time.LoadLocation also accepts "" and "Local", which
// are not zone names timedated takes.
func checkTimezone(name string) error {
	if name == "" || name == "Local" {
		return fmt.Errorf("%w: %q", ErrInvalidTimezone, name)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidTimezone, name, err)
	}
	return nil
}

// Time reads the time settings from systemd-timedated.
func (o *OS) Time(ctx context.Context) (TimeSettings, error) {
	props, err := o.properties(ctx, timedateService, timedatePath, timedateIface)
	if err != nil {
		return TimeSettings{}, fmt.Errorf("timedate1: read: %w", err)
	}
	var s TimeSettings
	var errs [4]error
	s.Timezone, errs[0] = property[string](props, "Timezone")
	s.NTP, errs[1] = property[bool](props, "NTP")
	s.CanNTP, errs[2] = property[bool](props, "CanNTP")
	s.NTPSynchronized, errs[3] = property[bool](props, "NTPSynchronized")
	if err := errors.Join(errs[:]...); err != nil {
		return TimeSettings{}, fmt.Errorf("timedate1: read: %w", err)
	}
	return s, nil
}

// SetTimezone sets the system's time zone and returns the settings read
// back. An unknown zone fails with ErrInvalidTimezone before any call; a
// read-back showing another zone fails with ErrNotApplied (the service
// ignored the change, or another writer changed the zone in between).
func (o *OS) SetTimezone(ctx context.Context, name string) (TimeSettings, error) {
	if err := checkTimezone(name); err != nil {
		return TimeSettings{}, fmt.Errorf("timedate1: set time zone: %w", err)
	}
	if err := o.call(ctx, timedateService, timedatePath, timedateIface+".SetTimezone", nil, name, false); err != nil {
		return TimeSettings{}, fmt.Errorf("timedate1: set time zone %q: %w", name, err)
	}
	o.log.Info("time zone set", "timezone", name)
	s, err := o.Time(ctx)
	if err != nil {
		return TimeSettings{}, err
	}
	if s.Timezone != name {
		return s, fmt.Errorf("timedate1: set time zone %q: %w: reads back %q", name, ErrNotApplied, s.Timezone)
	}
	return s, nil
}

// SetNTP turns network time synchronisation on or off and returns the
// settings read back. The read-back is not compared: timedated starts or
// stops the synchronisation service as a job, and NTP follows that
// service's state, which may lag the reply.
func (o *OS) SetNTP(ctx context.Context, on bool) (TimeSettings, error) {
	if err := o.call(ctx, timedateService, timedatePath, timedateIface+".SetNTP", nil, on, false); err != nil {
		return TimeSettings{}, fmt.Errorf("timedate1: set NTP %t: %w", on, err)
	}
	o.log.Info("NTP set", "ntp", on)
	return o.Time(ctx)
}
