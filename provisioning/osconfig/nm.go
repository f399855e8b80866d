package osconfig

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"

	"github.com/godbus/dbus/v5"
)

// NetworkManager's settings service: the saved connection profiles, one
// object each under nmSettingsPath.
const (
	nmSettingsPath  = "/org/freedesktop/NetworkManager/Settings"
	nmSettingsIface = "org.freedesktop.NetworkManager.Settings"
	nmConnIface     = "org.freedesktop.NetworkManager.Settings.Connection"
)

// The ids of the connection profiles this package owns. Only these are ever
// added, changed or deleted; every other profile (NetworkManager's own
// "Wired connection 1", a technician's hotspot) is left alone.
const (
	WiFiConnectionID  = "atrium-wifi"
	WiredConnectionID = "atrium-wired"
)

// NetworkManager's connection types, as its "connection.type" names them.
const (
	nmTypeWiFi     = "802-11-wireless"
	nmTypeEthernet = "802-3-ethernet"
)

// ErrInvalidNetwork is returned, before any D-Bus call, for a network
// setting NetworkManager would refuse or that cannot be what was meant (an
// SSID longer than 32 bytes, a PSK of 7 characters, a gateway outside the
// address's subnet, a PAC URL that is not http or https). The error's text
// names the field; it never holds a PSK.
var ErrInvalidNetwork = errors.New("invalid network setting")

// ErrNoConnection is returned by SetProxyPAC with a PAC URL when neither
// atrium connection profile exists, so there is nowhere to put it.
var ErrNoConnection = errors.New("no atrium connection profile")

// connSettings is a connection profile as NetworkManager's D-Bus API
// carries it (a{sa{sv}}): setting name → property → value.
type connSettings = map[string]map[string]dbus.Variant

// nmConn is one saved connection profile: its object and its settings as
// GetSettings returned them (without secrets).
type nmConn struct {
	path     dbus.ObjectPath
	settings connSettings
}

// atriumConns finds the atrium connection profiles by id in one pass over
// NetworkManager's list; an absent one is nil. When several share an id
// (made by hand), the first NetworkManager lists is the one used.
func (o *OS) atriumConns(ctx context.Context) (wifi, wired *nmConn, err error) {
	var paths []dbus.ObjectPath
	if err := o.call(ctx, nmService, nmSettingsPath, nmSettingsIface+".ListConnections", []any{&paths}); err != nil {
		return nil, nil, fmt.Errorf("list connections: %w", err)
	}
	for _, p := range paths {
		s, err := o.getSettings(ctx, p)
		if err != nil {
			if gone(err) {
				continue // deleted between the list and now
			}
			return nil, nil, err
		}
		switch connString(s, "connection", "id") {
		case WiFiConnectionID:
			if wifi == nil {
				wifi = &nmConn{path: p, settings: s}
			}
		case WiredConnectionID:
			if wired == nil {
				wired = &nmConn{path: p, settings: s}
			}
		}
	}
	return wifi, wired, nil
}

// gone reports whether err says the object no longer exists.
func gone(err error) bool {
	var se *ServiceError
	return errors.As(err, &se) && (se.Name == "org.freedesktop.DBus.Error.UnknownObject" ||
		se.Name == "org.freedesktop.DBus.Error.UnknownMethod")
}

func (o *OS) getSettings(ctx context.Context, path dbus.ObjectPath) (connSettings, error) {
	var s connSettings
	if err := o.call(ctx, nmService, path, nmConnIface+".GetSettings", []any{&s}); err != nil {
		return nil, fmt.Errorf("read connection %s: %w", path, err)
	}
	return s, nil
}

// addConnection saves a new profile (AddConnection writes it to disk, unlike
// AddConnectionUnsaved), which NetworkManager then autoconnects.
func (o *OS) addConnection(ctx context.Context, s connSettings) (dbus.ObjectPath, error) {
	var path dbus.ObjectPath
	if err := o.call(ctx, nmService, nmSettingsPath, nmSettingsIface+".AddConnection", []any{&path}, s); err != nil {
		return "", fmt.Errorf("add connection %q: %w", connString(s, "connection", "id"), err)
	}
	return path, nil
}

