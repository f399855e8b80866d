package pulse

import (
	"context"
	"sync"

	"github.com/atriumroom/atrium/hal"
)

// Auto is a hal.Driver for whatever sound server runs, if any: it connects
// on first use and again after a failure, so a server that starts after
// roomd (or restarts) is picked up at the next enumeration. Until then its
// Enumerate and Watch fail (wrapping ErrNoServer), which is what
// hal.Fallback needs to use ALSA directly meanwhile.
type Auto struct {
	opts Options

	mu  sync.Mutex
	drv *Driver
}

// NewAuto returns an Auto that connects with opts.
func NewAuto(opts Options) *Auto { return &Auto{opts: opts} }

// Name is the connected server's driver name, or NamePipeWire before one.
func (a *Auto) Name() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drv != nil {
		return a.drv.Name()
	}
	return NamePipeWire
}

// driver returns the connected driver, connecting if needed.
func (a *Auto) driver(ctx context.Context) (*Driver, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drv != nil {
		return a.drv, nil
	}
	d, err := New(ctx, a.opts)
	if err != nil {
		return nil, err
	}
	a.drv = d
	return d, nil
}

// forget drops the driver after its server went away, so the next use asks
// the (maybe new) server who it is.
func (a *Auto) forget(d *Driver) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drv == d {
		a.drv = nil
	}
}

// Enumerate implements hal.Driver.
func (a *Auto) Enumerate(ctx context.Context) ([]hal.Device, error) {
	d, err := a.driver(ctx)
	if err != nil {
		return nil, err
	}
	devs, err := d.Enumerate(ctx)
	if err != nil {
		a.forget(d)
	}
	return devs, err
}

// Watch implements hal.Watcher.
func (a *Auto) Watch(ctx context.Context, changed func()) error {
	d, err := a.driver(ctx)
	if err != nil {
		return err
	}
	err = d.Watch(ctx, changed)
	if ctx.Err() == nil {
		a.forget(d)
	}
	return err
}
