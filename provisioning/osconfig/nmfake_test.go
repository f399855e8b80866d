package osconfig

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
)

// errNMPermission is how NetworkManager refuses a caller without the right.
var errNMPermission = dbus.NewError("org.freedesktop.NetworkManager.Settings.PermissionDenied",
	[]any{"Insufficient privileges"})

// fakeNM is NetworkManager's settings service in miniature: the Settings
// object (ListConnections, AddConnection) and one Settings.Connection
// object per profile (GetSettings, Update, Delete) at
// /org/freedesktop/NetworkManager/Settings/N, exported on the connection
// that owns org.freedesktop.NetworkManager (the fakeOS's).
//
// It stores what it receives, secrets included, and hands profiles out
// without their secrets, as NetworkManager does; an Update that carries no
// secret keeps the stored ones, as NetworkManager does. It checks the type
// of every property it knows and refuses unknown ones (stricter than
// NetworkManager, which ignores them, so that a misspelt key fails a test).
// It records each call as a line and refuses any method by name ("Update")
// or by method and profile number ("Update 2").
type fakeNM struct {
	conn *dbus.Conn

	mu          sync.Mutex
	calls       []string
	refuse      map[string]*dbus.Error
	leakSecrets bool  // GetSettings hands out the secrets (a misbehaving service)
	ghosts      []int // deleted profiles ListConnections still lists (deleted meanwhile)
	conns       map[int]connSettings
	next        int
}

// setupNM is setup with the fake NetworkManager settings service added.
func setupNM(t *testing.T) (*OS, *fakeOS, *fakeNM) {
	t.Helper()
	o, f := setup(t)
	return o, f, newFakeNM(t, f.conn)
}

func newFakeNM(t *testing.T, conn *dbus.Conn) *fakeNM {
	t.Helper()
	n := &fakeNM{conn: conn, refuse: map[string]*dbus.Error{}, conns: map[int]connSettings{}, next: 1}
	check(t, conn.ExportMethodTable(map[string]any{
		"ListConnections": n.listConnections,
		"AddConnection":   n.addConnection,
	}, nmSettingsPath, nmSettingsIface))
	return n
}

func connPath(id int) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("%s/%d", nmSettingsPath, id))
}

// enter records a call and returns the refusal set for it, if any. The
// caller holds n.mu.
func (n *fakeNM) enter(method string, id int, detail string) *dbus.Error {
	line := method
	if id > 0 {
		line += fmt.Sprintf(" %d", id)
	}
	if detail != "" {
		line += " " + detail
	}
	n.calls = append(n.calls, line)
	if e := n.refuse[method]; e != nil {
		return e
	}
	return n.refuse[fmt.Sprintf("%s %d", method, id)]
}

func (n *fakeNM) listConnections() ([]dbus.ObjectPath, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enter("ListConnections", 0, ""); err != nil {
		return nil, err
	}
	paths := []dbus.ObjectPath{}
	for _, id := range slices.Sorted(slices.Values(append(slices.Collect(maps.Keys(n.conns)), n.ghosts...))) {
		paths = append(paths, connPath(id))
	}
	return paths, nil
}

func (n *fakeNM) addConnection(s connSettings) (dbus.ObjectPath, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enter("AddConnection", 0, connString(s, "connection", "id")); err != nil {
		return "", err
	}
	if err := verifyNM(s); err != nil {
		return "", err
	}
	id := n.next
	n.next++
	n.conns[id] = cloneSettings(s)
	nmNormalize(n.conns[id])
	if err := n.exportConn(id); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	return connPath(id), nil
}

// put stores a profile as if another program had added it.
func (n *fakeNM) put(t *testing.T, s connSettings) int {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.next
	n.next++
	n.conns[id] = cloneSettings(s)
	nmNormalize(n.conns[id])
	check(t, n.exportConn(id))
	return id
}

// exportConn exports profile id's object. A deleted profile's object stays
// exported but answers UnknownObject, which is simpler than unexporting
// from within a method call.
func (n *fakeNM) exportConn(id int) error {
	return n.conn.ExportMethodTable(map[string]any{
		"GetSettings": func() (connSettings, *dbus.Error) { return n.getSettings(id) },
		"Update":      func(s connSettings) *dbus.Error { return n.update(id, s) },
		"Delete":      func() *dbus.Error { return n.delete(id) },
	}, connPath(id), nmConnIface)
}

func unknownObject(id int) *dbus.Error {
	return dbus.NewError("org.freedesktop.DBus.Error.UnknownObject", []any{fmt.Sprintf("No such object path '%s'", connPath(id))})
}

// secretKeys are the secret properties the fake knows of.
var secretKeys = map[string][]string{"802-11-wireless-security": {"psk"}}

