package osconfig

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// withUUID puts profile id's uuid into want, where it says UUID.
func withUUID(n *fakeNM, id int, want string) string {
	return strings.ReplaceAll(want, "UUID", n.uuid(id))
}

func TestSetWiFiAddUpdateDelete(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)

	if st, err := o.WiFiSettings(ctx); err != nil || st != nil {
		t.Fatalf("WiFiSettings with no profile = %+v, %v; want nil, nil", st, err)
	}
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium Rooms", PSK: "correct horse battery"}); err != nil {
		t.Fatalf("SetWiFi add: %v", err)
	}
	uuid := n.uuid(1)
	if !uuidRE.MatchString(uuid) {
		t.Fatalf("new profile's uuid %q is not a UUID", uuid)
	}
	want := withUUID(n, 1, `1 802-11-wireless.hidden b false
1 802-11-wireless.mode s "infrastructure"
1 802-11-wireless.ssid ay "Atrium Rooms"
1 802-11-wireless-security.key-mgmt s "wpa-psk"
1 802-11-wireless-security.psk s "correct horse battery"
1 connection.autoconnect b true
1 connection.id s "atrium-wifi"
1 connection.type s "802-11-wireless"
1 connection.uuid s "UUID"
1 ipv6.address-data aa{sv} @aa{sv} []
1 ipv6.method s "auto"
1 ipv6.route-data aa{sv} @aa{sv} []`)
	if got := n.state(); got != want {
		t.Errorf("after add, NetworkManager has:\n%s\nwant:\n%s", got, want)
	}
	if st, err := o.WiFiSettings(ctx); err != nil || *st != (WiFiState{SSID: "Atrium Rooms", HasPSK: true}) {
		t.Errorf("WiFiSettings = %+v, %v", st, err)
	}

	// An update to an open, hidden network keeps the profile and its uuid.
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium Guest", Hidden: true}); err != nil {
		t.Fatalf("SetWiFi update: %v", err)
	}
	want = withUUID(n, 1, `1 802-11-wireless.hidden b true
1 802-11-wireless.mode s "infrastructure"
1 802-11-wireless.ssid ay "Atrium Guest"
1 connection.autoconnect b true
1 connection.id s "atrium-wifi"
1 connection.type s "802-11-wireless"
1 connection.uuid s "UUID"
1 ipv6.address-data aa{sv} @aa{sv} []
1 ipv6.method s "auto"
1 ipv6.route-data aa{sv} @aa{sv} []`)
	if got := n.state(); got != want || n.uuid(1) != uuid {
		t.Errorf("after update, NetworkManager has:\n%s\nwant:\n%s", got, want)
	}
	if st, err := o.WiFiSettings(ctx); err != nil || *st != (WiFiState{SSID: "Atrium Guest", Hidden: true}) {
		t.Errorf("WiFiSettings = %+v, %v", st, err)
	}

	// Back to a PSK, given as the raw 64-digit key.
	hexKey := strings.Repeat("0123456789abcdef", 4)
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium Rooms", PSK: hexKey}); err != nil {
		t.Fatalf("SetWiFi update: %v", err)
	}
	if got := n.state(); !strings.Contains(got, `1 802-11-wireless-security.psk s "`+hexKey+`"`) || n.uuid(1) != uuid {
		t.Errorf("after update with a hex key, NetworkManager has:\n%s", got)
	}

	if err := o.SetWiFi(ctx, nil); err != nil {
		t.Fatalf("SetWiFi(nil): %v", err)
	}
	if got := n.state(); got != "" {
		t.Errorf("after delete, NetworkManager has:\n%s", got)
	}
	if st, err := o.WiFiSettings(ctx); err != nil || st != nil {
		t.Errorf("WiFiSettings after delete = %+v, %v; want nil, nil", st, err)
	}
	// Deleting what is not there is no error and no call.
	if err := o.SetWiFi(ctx, nil); err != nil {
		t.Errorf("SetWiFi(nil) again: %v", err)
	}
	wantCalls := `ListConnections
ListConnections
AddConnection atrium-wifi
ListConnections
GetSettings 1
ListConnections
GetSettings 1
Update 1
ListConnections
GetSettings 1
ListConnections
GetSettings 1
Update 1
ListConnections
GetSettings 1
Delete 1
ListConnections
ListConnections`
	if n.String() != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", n, wantCalls)
	}
}

