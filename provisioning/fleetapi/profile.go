package fleetapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Profile is a configuration profile: the settings the fleet manages on a
// device. Every key is optional; an absent key leaves the device's own
// setting alone. Profiles at organisation, site, room and device scope are
// merged key by key (a later scope replaces a whole top-level key), so a
// top-level key is the unit of inheritance.
//
// Secrets (calendar password and token, TURN credentials, the admin PIN)
// travel in the profile because the device needs them; the console shows
// them masked.
type Profile struct {
	RoomName *string `json:"roomName,omitempty"`
	// Timezone is the room's IANA time zone: the system's (timedate1) and
	// the calendar's.
	Timezone   *string             `json:"timezone,omitempty"`
	NTP        *bool               `json:"ntp,omitempty"`
	Calendar   *ProfileCalendar    `json:"calendar,omitempty"`
	ICEServers *[]ProfileICEServer `json:"iceServers,omitempty"`
	Devices    *ProfileDevices     `json:"devices,omitempty"`
	Display    *ProfileDisplay     `json:"display,omitempty"`
	// AdminPIN is the kiosk's settings PIN, 4 to 12 digits.
	AdminPIN *string `json:"adminPin,omitempty"`
	// WiFi is the room's wireless network and Wired the wired network's
	// IPv4 addressing (NetworkManager's profiles "atrium-wifi" and
	// "atrium-wired"); ProxyPAC the proxy auto-configuration URL ("" for
	// no proxy).
	WiFi     *ProfileWiFi  `json:"wifi,omitempty"`
	Wired    *ProfileWired `json:"wired,omitempty"`
	ProxyPAC *string       `json:"proxyPac,omitempty"`
}

// ProfileWiFi is a WPA2-Personal network, or an open one without PSK.
type ProfileWiFi struct {
	SSID   string `json:"ssid"`
	PSK    string `json:"psk,omitempty"`
	Hidden bool   `json:"hidden,omitempty"`
}

// ProfileWired is the wired network's IPv4: Method "auto" (DHCP, with DNS
// servers added if given) or "manual" with Address in CIDR form, Gateway
// and DNS.
type ProfileWired struct {
	Method  string   `json:"method"`
	Address string   `json:"address,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// ProfileKeys are the top-level keys of a profile, in display order.
var ProfileKeys = []string{"roomName", "timezone", "ntp", "calendar", "iceServers", "devices", "display", "adminPin", "wifi", "wired", "proxyPac"}

// SecretPaths are the profile fields the console masks.
var SecretPaths = []string{"calendar.password", "calendar.token", "iceServers[].credential", "adminPin", "wifi.psk"}

// ProfileCalendar is the room's calendar source: an iCalendar URL, or a
// CalDAV collection with caldav set. An empty URL means no calendar.
type ProfileCalendar struct {
	URL      string `json:"url"`
	CalDAV   bool   `json:"caldav,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
	// Refresh is a Go duration from 1m to 24h; empty keeps the default.
	Refresh  string `json:"refresh,omitempty"`
	AutoJoin bool   `json:"autoJoin,omitempty"`
}

// ProfileICEServer is one STUN or TURN server.
type ProfileICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ProfileDevices pins a room's devices by stable ID; empty chooses
// automatically.
type ProfileDevices struct {
	Camera     string `json:"camera,omitempty"`
	Microphone string `json:"microphone,omitempty"`
	Speaker    string `json:"speaker,omitempty"`
}

// ProfileDisplay is when the room's screen may sleep: with Sleep, it is
// awake on Days from AwakeFrom to AwakeUntil ("HH:MM", room time).
type ProfileDisplay struct {
	Sleep      bool     `json:"sleep"`
	Days       []string `json:"days,omitempty"`
	AwakeFrom  string   `json:"awakeFrom,omitempty"`
	AwakeUntil string   `json:"awakeUntil,omitempty"`
}