func (n *fakeNM) getSettings(id int) (connSettings, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enter("GetSettings", id, ""); err != nil {
		return nil, err
	}
	s, ok := n.conns[id]
	if !ok {
		return nil, unknownObject(id)
	}
	out := nmView(s)
	if !n.leakSecrets {
		for setting, keys := range secretKeys {
			for _, k := range keys {
				delete(out[setting], k)
			}
		}
	}
	return out, nil
}

// nmIP6Addr and nmIP6Route are the structs of ipv6's deprecated
// "addresses" (a(ayuay)) and "routes" (a(ayuayu)).
type nmIP6Addr struct {
	Address []byte
	Prefix  uint32
	Gateway []byte
}

type nmIP6Route struct {
	Dest    []byte
	Prefix  uint32
	NextHop []byte
	Metric  uint32
}

// nmNormalize completes a profile as NetworkManager does when it stores
// one: an ipv6 setting, method auto, with its (empty) address-data and
// route-data.
func nmNormalize(s connSettings) {
	ip6 := s["ipv6"]
	if ip6 == nil {
		ip6 = map[string]dbus.Variant{"method": dbus.MakeVariant("auto")}
		s["ipv6"] = ip6
	}
	for _, k := range []string{"address-data", "route-data"} {
		if _, ok := ip6[k]; !ok {
			ip6[k] = dbus.MakeVariant([]map[string]dbus.Variant{})
		}
	}
}

// nmView returns a stored profile as NetworkManager's GetSettings shows
// one: with ipv6's deprecated "addresses" and "routes" as struct arrays,
// and with ipv4's deprecated "addresses" and "dns" beside address-data and
// dns-data. Those are what a client must not send back as it got them
// (godbus turns the struct arrays into aav, which NetworkManager refuses).
func nmView(s connSettings) connSettings {
	out := cloneSettings(s)
	ip6 := out["ipv6"]
	ip6["addresses"] = dbus.MakeVariant([]nmIP6Addr{})
	ip6["routes"] = dbus.MakeVariant([]nmIP6Route{})
	ip4 := out["ipv4"]
	if ip4 == nil {
		return out
	}
	if data, ok := ip4["address-data"].Value().([]map[string]dbus.Variant); ok {
		gw := uint32(0)
		if g, err := netip.ParseAddr(connString(out, "ipv4", "gateway")); err == nil {
			gw = binary.NativeEndian.Uint32(g.AsSlice())
		}
		addrs := [][]uint32{}
		for _, d := range data {
			a, _ := netip.ParseAddr(d["address"].Value().(string))
			addrs = append(addrs, []uint32{binary.NativeEndian.Uint32(a.AsSlice()), d["prefix"].Value().(uint32), gw})
		}
		ip4["addresses"] = dbus.MakeVariant(addrs)
	}
	if data, ok := ip4["dns-data"].Value().([]string); ok {
		dns := []uint32{}
		for _, d := range data {
			a, _ := netip.ParseAddr(d)
			dns = append(dns, binary.NativeEndian.Uint32(a.AsSlice()))
		}
		ip4["dns"] = dbus.MakeVariant(dns)
	}
	return out
}

func (n *fakeNM) update(id int, s connSettings) *dbus.Error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enter("Update", id, ""); err != nil {
		return err
	}
	old, ok := n.conns[id]
	if !ok {
		return unknownObject(id)
	}
	s = cloneSettings(s)
	if !hasSecrets(s) {
		// NetworkManager keeps the profile's secrets when an update
		// carries none.
		for setting, keys := range secretKeys {
			for _, k := range keys {
				if v, ok := old[setting][k]; ok && s[setting] != nil {
					s[setting][k] = v
				}
			}
		}
	}
	if err := verifyNM(s); err != nil {
		return err
	}
	if connString(s, "connection", "uuid") != connString(old, "connection", "uuid") {
		return nmInvalid("connection.uuid", "cannot change")
	}
	nmNormalize(s)
	n.conns[id] = s
	return nil
}

func hasSecrets(s connSettings) bool {
	for setting, keys := range secretKeys {
		for _, k := range keys {
			if _, ok := s[setting][k]; ok {
				return true
			}
		}
	}
	return false
}

func (n *fakeNM) delete(id int) *dbus.Error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enter("Delete", id, ""); err != nil {
		return err
	}
	if _, ok := n.conns[id]; !ok {
		return unknownObject(id)
	}
	delete(n.conns, id)
	return nil
}

func nmInvalid(prop, msg string) *dbus.Error {
	return dbus.NewError("org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty", []any{prop + ": " + msg})
}

