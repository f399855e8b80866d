package kiosk

import "errors"

// ErrNotWebURL means a URL is not an absolute http or https URL with a host,
// so it has no origin a kiosk could be confined to.
var ErrNotWebURL = errors.New("not an absolute http(s) URL")

// ErrBadStatus means roomd answered its status endpoint, but not with a
// usable status (wrong HTTP status code or undecodable JSON).
var ErrBadStatus = errors.New("unusable roomd status")