// FieldError names one bad part of a profile by its path, e.g.
// "display.awakeFrom" or "iceServers[1].urls[0]".
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ProfileError lists everything wrong with a profile.
type ProfileError struct {
	Fields []FieldError
}

func (e *ProfileError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid profile: " + strings.Join(parts, "; ")
}

// DecodeProfile parses and validates a profile (a whole one, or one scope's
// part): unknown keys and wrong types are errors naming their path, then
// every value is checked. The error is a *ProfileError.
func DecodeProfile(body []byte) (Profile, error) {
	var p Profile
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return p, &ProfileError{[]FieldError{{"", "not a JSON object"}}}
	}
	var errs []FieldError
	for _, key := range sortedKeys(top) {
		if !slices.Contains(ProfileKeys, key) {
			errs = append(errs, FieldError{key, "unknown setting (known: " + strings.Join(ProfileKeys, ", ") + ")"})
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{key: top[key]})
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			errs = append(errs, decodeFieldError(key, err))
		}
	}
	if len(errs) > 0 {
		return Profile{}, &ProfileError{errs}
	}
	if errs = p.check(); len(errs) > 0 {
		return Profile{}, &ProfileError{errs}
	}
	return p, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeFieldError turns a decoder error into a path and a reason.
func decodeFieldError(key string, err error) FieldError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = key
		}
		return FieldError{field, fmt.Sprintf("must be %s, not %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return FieldError{key, "unknown field " + name}
	}
	return FieldError{key, strings.TrimPrefix(msg, "json: ")}
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	}
	return goKind
}

