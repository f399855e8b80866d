package janus_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/meeting/janus"
)

func urlProvider(t *testing.T) *janus.Provider {
	t.Helper()
	p, err := janus.New(janus.Config{Domains: map[string]janus.DomainConfig{
		"Meet.Example.com":     {API: "wss://janus.example.com/ws"},
		"poll.example.org":     {API: "https://poll.example.org/janus"},
		"ported.example:8443":  {API: "ws://10.0.0.5:8188"},
		"broken.example.net":   {API: "wss://janus.example.net"},
		"lowercase.example.io": {API: "http://127.0.0.1:8088/janus"},
	}}, func(context.Context) (meeting.PeerFactory, error) { return nil, errors.New("unused") }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestURLs(t *testing.T) {
	noLeaks(t)
	p := urlProvider(t)
	for _, c := range []struct {
		raw     string
		match   bool
		err     error // from Resolve; nil means it resolves
		api     string
		room    janus.ID
		pin     string
		display string
	}{
		// Explicit WebSocket.
		{raw: "janus+wss://janus.example.com/ws?room=1234", match: true, api: "wss://janus.example.com/ws", room: janus.NumericID(1234)},
		{raw: "janus+wss://janus.example.com:8989/?room=1234&pin=s3cret&display=Board%20Room", match: true,
			api: "wss://janus.example.com:8989/", room: janus.NumericID(1234), pin: "s3cret", display: "Board Room"},
		{raw: "janus+ws://127.0.0.1:8188?room=5", match: true, api: "ws://127.0.0.1:8188", room: janus.NumericID(5)},
		{raw: "JANUS+WSS://Janus.Example.com/x?room=1", match: true, api: "wss://Janus.Example.com/x", room: janus.NumericID(1)},
		{raw: "janus+wss://[::1]:8989/?room=1", match: true, api: "wss://[::1]:8989/", room: janus.NumericID(1)},
		// Explicit HTTP long poll; /janus is the default path.
		{raw: "janus+https://janus.example.com/janus?room=1234", match: true, api: "https://janus.example.com/janus", room: janus.NumericID(1234)},
		{raw: "janus+https://janus.example.com?room=1234", match: true, api: "https://janus.example.com/janus", room: janus.NumericID(1234)},
		{raw: "janus+http://localhost:8088/custom?room=1234", match: true, api: "http://localhost:8088/custom", room: janus.NumericID(1234)},
		// String rooms.
		{raw: "janus+wss://j.example/?room=lobby", match: true, api: "wss://j.example/", room: janus.StringID("lobby")},
		{raw: "janus+wss://j.example/?room=team-42", match: true, api: "wss://j.example/", room: janus.StringID("team-42")},
		{raw: "janus+wss://j.example/?room=%F0%9F%8E%89", match: true, api: "wss://j.example/", room: janus.StringID("🎉")},
		// Web page links on configured domains, with any path.
		{raw: "https://meet.example.com/videoroom.html?room=1234", match: true, api: "wss://janus.example.com/ws", room: janus.NumericID(1234)},
		{raw: "https://MEET.example.com/a/b/c?x=1&room=77&pin=p", match: true, api: "wss://janus.example.com/ws", room: janus.NumericID(77), pin: "p"},
		{raw: "http://meet.example.com/?room=1", match: true, api: "wss://janus.example.com/ws", room: janus.NumericID(1)},
		{raw: "https://poll.example.org/room?room=9", match: true, api: "https://poll.example.org/janus", room: janus.NumericID(9)},
		{raw: "https://ported.example:8443/?room=3", match: true, api: "ws://10.0.0.5:8188", room: janus.NumericID(3)},
		// Bad ones.
		{raw: "janus+wss://janus.example.com/ws", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/ws?room=", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/ws?pin=1", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com:99999/?room=1", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com:0/?room=1", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com:/?room=1", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=0", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=99999999999999999999", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=9223372036854775808", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=1&room=2", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=%20lobby", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=a%0Ab", match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=1&display=" + strings.Repeat("x", 129), match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://janus.example.com/?room=" + strings.Repeat("r", 257), match: true, err: janus.ErrBadURL},
		{raw: "janus+wss://user:pw@janus.example.com/?room=1", match: true, err: janus.ErrBadURL},
		{raw: "https://meet.example.com/no-room-here", match: true, err: janus.ErrBadURL},
		// Not ours.
		{raw: "https://unconfigured.example.com/?room=1234", match: false, err: janus.ErrNotJanus},
		{raw: "https://example.com/?room=1234", match: false, err: janus.ErrNotJanus},
		{raw: "whip+https://janus.example.com/?room=1", match: false, err: janus.ErrNotJanus},
		{raw: "janus://janus.example.com/?room=1", match: false, err: janus.ErrNotJanus},
		{raw: "ftp://meet.example.com/?room=1", match: false, err: janus.ErrNotJanus},
		{raw: "wss://janus.example.com/?room=1", match: false, err: janus.ErrNotJanus},
	} {
		t.Run(c.raw, func(t *testing.T) {
			u, err := meeting.ParseURL(c.raw)
			if err != nil {
				t.Fatalf("meeting.ParseURL: %v", err)
			}
			if got := p.Match(u); got != c.match {
				t.Errorf("Match = %v, want %v", got, c.match)
			}
			target, err := p.Resolve(u)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Resolve error = %v, want %v", err, c.err)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw@") {
					t.Errorf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if target.API.String() != c.api || target.Room != c.room || target.PIN != c.pin || target.Display != c.display {
				t.Errorf("Resolve = {%s %#v %q %q}, want {%s %#v %q %q}",
					target.API, target.Room, target.PIN, target.Display, c.api, c.room, c.pin, c.display)
			}
			if strings.Contains(target.String(), "s3cret") {
				t.Errorf("Target.String leaks the PIN: %s", target)
			}
		})
	}
}

// URLs that do not even parse never reach the provider: the engine's
// ParseURL rejects them first.
func TestUnparsableURLs(t *testing.T) {
	noLeaks(t)
	for _, raw := range []string{
		"janus+wss://janus.example.com:port/?room=1",
		"janus+wss://janus example.com/?room=1",
		"janus+wss:///?room=1",
	} {
		if _, err := meeting.ParseURL(raw); err == nil {
			u, _ := url.Parse(raw)
			if _, err := urlProvider(t).Resolve(u); err == nil {
				t.Errorf("%s: accepted", raw)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	noLeaks(t)
	peers := func(context.Context) (meeting.PeerFactory, error) { return nil, nil }
	for _, c := range []struct {
		name string
		cfg  janus.Config
	}{
		{"bad scheme", janus.Config{Domains: map[string]janus.DomainConfig{"a.example": {API: "ftp://a.example/"}}}},
		{"no host", janus.Config{Domains: map[string]janus.DomainConfig{"a.example": {API: "wss:///janus"}}}},
		{"query", janus.Config{Domains: map[string]janus.DomainConfig{"a.example": {API: "wss://a.example/?x=1"}}}},
		{"bad domain", janus.Config{Domains: map[string]janus.DomainConfig{"https://a.example/": {API: "wss://a.example/"}}}},
		{"empty domain", janus.Config{Domains: map[string]janus.DomainConfig{"": {API: "wss://a.example/"}}}},
	} {
		if _, err := janus.New(c.cfg, peers, nil); err == nil {
			t.Errorf("%s: New accepted %+v", c.name, c.cfg)
		}
	}
	if _, err := janus.New(janus.Config{}, nil, nil); err == nil {
		t.Error("New accepted no peer factory")
	}
	p, err := janus.New(janus.Config{}, peers, nil)
	if err != nil || p.Name() != "janus" {
		t.Errorf("New(zero config) = %v, %v", p, err)
	}
}

func TestInsecureWarning(t *testing.T) {
	noLeaks(t)
	f := newFakeJanus(t)
	p, _, log := newFakeProvider(t, janus.Config{Domains: map[string]janus.DomainConfig{
		"meet.test": {API: "ws://janus.invalid:8188/"},
	}})
	join(t, p, f.wsURL("room=1"))
	if log.has("not encrypted") {
		t.Error("warned about ws:// to loopback")
	}
	// The warning comes before connecting, which then fails: .invalid
	// never resolves.
	err := joinErr(t, p, "https://meet.test/?room=1")
	if !log.has("not encrypted") {
		t.Error("no warning for ws:// to another host")
	}
	if !strings.Contains(err.Error(), "janus.invalid") {
		t.Errorf("err = %v", err)
	}
}

func TestIDJSON(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		in   string
		want janus.ID
		err  bool
	}{
		{`1234`, janus.NumericID(1234), false},
		{`"1234"`, janus.StringID("1234"), false},
		{`"lobby"`, janus.StringID("lobby"), false},
		{`18446744073709551615`, janus.NumericID(18446744073709551615), false},
		{`-1`, janus.ID{}, true},
		{`1.5`, janus.ID{}, true},
		{`1e3`, janus.ID{}, true},
		{`true`, janus.ID{}, true},
		{`{}`, janus.ID{}, true},
	} {
		var id janus.ID
		err := id.UnmarshalJSON([]byte(c.in))
		if (err != nil) != c.err || id != c.want {
			t.Errorf("UnmarshalJSON(%s) = %#v, %v", c.in, id, err)
		}
		if err == nil {
			b, _ := id.MarshalJSON()
			if string(b) != c.in {
				t.Errorf("MarshalJSON(%#v) = %s, want %s", id, b, c.in)
			}
		}
	}
	var id janus.ID
	if err := id.UnmarshalJSON([]byte("null")); err != nil || !id.IsZero() {
		t.Errorf("null: %#v %v", id, err)
	}
	if _, err := (janus.ID{}).MarshalJSON(); err == nil {
		t.Error("marshalled an empty id")
	}
}

func TestURLFormsNameConfiguredDomains(t *testing.T) {
	p, err := janus.New(janus.Config{Domains: map[string]janus.DomainConfig{"meet.example.com": {API: "wss://meet.example.com/janus"}}},
		func(context.Context) (meeting.PeerFactory, error) { return nil, errors.New("unused") }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	forms := strings.Join(p.URLForms(), "\n")
	for _, want := range []string{"janus+wss://HOST/PATH?room=ROOM", "janus+https://", "https://meet.example.com/ANY/PAGE?room=ROOM"} {
		if !strings.Contains(forms, want) {
			t.Errorf("URLForms lacks %q:\n%s", want, forms)
		}
	}
}
