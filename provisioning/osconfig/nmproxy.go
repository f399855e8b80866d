package osconfig

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/godbus/dbus/v5"
)

// NetworkManager's proxy methods (NMSettingProxyMethod), an int32 on the bus.
const (
	nmProxyNone int32 = 0
	nmProxyAuto int32 = 1
)

// maxPACURL bounds a PAC URL; real ones are short, and the value ends up in
// every client's proxy lookups.
const maxPACURL = 2048

// checkPACURL returns an ErrInvalidNetwork unless u is an absolute http or
// https URL with a host and no user name or password (profiles are readable
// by every local user, so a credential has no place there).
func checkPACURL(u string) error {
	if len(u) > maxPACURL {
		return fmt.Errorf("%w: pacURL has %d bytes, at most %d", ErrInvalidNetwork, len(u), maxPACURL)
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: pacURL %q has spaces or control characters", ErrInvalidNetwork, u)
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: pacURL: %v", ErrInvalidNetwork, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" || p.Opaque != "" {
		return fmt.Errorf("%w: pacURL %q is not an http or https URL with a host", ErrInvalidNetwork, u)
	}
	if p.User != nil {
		return fmt.Errorf("%w: pacURL must not hold a user name or password", ErrInvalidNetwork)
	}
	return nil
}

// proxySection encodes NetworkManager's "proxy" setting: method none (no
// pac-url: NetworkManager refuses one with it), or auto with the PAC URL.
func proxySection(pacURL string) map[string]dbus.Variant {
	if pacURL == "" {
		return map[string]dbus.Variant{"method": dbus.MakeVariant(nmProxyNone)}
	}
	return map[string]dbus.Variant{
		"method":  dbus.MakeVariant(nmProxyAuto),
		"pac-url": dbus.MakeVariant(pacURL),
	}
}

// SetProxyPAC sets the proxy auto-configuration of the atrium profiles
// that exist ("atrium-wifi", "atrium-wired"): NetworkManager's proxy method
// auto with pacURL, or method none when pacURL is "". A profile added
// later takes the other's proxy setting, so the order of the Set calls does
// not matter. With a PAC URL and neither profile present it fails with
// ErrNoConnection; clearing with none present does nothing.
//
// pacURL is checked first (ErrInvalidNetwork, before any call). The profiles
// change together: when NetworkManager refuses the second after taking the
// first, the first is put back (the error then also says whether that
// worked). Nothing is activated here (see SetWiFi).
func (o *OS) SetProxyPAC(ctx context.Context, pacURL string) error {
	o.nm.Lock()
	defer o.nm.Unlock()
	if pacURL != "" {
		if err := checkPACURL(pacURL); err != nil {
			return fmt.Errorf("NetworkManager: set proxy: %w", err)
		}
	}
	wifi, wired, err := o.atriumConns(ctx)
	if err != nil {
		return fmt.Errorf("NetworkManager: set proxy: %w", err)
	}
	var conns []*nmConn
	for _, c := range []*nmConn{wifi, wired} {
		if c != nil {
			conns = append(conns, c)
		}
	}
	if len(conns) == 0 {
		if pacURL == "" {
			return nil
		}
		return fmt.Errorf("NetworkManager: set proxy: %w %q or %q to apply it to", ErrNoConnection, WiFiConnectionID, WiredConnectionID)
	}
	for i, c := range conns {
		s := forUpdate(c.settings)
		s["proxy"] = proxySection(pacURL)
		if err := o.updateConnection(ctx, c.path, s); err != nil {
			err = fmt.Errorf("NetworkManager: set proxy: %w", err)
			return errors.Join(err, o.restore(ctx, conns[:i]))
		}
	}
	o.log.Info("proxy set", "pac_url", pacURL, "profiles", len(conns))
	return nil
}

// restore puts back the settings conns had before, even when ctx has ended
// (half a change would be worse); their secrets stay, as NetworkManager
// keeps them when an update carries none.
func (o *OS) restore(ctx context.Context, conns []*nmConn) error {
	if len(conns) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	var errs []error
	for _, c := range conns {
		if err := o.updateConnection(rctx, c.path, forUpdate(c.settings)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore previous: %w", err)
	}
	return nil
}
