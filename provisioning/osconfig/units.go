package osconfig

import (
	"context"
	"fmt"
	"strings"
)

// checkUnit returns ErrInvalidUnit unless name looks like a systemd unit
// name: at most 255 bytes of letters, digits and ":-_.\@", with a unit type
// suffix and a non-empty prefix.
func checkUnit(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("%w: %q is longer than 255 bytes", ErrInvalidUnit, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(`:-_.\@`, c) >= 0) {
			return fmt.Errorf("%w: %q has %q", ErrInvalidUnit, name, c)
		}
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		switch name[i:] {
		case ".service", ".socket", ".target", ".timer", ".mount", ".automount",
			".path", ".slice", ".scope", ".device", ".swap":
			return nil
		}
	}
	return fmt.Errorf("%w: %q has no unit type suffix", ErrInvalidUnit, name)
}

// RestartUnit restarts a unit (starting it if it was stopped) and waits for
// systemd's job to end. A job that ends other than "done" fails with
// ErrJobFailed; the job's result is in the error. When ctx ends first the
// job carries on in systemd and ctx's error is returned.
func (o *OS) RestartUnit(ctx context.Context, unit string) error {
	if err := checkUnit(unit); err != nil {
		return fmt.Errorf("systemd1: restart: %w", err)
	}
	// Buffered: go-systemd delivers the result while holding its lock, and
	// must not block on us once we stopped waiting.
	done := make(chan string, 1)
	if _, err := o.systemd.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("systemd1: restart %s: %w", unit, serviceError(err))
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd1: restart %s: %w: result %q", unit, ErrJobFailed, result)
		}
		o.log.Info("unit restarted", "unit", unit)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd1: restart %s: waiting for the job: %w", unit, ctx.Err())
	}
}