// Other profiles are read but never touched; the atrium one is found among
// them by its id.
func TestOtherProfilesLeftAlone(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	other := connSettings{
		"connection":   {"id": dbus.MakeVariant("Wired connection 1"), "uuid": dbus.MakeVariant(newUUID()), "type": dbus.MakeVariant(nmTypeEthernet)},
		nmTypeEthernet: {},
	}
	n.put(t, other)
	before := n.state()
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Auto}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetProxyPAC(ctx, "http://wpad.example/wpad.dat"); err != nil {
		t.Fatal(err)
	}
	if got := n.state(); !strings.HasPrefix(got, before+"\n2 ") {
		t.Errorf("the other profile changed:\n%s\nwas:\n%s", got, before)
	}
	if strings.Contains(n.String(), "Update 1") {
		t.Errorf("the other profile was updated:\n%s", n)
	}
}

// A profile deleted between ListConnections and GetSettings is passed
// over, not an error.
func TestProfileGoneWhileListing(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiFi(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n.do(func(n *fakeNM) { n.ghosts = []int{1}; n.calls = nil })
	if st, err := o.WiFiSettings(ctx); err != nil || st != nil {
		t.Errorf("WiFiSettings = %+v, %v; want nil, nil", st, err)
	}
	if want := "ListConnections\nGetSettings 1"; n.String() != want {
		t.Errorf("calls:\n%s\nwant:\n%s", n, want)
	}
}

// The PSK never comes back: not from WiFiSettings (even when the service
// hands it out), not in an error, not in the log.
func TestPSKNeverReadBack(t *testing.T) {
	checkLeaks(t)
	addr := startBus(t)
	f := newFakeOS(t, connect(t, addr))
	n := newFakeNM(t, f.conn)
	var log syncBuffer
	o, err := Open(testContext(t), WithAddress(addr), WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := testContext(t)
	const psk = "s3cret-passphrase"
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: psk}); err != nil {
		t.Fatal(err)
	}
	n.do(func(n *fakeNM) { n.leakSecrets = true })
	st, err := o.WiFiSettings(ctx)
	if err != nil || st == nil || !st.HasPSK {
		t.Fatalf("WiFiSettings = %+v, %v", st, err)
	}
	if s := fmt.Sprintf("%#v", *st); strings.Contains(s, psk) {
		t.Errorf("WiFiSettings returned the PSK: %s", s)
	}
	for _, bad := range []string{"short", psk + "\x01"} {
		err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: bad})
		if err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("SetWiFi with a bad PSK = %v; want an error without the PSK", err)
		}
	}
	n.do(func(n *fakeNM) { n.refuse["Update"] = errNMPermission })
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: psk}); err == nil || strings.Contains(err.Error(), psk) {
		t.Errorf("refused SetWiFi = %v; want an error without the PSK", err)
	}
	if got := log.String(); strings.Contains(got, psk) || !strings.Contains(got, `msg="Wi-Fi profile added" id=atrium-wifi ssid=Atrium hidden=false psk=true`) {
		t.Errorf("log:\n%s", got)
	}
}

