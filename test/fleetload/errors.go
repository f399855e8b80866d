package fleetload

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrTooMany: a device count outside 1 to MaxDevices, or more devices
	// asked of a run than the generator holds.
	ErrTooMany = errors.New("device count out of bounds")
	// ErrTooLong: a run longer than MaxRunTime, or with a non-positive
	// interval or window.
	ErrTooLong = errors.New("run time out of bounds")
	// ErrBusy: Run was called while another Run of the same generator was
	// going; a device checks in from one place at a time.
	ErrBusy = errors.New("generator already running")
)