// updateConnection replaces a profile's settings and saves them. Settings
// without any secret keep the profile's current secrets: NetworkManager
// merges them in, which is what lets this package change a Wi-Fi profile's
// proxy without knowing its PSK. It does not reactivate the connection.
func (o *OS) updateConnection(ctx context.Context, path dbus.ObjectPath, s connSettings) error {
	if err := o.call(ctx, nmService, path, nmConnIface+".Update", nil, s); err != nil {
		return fmt.Errorf("update connection %q: %w", connString(s, "connection", "id"), err)
	}
	return nil
}

func (o *OS) deleteConnection(ctx context.Context, c *nmConn) error {
	if err := o.call(ctx, nmService, c.path, nmConnIface+".Delete", nil); err != nil {
		return fmt.Errorf("delete connection %q: %w", connString(c.settings, "connection", "id"), err)
	}
	return nil
}

// connString returns a string property, or "" when it is missing or not a
// string.
func connString(s connSettings, setting, key string) string {
	v, _ := s[setting][key].Value().(string)
	return v
}

// cloneSettings copies s down to its settings' maps, so that a change to
// one setting does not touch the caller's copy (kept to restore it).
func cloneSettings(s connSettings) connSettings {
	c := make(connSettings, len(s))
	for name, props := range s {
		c[name] = maps.Clone(props)
	}
	return c
}

// deprecatedKeys are the properties of NetworkManager's ipv4 and ipv6
// settings that GetSettings still returns beside their replacements. They
// are left out of the settings sent back, for two reasons: NetworkManager
// takes the deprecated key over its replacement when both come, and godbus
// decodes the struct arrays of ipv6's "addresses" (a(ayuay)) and "routes"
// (a(ayuayu)) into arrays of variants that NetworkManager refuses
// ("can't set property of type 'a(ayuay)' from value of type 'aav'").
// A key stays when its replacement is missing (a NetworkManager before
// 1.42 has no dns-data), so that nothing is lost.
var deprecatedKeys = map[string]string{
	"addresses": "address-data",
	"routes":    "route-data",
	"dns":       "dns-data",
}

// forUpdate returns a copy of settings read with GetSettings that can be
// sent back with Update: without the deprecated keys that have their
// replacement beside them.
func forUpdate(s connSettings) connSettings {
	c := cloneSettings(s)
	for _, ip := range []string{"ipv4", "ipv6"} {
		props := c[ip]
		for old, repl := range deprecatedKeys {
			if _, ok := props[repl]; ok {
				delete(props, old)
			}
		}
	}
	return c
}

// profile returns the settings to save for one of the atrium profiles:
// those it has (nil: a new one), with the "connection" setting made ours
// (id, type, autoconnect on, bound to no interface so that any device of
// the type can use it) and the uuid kept, or made when new.
func profile(existing *nmConn, id, typ string) connSettings {
	var s connSettings
	if existing != nil {
		s = forUpdate(existing.settings)
	} else {
		s = connSettings{}
	}
	c := s["connection"]
	if c == nil {
		c = map[string]dbus.Variant{}
		s["connection"] = c
	}
	if connString(s, "connection", "uuid") == "" {
		c["uuid"] = dbus.MakeVariant(newUUID())
	}
	c["id"] = dbus.MakeVariant(id)
	c["type"] = dbus.MakeVariant(typ)
	c["autoconnect"] = dbus.MakeVariant(true)
	delete(c, "interface-name")
	return s
}

// newUUID returns a random (version 4) UUID, which NetworkManager requires
// of every profile.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// save adds s when existing is nil and updates existing otherwise; it
// returns whether it added.
func (o *OS) save(ctx context.Context, existing *nmConn, s connSettings) (added bool, err error) {
	if existing == nil {
		_, err := o.addConnection(ctx, s)
		return err == nil, err
	}
	return false, o.updateConnection(ctx, existing.path, s)
}

// inheritProxy gives a new profile the proxy setting of the other atrium
// profile, so that SetProxyPAC before or after adding a network has the
// same outcome.
func inheritProxy(s connSettings, other *nmConn) {
	if other == nil {
		return
	}
	if p, ok := other.settings["proxy"]; ok {
		s["proxy"] = maps.Clone(p)
	}
}