// check validates the values of a decoded profile.
func (p Profile) check() []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{field, fmt.Sprintf(format, args...)})
	}
	if p.RoomName != nil {
		name := *p.RoomName
		switch {
		case strings.TrimSpace(name) == "":
			bad("roomName", "must not be empty")
		case len(name) > 63:
			bad("roomName", "is %d bytes; at most 63", len(name))
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			bad("roomName", "contains a control character")
		}
	}
	if p.Timezone != nil {
		if *p.Timezone == "" || *p.Timezone == "Local" {
			bad("timezone", "must be an IANA time zone such as Europe/Berlin")
		} else if _, err := time.LoadLocation(*p.Timezone); err != nil {
			bad("timezone", "%q is not a known IANA time zone", *p.Timezone)
		}
	}
	if c := p.Calendar; c != nil {
		if c.URL != "" {
			u, err := url.Parse(c.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("calendar.url", "%q is not an http or https URL", c.URL)
			}
		} else if c.CalDAV || c.Username != "" || c.Password != "" || c.Token != "" {
			bad("calendar.url", "is needed with caldav, username, password or token")
		}
		if c.Password != "" && c.Token != "" {
			bad("calendar.token", "give a password or a token, not both")
		}
		if c.Refresh != "" {
			d, err := time.ParseDuration(c.Refresh)
			if err != nil || d < time.Minute || d > 24*time.Hour {
				bad("calendar.refresh", "%q is not a duration from 1m to 24h", c.Refresh)
			}
		}
	}
	if p.ICEServers != nil {
		for i, s := range *p.ICEServers {
			field := fmt.Sprintf("iceServers[%d]", i)
			if len(s.URLs) == 0 {
				bad(field+".urls", "needs at least one URL")
			}
			turn := false
			for j, raw := range s.URLs {
				scheme, rest, _ := strings.Cut(raw, ":")
				host, _, _ := strings.Cut(rest, "?")
				switch {
				case scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns":
					bad(fmt.Sprintf("%s.urls[%d]", field, j), "%q is not a stun:, stuns:, turn: or turns: URL", raw)
				case strings.TrimPrefix(host, "//") == "":
					bad(fmt.Sprintf("%s.urls[%d]", field, j), "%q has no host", raw)
				}
				turn = turn || strings.HasPrefix(scheme, "turn")
			}
			if turn && (s.Username == "" || s.Credential == "") {
				bad(field, "a TURN server needs username and credential")
			}
		}
	}
	if d := p.Devices; d != nil {
		for field, id := range map[string]string{"camera": d.Camera, "microphone": d.Microphone, "speaker": d.Speaker} {
			if len(id) > 256 || strings.IndexFunc(id, unicode.IsControl) >= 0 {
				bad("devices."+field, "is not a device ID")
			}
		}
	}
	if d := p.Display; d != nil && d.Sleep {
		if len(d.Days) == 0 {
			bad("display.days", "needs at least one day when sleep is on")
		}
		for i, day := range d.Days {
			if !slices.Contains([]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, day) {
				bad(fmt.Sprintf("display.days[%d]", i), "%q is not one of mon, tue, wed, thu, fri, sat, sun", day)
			}
		}
		for field, v := range map[string]string{"awakeFrom": d.AwakeFrom, "awakeUntil": d.AwakeUntil} {
			if _, err := time.Parse("15:04", v); err != nil || len(v) != 5 {
				bad("display."+field, "%q is not a time HH:MM", v)
			}
		}
	}
	if p.AdminPIN != nil {
		pin := *p.AdminPIN
		if len(pin) < 4 || len(pin) > 12 || strings.IndexFunc(pin, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			bad("adminPin", "must be 4 to 12 digits")
		}
	}
	errs = append(errs, p.checkNetwork()...)
	slices.SortFunc(errs, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

// checkNetwork validates the NetworkManager keys.
func (p Profile) checkNetwork() []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{field, fmt.Sprintf(format, args...)})
	}
	if w := p.WiFi; w != nil {
		if len(w.SSID) == 0 || len(w.SSID) > 32 {
			bad("wifi.ssid", "must be 1 to 32 bytes")
		}
		hex64 := len(w.PSK) == 64 && strings.Trim(strings.ToLower(w.PSK), "0123456789abcdef") == ""
		printable := strings.IndexFunc(w.PSK, func(r rune) bool { return r < 0x20 || r > 0x7e }) < 0
		if w.PSK != "" && !hex64 && (len(w.PSK) < 8 || len(w.PSK) > 63 || !printable) {
			bad("wifi.psk", "must be 8 to 63 printable ASCII characters or 64 hex digits (empty for an open network)")
		}
	}
	if w := p.Wired; w != nil {
		switch w.Method {
		case "auto":
			if w.Address != "" || w.Gateway != "" {
				bad("wired.address", "an address and gateway go with method manual, not auto (DHCP)")
			}
		case "manual":
			prefix, err := netip.ParsePrefix(w.Address)
			switch {
			case err != nil || !prefix.Addr().Is4():
				bad("wired.address", "%q is not an IPv4 address with its prefix, such as 10.1.2.3/24", w.Address)
			case w.Gateway != "":
				if gw, err := netip.ParseAddr(w.Gateway); err != nil || !gw.Is4() || !prefix.Masked().Contains(gw) {
					bad("wired.gateway", "%q is not an IPv4 address in %s", w.Gateway, prefix.Masked())
				}
			}
		default:
			bad("wired.method", "must be auto (DHCP) or manual, not %q", w.Method)
		}
		if len(w.DNS) > 3 {
			bad("wired.dns", "at most 3 servers")
		}
		for i, d := range w.DNS {
			if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
				bad(fmt.Sprintf("wired.dns[%d]", i), "%q is not an IPv4 address", d)
			}
		}
	}
	if p.ProxyPAC != nil && *p.ProxyPAC != "" {
		u, err := url.Parse(*p.ProxyPAC)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("proxyPac", "%q is not an http or https URL (empty for no proxy)", *p.ProxyPAC)
		}
	}
	return errs
}

// ProfileVersion is the version of a merged profile body: a digest of its
// canonical JSON, so the same settings always have the same version
// whichever scopes they come from.
func ProfileVersion(body json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("profile version: %w", err)
	}
	canonical, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return "", fmt.Errorf("profile version: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8]), nil
}