func TestInvalidNetworkRejectedBeforeAnyCall(t *testing.T) {
	o, f, n := setupNM(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		w     WiFi
		field string
	}{
		{WiFi{SSID: ""}, "WiFi.SSID"},
		{WiFi{SSID: strings.Repeat("x", 33)}, "WiFi.SSID"},
		{WiFi{SSID: strings.Repeat("é", 17)}, "WiFi.SSID"}, // 34 bytes
		{WiFi{SSID: "a", PSK: "1234567"}, "WiFi.PSK"},
		{WiFi{SSID: "a", PSK: strings.Repeat("p", 65)}, "WiFi.PSK"},
		{WiFi{SSID: "a", PSK: strings.Repeat("g", 64)}, "WiFi.PSK"},
		{WiFi{SSID: "a", PSK: "pass\tword"}, "WiFi.PSK"},
		{WiFi{SSID: "a", PSK: "passwörter"}, "WiFi.PSK"},
	} {
		err := o.SetWiFi(ctx, &tc.w)
		if !errors.Is(err, ErrInvalidNetwork) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("SetWiFi(%+v) = %v; want ErrInvalidNetwork naming %s", tc.w, err, tc.field)
		}
	}
	for _, tc := range []struct {
		w     WiredIPv4
		field string
	}{
		{WiredIPv4{}, "WiredIPv4.Method"},
		{WiredIPv4{Method: "dhcp"}, "WiredIPv4.Method"},
		{WiredIPv4{Method: IPv4Auto, Address: "10.0.0.2/24"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2/33"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2/0"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "fd00::2/64"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.0/24"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.255/24"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "127.0.0.2/8"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "224.0.0.5/24"}, "WiredIPv4.Address"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2/24", Gateway: "10.0.1.1"}, "WiredIPv4.Gateway"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2/24", Gateway: "10.0.0.2"}, "WiredIPv4.Gateway"},
		{WiredIPv4{Method: IPv4Manual, Address: "10.0.0.2/24", Gateway: "router"}, "WiredIPv4.Gateway"},
		{WiredIPv4{Method: IPv4Auto, DNS: []string{"1.1.1.1", "dns.example"}}, "WiredIPv4.DNS[1]"},
		{WiredIPv4{Method: IPv4Auto, DNS: []string{"2001:db8::53"}}, "WiredIPv4.DNS[0]"},
		{WiredIPv4{Method: IPv4Auto, DNS: []string{"1.1.1.1", "1.1.1.1"}}, "WiredIPv4.DNS[1]"},
		{WiredIPv4{Method: IPv4Auto, DNS: []string{"0.0.0.0"}}, "WiredIPv4.DNS[0]"},
		{WiredIPv4{Method: IPv4Auto, DNS: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"}}, "WiredIPv4.DNS"},
	} {
		err := o.SetWiredIPv4(ctx, tc.w)
		if !errors.Is(err, ErrInvalidNetwork) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("SetWiredIPv4(%+v) = %v; want ErrInvalidNetwork naming %s", tc.w, err, tc.field)
		}
	}
	for _, u := range []string{
		"wpad.example/wpad.dat", "ftp://wpad.example/wpad.dat", "file:///etc/wpad.dat", "http://",
		"http://user:pw@wpad.example/wpad.dat", "http://wpad.example/a b", "http:wpad.dat",
		"http://wpad.example/" + strings.Repeat("a", 2048),
	} {
		err := o.SetProxyPAC(ctx, u)
		if !errors.Is(err, ErrInvalidNetwork) || !strings.Contains(err.Error(), "pacURL") {
			t.Errorf("SetProxyPAC(%q) = %v; want ErrInvalidNetwork naming pacURL", u, err)
		}
	}
	if n.String() != "" || f.String() != "" {
		t.Errorf("calls made:\n%s\n%s", n, f)
	}
}

