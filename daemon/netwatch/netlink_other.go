//go:build !linux

package netwatch

import (
	"context"
	"errors"
)

// NetlinkSource exists on Linux only; elsewhere NewNetlinkSource fails.
type NetlinkSource struct{}

// NewNetlinkSource returns errors.ErrUnsupported off Linux.
func NewNetlinkSource() (*NetlinkSource, error) { return nil, errors.ErrUnsupported }

// Next returns errors.ErrUnsupported.
func (*NetlinkSource) Next(context.Context) (Event, error) { return Event{}, errors.ErrUnsupported }

// Close does nothing.
func (*NetlinkSource) Close() error { return nil }
