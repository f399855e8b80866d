package osconfig

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// ErrInvalidRoomName is returned, before any D-Bus call, for a room name that
// is empty, not UTF-8, holds control characters, or has no letter or digit
// from which a host name can be made.
var ErrInvalidRoomName = errors.New("invalid room name")

// ErrInvalidHostname is returned, before any D-Bus call, for a static host
// name that is not a valid RFC 1123 name of at most 64 bytes.
var ErrInvalidHostname = errors.New("invalid host name")

// ErrInvalidTimezone is returned, before any D-Bus call, for a time zone that
// is not an IANA name known to this system's time zone database.
var ErrInvalidTimezone = errors.New("invalid time zone")

// ErrInvalidUnit is returned, before any D-Bus call, for a malformed systemd
// unit name.
var ErrInvalidUnit = errors.New("invalid unit name")

// ErrJobFailed is returned when systemd ran a unit job and it ended with a
// result other than "done" (failed, timeout, dependency, canceled…); the
// error's text carries the result.
var ErrJobFailed = errors.New("unit job did not succeed")

// ErrNotApplied is returned when a service accepted a change but reading it
// back shows another value.
var ErrNotApplied = errors.New("setting not in effect after the service accepted it")

// ServiceError is a refusal from an OS service: the D-Bus error name (for
// example org.freedesktop.DBus.Error.AccessDenied) and the service's message.
// It sits in the chain of every error a service call returns when the
// service answered with an error; use errors.As to read it.
type ServiceError struct {
	Name    string
	Message string
}

func (e *ServiceError) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// serviceError turns godbus's error, whose text is only the message, into a
// ServiceError that also names the D-Bus error; other errors (a closed
// connection, a context's deadline) pass through unchanged.
func serviceError(err error) error {
	var v dbus.Error
	if errors.As(err, &v) {
		return dbusError(v)
	}
	var p *dbus.Error
	if errors.As(err, &p) && p != nil {
		return dbusError(*p)
	}
	return err
}

func dbusError(e dbus.Error) *ServiceError {
	se := &ServiceError{Name: e.Name}
	if len(e.Body) > 0 {
		if s, ok := e.Body[0].(string); ok {
			se.Message = s
		} else {
			se.Message = fmt.Sprint(e.Body...)
		}
	}
	return se
}

// ErrNoReason is returned, before any D-Bus call, by Inhibit without a
// reason: logind shows it to whoever finds shutdown blocked.
var ErrNoReason = errors.New("no reason given")
