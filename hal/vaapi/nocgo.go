//go:build !cgo

package vaapi

import (
	"context"
	"errors"
)

// libvaProber stands in for libva in builds without cgo: every node fails
// to probe, so the driver lists nothing.
type libvaProber struct{}

var errNoCgo = errors.New("vaapi: built without cgo, libva unavailable")

// Probe implements Prober.
func (libvaProber) Probe(ctx context.Context, _ string) (Display, error) {
	if err := ctx.Err(); err != nil {
		return Display{}, err
	}
	return Display{}, errNoCgo
}

// headerConstants has nothing to compare without cgo.
func headerConstants() map[string]int { return nil }