func TestSetWiredIPv4(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	if w, err := o.WiredIPv4Settings(ctx); err != nil || !reflect.DeepEqual(w, WiredIPv4{}) {
		t.Fatalf("WiredIPv4Settings with no profile = %+v, %v", w, err)
	}
	static := WiredIPv4{Method: IPv4Manual, Address: "10.1.2.3/24", Gateway: "10.1.2.1", DNS: []string{"10.1.2.53", "9.9.9.9"}}
	if err := o.SetWiredIPv4(ctx, static); err != nil {
		t.Fatalf("SetWiredIPv4 static: %v", err)
	}
	want := withUUID(n, 1, `1 802-3-ethernet {}
1 connection.autoconnect b true
1 connection.id s "atrium-wired"
1 connection.type s "802-3-ethernet"
1 connection.uuid s "UUID"
1 ipv4.address-data aa{sv} [{"address": <"10.1.2.3">, "prefix": <@u 24>}]
1 ipv4.dns-data as ["10.1.2.53", "9.9.9.9"]
1 ipv4.gateway s "10.1.2.1"
1 ipv4.method s "manual"
1 ipv6.address-data aa{sv} @aa{sv} []
1 ipv6.method s "auto"
1 ipv6.route-data aa{sv} @aa{sv} []`)
	if got := n.state(); got != want {
		t.Errorf("after static, NetworkManager has:\n%s\nwant:\n%s", got, want)
	}
	if w, err := o.WiredIPv4Settings(ctx); err != nil || !reflect.DeepEqual(w, static) {
		t.Errorf("WiredIPv4Settings = %+v, %v; want %+v", w, err, static)
	}
	uuid := n.uuid(1)

	dhcp := WiredIPv4{Method: IPv4Auto}
	if err := o.SetWiredIPv4(ctx, dhcp); err != nil {
		t.Fatalf("SetWiredIPv4 DHCP: %v", err)
	}
	want = withUUID(n, 1, `1 802-3-ethernet {}
1 connection.autoconnect b true
1 connection.id s "atrium-wired"
1 connection.type s "802-3-ethernet"
1 connection.uuid s "UUID"
1 ipv4.method s "auto"
1 ipv6.address-data aa{sv} @aa{sv} []
1 ipv6.method s "auto"
1 ipv6.route-data aa{sv} @aa{sv} []`)
	if got := n.state(); got != want || n.uuid(1) != uuid {
		t.Errorf("after DHCP, NetworkManager has:\n%s\nwant:\n%s", got, want)
	}
	if w, err := o.WiredIPv4Settings(ctx); err != nil || !reflect.DeepEqual(w, dhcp) {
		t.Errorf("WiredIPv4Settings = %+v, %v; want %+v", w, err, dhcp)
	}

	// DHCP with DNS servers of the room's own.
	dhcpDNS := WiredIPv4{Method: IPv4Auto, DNS: []string{"10.1.2.53"}}
	if err := o.SetWiredIPv4(ctx, dhcpDNS); err != nil {
		t.Fatalf("SetWiredIPv4 DHCP+DNS: %v", err)
	}
	if w, err := o.WiredIPv4Settings(ctx); err != nil || !reflect.DeepEqual(w, dhcpDNS) {
		t.Errorf("WiredIPv4Settings = %+v, %v; want %+v", w, err, dhcpDNS)
	}
}

// A profile from a NetworkManager older than dns-data (or written by hand
// with the old keys) reads back through "dns", an address in network byte
// order held in a host-order integer.
func TestWiredIPv4SettingsOldDNSKey(t *testing.T) {
	o, _, n := setupNM(t)
	dns := func(a, b, c, d byte) uint32 { return binary.NativeEndian.Uint32([]byte{a, b, c, d}) }
	n.put(t, connSettings{
		"connection":   {"id": dbus.MakeVariant(WiredConnectionID), "uuid": dbus.MakeVariant(newUUID()), "type": dbus.MakeVariant(nmTypeEthernet)},
		nmTypeEthernet: {},
		"ipv4": {
			"method": dbus.MakeVariant("manual"),
			"address-data": dbus.MakeVariant([]map[string]dbus.Variant{{
				"address": dbus.MakeVariant("192.168.7.20"), "prefix": dbus.MakeVariant(uint32(23)),
			}}),
			"dns": dbus.MakeVariant([]uint32{dns(192, 168, 7, 1), dns(1, 2, 3, 4)}),
		},
	})
	want := WiredIPv4{Method: IPv4Manual, Address: "192.168.7.20/23", DNS: []string{"192.168.7.1", "1.2.3.4"}}
	if w, err := o.WiredIPv4Settings(testContext(t)); err != nil || !reflect.DeepEqual(w, want) {
		t.Errorf("WiredIPv4Settings = %+v, %v; want %+v", w, err, want)
	}
}

