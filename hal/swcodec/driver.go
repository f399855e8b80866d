package swcodec

import (
	"context"
	"log/slog"

	"github.com/atriumroom/atrium/hal"
)

// Driver lists the software codecs in the HAL registry, so that roomctl
// devices and the API show them beside hardware codecs, and meetings find
// them the same way.
type Driver struct {
	devices []hal.Device
}

// NewDriver returns the driver of the four software codec factories.
func NewDriver(logger *slog.Logger) *Driver {
	return &Driver{devices: []hal.Device{
		NewVideoEncoders(logger),
		NewVideoDecoders(logger),
		NewAudioEncoders(logger),
		NewAudioDecoders(logger),
	}}
}

// Name implements hal.Driver.
func (d *Driver) Name() string { return DriverName }

// Enumerate implements hal.Driver: software codecs are always present.
func (d *Driver) Enumerate(context.Context) ([]hal.Device, error) {
	return append([]hal.Device(nil), d.devices...), nil
}
