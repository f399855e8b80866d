package whip

import (
	"reflect"
	"testing"

	"github.com/atriumroom/atrium/daemon/meeting"
)

func TestICEServersFromLinks(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		name    string
		headers []string
		want    []meeting.ICEServer
		skipped int
		bad     bool
	}{
		{
			name:    "one stun",
			headers: []string{`<stun:stun.example.net>; rel="ice-server"`},
			want:    []meeting.ICEServer{{URLs: []string{"stun:stun.example.net"}}},
		},
		{
			name: "RFC 9725 example, several per field",
			headers: []string{
				`<stun:stun.example.net>; rel="ice-server", <turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"`,
				`<turns:turn.example.net?transport=tcp>; rel="ice-server";username="user";credential="myPassword";credential-type="password"`,
			},
			want: []meeting.ICEServer{
				{URLs: []string{"stun:stun.example.net"}},
				{URLs: []string{"turn:turn.example.net?transport=udp"}, Username: "user", Credential: "myPassword"},
				{URLs: []string{"turns:turn.example.net?transport=tcp"}, Username: "user", Credential: "myPassword"},
			},
		},
		{
			name:    "quoted commas, semicolons and escapes; token values; case",
			headers: []string{`<turn:t.example.net>;REL=ice-server;Username="a,b;c";credential="q\"x\\y"`},
			want:    []meeting.ICEServer{{URLs: []string{"turn:t.example.net"}, Username: "a,b;c", Credential: `q"x\y`}},
		},
		{
			name:    "rel list, other relations ignored",
			headers: []string{`<https://example.net/doc>; rel="help", <stun:s.example.net>; rel="ice-server other"`},
			want:    []meeting.ICEServer{{URLs: []string{"stun:s.example.net"}}},
		},
		{
			name:    "first rel wins",
			headers: []string{`<stun:s.example.net>; rel="help"; rel="ice-server"`},
		},
		{
			name:    "not stun or turn, oauth",
			headers: []string{`<https://x.example.net>; rel="ice-server", <turn:t.example.net>; rel="ice-server"; credential-type="oauth"`},
			skipped: 2,
		},
		{
			name:    "malformed after a good one",
			headers: []string{`<stun:a.example.net>; rel="ice-server", stun:b.example.net; rel="ice-server"`},
			want:    []meeting.ICEServer{{URLs: []string{"stun:a.example.net"}}},
			bad:     true,
		},
		{
			name:    "unterminated quote",
			headers: []string{`<stun:a.example.net>; rel="ice-server`},
			bad:     true,
		},
		{
			name: "too many",
			headers: []string{
				`<stun:1>;rel=ice-server,<stun:2>;rel=ice-server,<stun:3>;rel=ice-server,<stun:4>;rel=ice-server,<stun:5>;rel=ice-server`,
				`<stun:6>;rel=ice-server,<stun:7>;rel=ice-server,<stun:8>;rel=ice-server,<stun:9>;rel=ice-server`,
			},
			want: []meeting.ICEServer{
				{URLs: []string{"stun:1"}}, {URLs: []string{"stun:2"}}, {URLs: []string{"stun:3"}}, {URLs: []string{"stun:4"}},
				{URLs: []string{"stun:5"}}, {URLs: []string{"stun:6"}}, {URLs: []string{"stun:7"}}, {URLs: []string{"stun:8"}},
			},
			skipped: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			links, err := parseLinks(c.headers)
			if (err != nil) != c.bad {
				t.Errorf("err = %v, want error: %v", err, c.bad)
			}
			got, skipped := iceServers(links)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("servers = %+v\nwant %+v", got, c.want)
			}
			if len(skipped) != c.skipped {
				t.Errorf("skipped = %q, want %d", skipped, c.skipped)
			}
		})
	}
}