func TestSetProxyPAC(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	if err := o.SetProxyPAC(ctx, ""); err != nil {
		t.Errorf("clearing the proxy with no profile: %v", err)
	}
	if err := o.SetProxyPAC(ctx, "http://wpad.example/wpad.dat"); !errors.Is(err, ErrNoConnection) {
		t.Errorf("SetProxyPAC with no profile = %v, want ErrNoConnection", err)
	}
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Auto}); err != nil {
		t.Fatal(err)
	}
	before := n.state()
	const pac = "https://proxy.example.org/proxy.pac"
	if err := o.SetProxyPAC(ctx, pac); err != nil {
		t.Fatalf("SetProxyPAC: %v", err)
	}
	got := n.state()
	for _, id := range []string{"1", "2"} {
		for _, line := range []string{id + ` proxy.method i 1`, id + ` proxy.pac-url s "` + pac + `"`} {
			if !strings.Contains(got, line+"\n") && !strings.HasSuffix(got, line) {
				t.Errorf("after SetProxyPAC NetworkManager lacks %s:\n%s", line, got)
			}
		}
	}
	// The Wi-Fi profile kept its PSK, which the update did not carry.
	if !strings.Contains(got, `1 802-11-wireless-security.psk s "correct horse"`) {
		t.Errorf("the PSK was lost:\n%s", got)
	}
	if err := o.SetProxyPAC(ctx, ""); err != nil {
		t.Fatalf("SetProxyPAC clear: %v", err)
	}
	// Both profiles say method none and are otherwise as before.
	got = n.state()
	var rest []string
	for _, line := range strings.Split(got, "\n") {
		if line != "1 proxy.method i 0" && line != "2 proxy.method i 0" {
			rest = append(rest, line)
		}
	}
	if strings.Count(got, "proxy.") != 2 || strings.Join(rest, "\n") != before {
		t.Errorf("after clearing, NetworkManager has:\n%s\nbefore the proxy:\n%s", got, before)
	}
}

// A profile added after SetProxyPAC takes the other one's proxy setting.
func TestNewProfileTakesProxy(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	const pac = "http://wpad.example/wpad.dat"
	if err := o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Auto}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetProxyPAC(ctx, pac); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium"}); err != nil {
		t.Fatal(err)
	}
	if got := n.state(); !strings.Contains(got, `2 proxy.method i 1`+"\n"+`2 proxy.pac-url s "`+pac+`"`) {
		t.Errorf("the new Wi-Fi profile has no proxy:\n%s", got)
	}
}

// A refusal by NetworkManager comes back as a ServiceError and leaves every
// profile as it was.
func TestNetworkRefusalLeavesSettings(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Manual, Address: "10.1.2.3/24"}); err != nil {
		t.Fatal(err)
	}
	before := n.state()
	wantRefused := func(what string, err error) {
		t.Helper()
		se, ok := serviceErrorOf(err)
		if !ok || se.Name != "org.freedesktop.NetworkManager.Settings.PermissionDenied" || se.Message != "Insufficient privileges" {
			t.Errorf("%s = %v; want the PermissionDenied ServiceError", what, err)
		}
		if got := n.state(); got != before {
			t.Errorf("after the refused %s NetworkManager has:\n%s\nwant:\n%s", what, got, before)
		}
	}
	n.do(func(n *fakeNM) { n.refuse["Update"] = errNMPermission })
	err := o.SetWiFi(ctx, &WiFi{SSID: "Elsewhere", PSK: "another one"})
	wantRefused("SetWiFi", err)
	if want := `NetworkManager: set Wi-Fi "Elsewhere": update connection "atrium-wifi": org.freedesktop.NetworkManager.Settings.PermissionDenied: Insufficient privileges`; err == nil || err.Error() != want {
		t.Errorf("error text %v, want %s", err, want)
	}
	wantRefused("SetWiredIPv4", o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Auto}))
	wantRefused("SetProxyPAC", o.SetProxyPAC(ctx, "http://wpad.example/wpad.dat"))
	if st, err := o.WiFiSettings(ctx); err != nil || *st != (WiFiState{SSID: "Atrium", HasPSK: true}) {
		t.Errorf("WiFiSettings = %+v, %v", st, err)
	}

	n.do(func(n *fakeNM) { delete(n.refuse, "Update"); n.refuse["Delete"] = errNMPermission })
	wantRefused("SetWiFi(nil)", o.SetWiFi(ctx, nil))

	n.do(func(n *fakeNM) { n.refuse["ListConnections"] = errNMPermission })
	wantRefused("WiFiSettings", func() error { _, err := o.WiFiSettings(ctx); return err }())
	wantRefused("WiredIPv4Settings", func() error { _, err := o.WiredIPv4Settings(ctx); return err }())

	// A refused add adds nothing.
	n.do(func(n *fakeNM) {
		delete(n.refuse, "ListConnections")
		delete(n.refuse, "Delete")
	})
	if err := o.SetWiFi(ctx, nil); err != nil {
		t.Fatal(err)
	}
	before = n.state()
	n.do(func(n *fakeNM) { n.refuse["AddConnection"] = errNMPermission })
	wantRefused("SetWiFi add", o.SetWiFi(ctx, &WiFi{SSID: "Atrium"}))
}