// nmSignatures are the D-Bus types of the properties the fake knows, as
// NetworkManager's settings documentation gives them.
var nmSignatures = map[string]string{
	"connection.id":                     "s",
	"connection.uuid":                   "s",
	"connection.type":                   "s",
	"connection.autoconnect":            "b",
	"connection.interface-name":         "s",
	"802-11-wireless.ssid":              "ay",
	"802-11-wireless.hidden":            "b",
	"802-11-wireless.mode":              "s",
	"802-11-wireless-security.key-mgmt": "s",
	"802-11-wireless-security.psk":      "s",
	"ipv4.method":                       "s",
	"ipv4.address-data":                 "aa{sv}",
	"ipv4.addresses":                    "aau",
	"ipv4.gateway":                      "s",
	"ipv4.dns-data":                     "as",
	"ipv4.dns":                          "au",
	"ipv6.method":                       "s",
	"ipv6.address-data":                 "aa{sv}",
	"ipv6.addresses":                    "a(ayuay)",
	"ipv6.routes":                       "a(ayuayu)",
	"ipv6.route-data":                   "aa{sv}",
	"proxy.method":                      "i",
	"proxy.pac-url":                     "s",
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// verifyNM refuses settings NetworkManager would refuse, as far as the
// properties this package uses go.
func verifyNM(s connSettings) *dbus.Error {
	for setting, props := range s {
		for k, v := range props {
			want, ok := nmSignatures[setting+"."+k]
			if !ok {
				return nmInvalid(setting+"."+k, "unknown property (to the fake)")
			}
			if got := v.Signature().String(); got != want {
				return nmInvalid(setting+"."+k, fmt.Sprintf("type %s, want %s", got, want))
			}
		}
	}
	if connString(s, "connection", "id") == "" {
		return nmInvalid("connection.id", "property is missing")
	}
	if !uuidRE.MatchString(connString(s, "connection", "uuid")) {
		return nmInvalid("connection.uuid", "not a valid UUID")
	}
	switch typ := connString(s, "connection", "type"); typ {
	case nmTypeWiFi:
		ssid, _ := s[nmTypeWiFi]["ssid"].Value().([]byte)
		if len(ssid) < 1 || len(ssid) > 32 {
			return nmInvalid("802-11-wireless.ssid", "property is missing or too long")
		}
	case nmTypeEthernet:
		if _, ok := s[nmTypeEthernet]; !ok {
			return nmInvalid("802-3-ethernet", "setting is missing")
		}
	default:
		return nmInvalid("connection.type", fmt.Sprintf("unknown type %q", typ))
	}
	if sec, ok := s["802-11-wireless-security"]; ok {
		if connString(s, "802-11-wireless-security", "key-mgmt") != "wpa-psk" {
			return nmInvalid("802-11-wireless-security.key-mgmt", "property is missing")
		}
		if psk, _ := sec["psk"].Value().(string); len(psk) < 8 || len(psk) > 64 {
			return nmInvalid("802-11-wireless-security.psk", "property is invalid")
		}
	}
	if connString(s, "ipv4", "method") == IPv4Manual {
		if a, _ := s["ipv4"]["address-data"].Value().([]map[string]dbus.Variant); len(a) == 0 {
			return nmInvalid("ipv4.method", "method 'manual' requires at least an address or a route")
		}
	}
	if p, ok := s["proxy"]; ok {
		if m, _ := p["method"].Value().(int32); m != nmProxyAuto && p["pac-url"].Value() != nil {
			return nmInvalid("proxy.pac-url", "this property is not allowed for method none")
		}
	}
	return nil
}

// String returns the calls the fake received, one a line.
func (n *fakeNM) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.calls, "\n")
}

// state returns what the fake stores, secrets included, one property a
// line: "N setting.key sig value", sorted; ay values print as strings.
func (n *fakeNM) state() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(n.conns)) {
		s := n.conns[id]
		for _, setting := range slices.Sorted(maps.Keys(s)) {
			if len(s[setting]) == 0 {
				lines = append(lines, fmt.Sprintf("%d %s {}", id, setting))
			}
			for _, k := range slices.Sorted(maps.Keys(s[setting])) {
				v := s[setting][k]
				val := v.String()
				if b, ok := v.Value().([]byte); ok {
					val = fmt.Sprintf("%q", b)
				}
				lines = append(lines, fmt.Sprintf("%d %s.%s %s %s", id, setting, k, v.Signature(), val))
			}
		}
	}
	return strings.Join(lines, "\n")
}

// uuid returns profile id's stored uuid.
func (n *fakeNM) uuid(id int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return connString(n.conns[id], "connection", "uuid")
}

// do changes the fake's behaviour under its lock.
func (n *fakeNM) do(change func(n *fakeNM)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	change(n)
}
