package fleetapi

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeProfileAcceptsAWholeProfile(t *testing.T) {
	body := `{"roomName":"Lab 4","timezone":"Europe/Berlin","ntp":true,
		"calendar":{"url":"https://cal.example/room.ics","autoJoin":true,"refresh":"5m"},
		"iceServers":[{"urls":["stun:stun.example:3478"]},{"urls":["turns:turn.example:443?transport=tcp"],"username":"u","credential":"c"}],
		"devices":{"camera":"v4l2:046d:085e:1234"},
		"display":{"sleep":true,"days":["mon","fri"],"awakeFrom":"07:30","awakeUntil":"19:00"},
		"adminPin":"2468","wifi":{"ssid":"Lab","psk":"correct horse"},
		"wired":{"method":"manual","address":"10.1.2.3/24","gateway":"10.1.2.1","dns":["10.1.2.53"]},"proxyPac":"http://wpad.example/proxy.pac"}`
	p, err := DecodeProfile([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if *p.RoomName != "Lab 4" || !*p.NTP || len(*p.ICEServers) != 2 || p.Display.AwakeFrom != "07:30" || *p.AdminPIN != "2468" {
		t.Fatalf("decoded %+v", p)
	}
}

func TestDecodeProfileNamesEveryBadField(t *testing.T) {
	cases := []struct{ body, field, reason string }{
		{`[]`, "", "not a JSON object"},
		{`{"volume":3}`, "volume", "unknown setting"},
		{`{"roomName":7}`, "roomName", "must be a string, not number"},
		{`{"ntp":"yes"}`, "ntp", "must be true or false"},
		{`{"calendar":{"url":"https://x","colour":"red"}}`, "calendar", `unknown field "colour"`},
		{`{"calendar":{"url":12}}`, "calendar.url", "must be a string"},
		{`{"calendar":{"url":"ftp://x"}}`, "calendar.url", "not an http or https URL"},
		{`{"timezone":"Mars/Olympus"}`, "timezone", "not a known IANA time zone"},
		{`{"iceServers":[{"urls":["stun:"]}]}`, "iceServers[0].urls[0]", "has no host"},
		{`{"iceServers":[{"urls":["turn:t.example"]}]}`, "iceServers[0]", "needs username and credential"},
		{`{"display":{"sleep":true,"days":["mon"],"awakeFrom":"7:00","awakeUntil":"19:00"}}`, "display.awakeFrom", "not a time HH:MM"},
		{`{"display":{"sleep":true,"days":["someday"],"awakeFrom":"07:00","awakeUntil":"19:00"}}`, "display.days[0]", "not one of"},
		{`{"adminPin":"12a4"}`, "adminPin", "4 to 12 digits"},
		{`{"roomName":""}`, "roomName", "must not be empty"},
		{`{"wifi":{"ssid":""}}`, "wifi.ssid", "1 to 32 bytes"},
		{`{"wifi":{"ssid":"Lab","psk":"short"}}`, "wifi.psk", "8 to 63"},
		{`{"wired":{"method":"static"}}`, "wired.method", "auto (DHCP) or manual"},
		{`{"wired":{"method":"manual","address":"10.1.2.3"}}`, "wired.address", "with its prefix"},
		{`{"wired":{"method":"manual","address":"10.1.2.3/24","gateway":"10.9.9.1"}}`, "wired.gateway", "in 10.1.2.0/24"},
		{`{"wired":{"method":"auto","dns":["8.8.8.8","::1"]}}`, "wired.dns[1]", "not an IPv4 address"},
		{`{"proxyPac":"file:///etc/proxy.pac"}`, "proxyPac", "not an http or https URL"},
	}
	for _, c := range cases {
		_, err := DecodeProfile([]byte(c.body))
		var pe *ProfileError
		if !errors.As(err, &pe) {
			t.Errorf("%s: error %v, want a *ProfileError", c.body, err)
			continue
		}
		found := false
		for _, f := range pe.Fields {
			if f.Field == c.field && strings.Contains(f.Reason, c.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: got %v, want %s: …%s…", c.body, pe.Fields, c.field, c.reason)
		}
	}
}

func TestProfileVersionIgnoresKeyOrderAndSpacing(t *testing.T) {
	a, err := ProfileVersion([]byte(`{"ntp":true,"roomName":"A","display":{"sleep":false,"days":["mon"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ProfileVersion([]byte(`{ "display":{"days":["mon"],"sleep":false}, "roomName":"A", "ntp":true }`))
	c, _ := ProfileVersion([]byte(`{"ntp":false,"roomName":"A","display":{"sleep":false,"days":["mon"]}}`))
	if a != b || a == c || len(a) != 16 {
		t.Fatalf("versions %s %s %s", a, b, c)
	}
	if _, err := ProfileVersion([]byte(`{`)); err == nil {
		t.Fatal("broken JSON has a version")
	}
}