// When the second profile refuses the proxy, the first gets its previous
// setting back.
func TestSetProxyPACRollsBack(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	if err := o.SetWiFi(ctx, &WiFi{SSID: "Atrium", PSK: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetWiredIPv4(ctx, WiredIPv4{Method: IPv4Auto}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetProxyPAC(ctx, "http://old.example/wpad.dat"); err != nil {
		t.Fatal(err)
	}
	before := n.state()
	n.do(func(n *fakeNM) { n.refuse["Update 2"] = errNMPermission; n.calls = nil })
	err := o.SetProxyPAC(ctx, "http://new.example/wpad.dat")
	if se, ok := serviceErrorOf(err); !ok || se.Name != errNMPermission.Name {
		t.Fatalf("SetProxyPAC = %v; want the refusal", err)
	}
	if got := n.state(); got != before {
		t.Errorf("after the rollback NetworkManager has:\n%s\nwant:\n%s", got, before)
	}
	wantCalls := "ListConnections\nGetSettings 1\nGetSettings 2\nUpdate 1\nUpdate 2\nUpdate 1"
	if n.String() != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", n, wantCalls)
	}
}

// The fake refuses what NetworkManager would refuse, so that the encodings
// above are tested against something that can say no.
func TestFakeNMRefusesBadEncodings(t *testing.T) {
	o, _, n := setupNM(t)
	ctx := testContext(t)
	conn := func(extra connSettings) connSettings {
		s := connSettings{"connection": {"id": dbus.MakeVariant("x"), "uuid": dbus.MakeVariant(newUUID()), "type": dbus.MakeVariant(nmTypeWiFi)},
			nmTypeWiFi: {"ssid": dbus.MakeVariant([]byte("a"))}}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}
	for name, s := range map[string]connSettings{
		"ssid as a string":   conn(connSettings{nmTypeWiFi: {"ssid": dbus.MakeVariant("a")}}),
		"proxy method as u":  conn(connSettings{"proxy": {"method": dbus.MakeVariant(uint32(1))}}),
		"pac-url with none":  conn(connSettings{"proxy": {"method": dbus.MakeVariant(int32(0)), "pac-url": dbus.MakeVariant("http://x/")}}),
		"manual, no address": conn(connSettings{"ipv4": {"method": dbus.MakeVariant("manual")}}),
		"misspelt key":       conn(connSettings{"ipv4": {"dns_data": dbus.MakeVariant([]string{})}}),
	} {
		if _, err := o.addConnection(ctx, s); err == nil {
			t.Errorf("the fake took %s", name)
		}
	}
	if _, err := o.addConnection(ctx, conn(nil)); err != nil {
		t.Errorf("the fake refused a good profile: %v", err)
	}
	if got := n.state(); strings.Count(got, "connection.id") != 1 {
		t.Errorf("the fake stored:\n%s", got)
	}
}
