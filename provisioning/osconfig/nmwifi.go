package osconfig

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// WiFi is the room's wireless network. PSK empty means an open network;
// otherwise it is a WPA-Personal pre-shared key: 8 to 63 printable ASCII
// characters (a passphrase) or 64 hexadecimal digits (the raw key).
//
// NetworkManager's key management "wpa-psk" is used, which joins WPA2
// networks and WPA2/WPA3 transition networks; a WPA3-only (SAE-only)
// network is not supported.
type WiFi struct {
	SSID   string // 1 to 32 bytes
	PSK    string
	Hidden bool // the network does not broadcast its SSID: probe for it
}

// WiFiState is the room's Wi-Fi as NetworkManager has it. The PSK itself is
// never read back: NetworkManager does not give secrets out.
type WiFiState struct {
	SSID   string
	Hidden bool
	HasPSK bool // the profile uses a pre-shared key (WPA-Personal)
}

// check returns an ErrInvalidNetwork naming the field, or nil. The PSK is
// never part of the error's text.
func (w *WiFi) check() error {
	if n := len(w.SSID); n < 1 || n > 32 {
		return fmt.Errorf("%w: WiFi.SSID must have 1 to 32 bytes, has %d", ErrInvalidNetwork, n)
	}
	if w.PSK == "" {
		return nil
	}
	if len(w.PSK) == 64 {
		for i := 0; i < len(w.PSK); i++ {
			if !isHex(w.PSK[i]) {
				return fmt.Errorf("%w: WiFi.PSK of 64 characters must be hexadecimal (character %d is not)", ErrInvalidNetwork, i+1)
			}
		}
		return nil
	}
	if n := len(w.PSK); n < 8 || n > 63 {
		return fmt.Errorf("%w: WiFi.PSK must have 8 to 63 characters (or 64 hexadecimal digits), has %d", ErrInvalidNetwork, n)
	}
	for i := 0; i < len(w.PSK); i++ {
		if c := w.PSK[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: WiFi.PSK must be printable ASCII (character %d is not)", ErrInvalidNetwork, i+1)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// SetWiFi makes the room's Wi-Fi profile (the NetworkManager connection
// with id "atrium-wifi", autoconnect on, for any Wi-Fi device) say w: it is
// added when missing and updated when present, keeping its uuid and its
// other settings (IPv4, proxy); nil deletes it (nothing to do when there is
// none). A new profile takes the proxy setting of "atrium-wired".
//
// w is checked first: an invalid one fails with ErrInvalidNetwork naming
// the field, before any call. A refusal by NetworkManager comes back as a
// *ServiceError and the profile keeps its previous settings.
//
// Nothing is activated here: NetworkManager connects an autoconnect profile
// by itself when the device is free, and an updated profile that is active
// keeps running with its old settings until it is next activated (NetworkManager
// applies saved changes at activation, not at Update).
func (o *OS) SetWiFi(ctx context.Context, w *WiFi) error {
	o.nm.Lock()
	defer o.nm.Unlock()
	if w == nil {
		return o.deleteWiFi(ctx)
	}
	if err := w.check(); err != nil {
		return fmt.Errorf("NetworkManager: set Wi-Fi: %w", err)
	}
	wifi, wired, err := o.atriumConns(ctx)
	if err != nil {
		return fmt.Errorf("NetworkManager: set Wi-Fi: %w", err)
	}
	s := profile(wifi, WiFiConnectionID, nmTypeWiFi)
	if wifi == nil {
		inheritProxy(s, wired)
	}
	s[nmTypeWiFi] = map[string]dbus.Variant{
		"ssid":   dbus.MakeVariant([]byte(w.SSID)),
		"hidden": dbus.MakeVariant(w.Hidden),
		"mode":   dbus.MakeVariant("infrastructure"),
	}
	if w.PSK != "" {
		s["802-11-wireless-security"] = map[string]dbus.Variant{
			"key-mgmt": dbus.MakeVariant("wpa-psk"),
			"psk":      dbus.MakeVariant(w.PSK),
		}
	} else {
		delete(s, "802-11-wireless-security")
	}
	added, err := o.save(ctx, wifi, s)
	if err != nil {
		return fmt.Errorf("NetworkManager: set Wi-Fi %q: %w", w.SSID, err)
	}
	msg := "Wi-Fi profile updated"
	if added {
		msg = "Wi-Fi profile added"
	}
	o.log.Info(msg, "id", WiFiConnectionID, "ssid", w.SSID, "hidden", w.Hidden, "psk", w.PSK != "")
	return nil
}

func (o *OS) deleteWiFi(ctx context.Context) error {
	wifi, _, err := o.atriumConns(ctx)
	if err == nil && wifi != nil {
		err = o.deleteConnection(ctx, wifi)
	}
	if err != nil {
		return fmt.Errorf("NetworkManager: remove Wi-Fi: %w", err)
	}
	if wifi != nil {
		o.log.Info("Wi-Fi profile deleted", "id", WiFiConnectionID)
	}
	return nil
}

// WiFiSettings reads the room's Wi-Fi profile back: nil, nil when there is
// none. HasPSK says whether it uses a pre-shared key; the key itself is not
// returned, even by a NetworkManager that would hand it out.
func (o *OS) WiFiSettings(ctx context.Context) (*WiFiState, error) {
	wifi, _, err := o.atriumConns(ctx)
	if err != nil {
		return nil, fmt.Errorf("NetworkManager: read Wi-Fi: %w", err)
	}
	if wifi == nil {
		return nil, nil
	}
	w := wifi.settings[nmTypeWiFi]
	ssid, ok := w["ssid"].Value().([]byte)
	if !ok {
		return nil, fmt.Errorf("NetworkManager: read Wi-Fi: %s: 802-11-wireless.ssid is %q, want ay", wifi.path, w["ssid"].Signature())
	}
	hidden, _ := w["hidden"].Value().(bool) // absent: NetworkManager's default, false
	st := &WiFiState{SSID: string(ssid), Hidden: hidden}
	switch connString(wifi.settings, "802-11-wireless-security", "key-mgmt") {
	case "wpa-psk", "sae":
		st.HasPSK = true
	}
	return st, nil
}
