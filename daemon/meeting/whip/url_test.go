package whip

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/daemon/meeting"
)

func TestResolve(t *testing.T) {
	noLeaks(t)
	tokens := map[string]string{"cfg.example.com": "cfgtok", "port.example.com:8443": "porttok"}
	for _, c := range []struct {
		raw                      string
		publish, subscribe       string // endpoint URLs, "" for none
		publishTok, subscribeTok string
	}{
		{raw: "whip+https://live.example.com/whip/endpoint/room42", publish: "https://live.example.com/whip/endpoint/room42"},
		{raw: "WHIP+HTTPS://Live.Example.com/whip/ep", publish: "https://live.example.com/whip/ep"},
		{raw: "whip+https://live.example.com", publish: "https://live.example.com/"},
		{raw: "whip+https://live.example.com/ep?stream=a&b=c", publish: "https://live.example.com/ep?stream=a&b=c"},
		{raw: "whip+https://live.example.com/ep#token=s3cr3t", publish: "https://live.example.com/ep", publishTok: "s3cr3t"},
		{raw: "whip+https://live.example.com/ep#token=a%2Bb", publish: "https://live.example.com/ep", publishTok: "a+b"},
		{raw: "whip+http://127.0.0.1:7080/whip/endpoint/x", publish: "http://127.0.0.1:7080/whip/endpoint/x"},
		{raw: "whip+http://localhost/x", publish: "http://localhost/x"},
		{raw: "whip+http://[::1]:8080/x", publish: "http://[::1]:8080/x"},
		{raw: "whip+https://cfg.example.com/ep", publish: "https://cfg.example.com/ep", publishTok: "cfgtok"},
		{raw: "whip+https://cfg.example.com/ep#token=url", publish: "https://cfg.example.com/ep", publishTok: "url"},
		{raw: "whip+https://port.example.com:8443/ep", publish: "https://port.example.com:8443/ep", publishTok: "porttok"},
		{raw: "whip+https://port.example.com/ep", publish: "https://port.example.com/ep"},
		{
			raw:          "whip+https://live.example.com/whip/ep?whep=https%3A%2F%2Flive.example.com%2Fwhep%2Fep#token=t1",
			publish:      "https://live.example.com/whip/ep",
			subscribe:    "https://live.example.com/whep/ep",
			publishTok:   "t1",
			subscribeTok: "t1",
		},
		{
			raw:        "whip+https://live.example.com/whip/ep?a=1&whep=https%3A%2F%2Fcdn.example.net%2Fwhep%2Fep&b=2#token=t1",
			publish:    "https://live.example.com/whip/ep?a=1&b=2",
			subscribe:  "https://cdn.example.net/whep/ep",
			publishTok: "t1",
		},
		{
			raw:          "whip+https://cfg.example.com/whip/ep?whep=https%3A%2F%2Fcfg.example.com%2Fwhep",
			publish:      "https://cfg.example.com/whip/ep",
			subscribe:    "https://cfg.example.com/whep",
			publishTok:   "cfgtok",
			subscribeTok: "cfgtok",
		},
		{
			raw:          "whip+https://live.example.com/whip/ep?whep=https%3A%2F%2Fcfg.example.com%2Fwhep#token=t1",
			publish:      "https://live.example.com/whip/ep",
			subscribe:    "https://cfg.example.com/whep",
			publishTok:   "t1",
			subscribeTok: "cfgtok",
		},
		{raw: "whep+https://cdn.example.net/whep/stream", subscribe: "https://cdn.example.net/whep/stream"},
		{raw: "whep+https://cdn.example.net/whep/stream#token=wtok", subscribe: "https://cdn.example.net/whep/stream", subscribeTok: "wtok"},
		{raw: "whep+http://127.0.0.2/whep", subscribe: "http://127.0.0.2/whep"},
	} {
		t.Run(c.raw, func(t *testing.T) {
			u := mustParse(t, c.raw)
			if !match(u) {
				t.Fatal("match = false")
			}
			tg, err := resolve(u, tokens)
			if err != nil {
				t.Fatal(err)
			}
			if got := urlString(tg.Publish); got != c.publish {
				t.Errorf("publish = %q, want %q", got, c.publish)
			}
			if got := urlString(tg.Subscribe); got != c.subscribe {
				t.Errorf("subscribe = %q, want %q", got, c.subscribe)
			}
			if tg.publishToken != c.publishTok || tg.subscribeToken != c.subscribeTok {
				t.Errorf("tokens = %q, %q; want %q, %q", tg.publishToken, tg.subscribeToken, c.publishTok, c.subscribeTok)
			}
			for _, tok := range []string{c.publishTok, c.subscribeTok} {
				if tok != "" && (strings.Contains(tg.String(), tok) || strings.Contains(Redact(u), tok)) {
					t.Errorf("token %q shows in %q or %q", tok, tg.String(), Redact(u))
				}
			}
		})
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

func TestResolveRefuses(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		raw  string
		want error
		text string
	}{
		{"https://live.example.com/whip", ErrNotWHIP, ""},
		{"whip+wss://live.example.com/whip", ErrNotWHIP, ""},
		{"janus+https://live.example.com/?room=1", ErrNotWHIP, ""},
		{"whip+http://live.example.com/whip", ErrInsecure, "use https"},
		{"whip+http://10.0.0.1/whip", ErrInsecure, ""},
		{"whip+http://localhost.example.com/whip", ErrInsecure, ""},
		{"whep+http://live.example.com/whep", ErrInsecure, ""},
		{"whip+https://live.example.com/ep?whep=http%3A%2F%2Fcdn.example.net%2Fwhep", ErrInsecure, ""},
		{"whip+https://user:pw@live.example.com/ep", ErrBadURL, "#token="},
		{"whip+https://live.example.com/ep#secret", ErrBadURL, "#token=TOKEN"},
		{"whip+https://live.example.com/ep#token=a&x=b", ErrBadURL, ""},
		{"whip+https://live.example.com/ep#token=", ErrBadURL, "empty"},
		{"whip+https://live.example.com/ep#token=a%20b", ErrBadURL, "spaces"},
		{"whip+https://live.example.com/ep#token=" + strings.Repeat("x", 1000) + "&token=y", ErrBadURL, ""},
		{"whip+https://live.example.com:0/ep", ErrBadURL, "port"},
		{"whip+https://live.example.com:70000/ep", ErrBadURL, "port"},
		{"whip+https://live.example.com/ep?whep=ftp%3A%2F%2Fh%2Fx", ErrBadURL, "https"},
		{"whip+https://live.example.com/ep?whep=%2Frelative", ErrBadURL, "https"},
		{"whip+https://live.example.com/ep?whep=https%3A%2F%2Fa%2Fx&whep=https%3A%2F%2Fb%2Fy", ErrBadURL, "2 times"},
		{"whip+https://live.example.com/ep?whep=https%3A%2F%2Fa%2Fx%23nottoken", ErrBadURL, "no fragment"},
		{"whip+https://live.example.com/ep?whep=https%3A%2F%2Fa%2Fx%23token%3Dsecret", ErrBadURL, "Tokens setting"},
		{"whep+https://live.example.com/ep?whep=https%3A%2F%2Fa%2Fx", ErrBadURL, "whip+"},
		{"whip+https:opaque", ErrBadURL, ""},
	} {
		t.Run(c.raw, func(t *testing.T) {
			u, err := url.Parse(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = resolve(u, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, c.want, c.text)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":pw@")) {
				t.Errorf("err = %v shows a secret", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	noLeaks(t)
	u := mustParse(t, "whip+https://h/ep?x=1&whep=https%3A%2F%2Fc%2Fw%23token%3Dinner#token=outer")
	got := Redact(u)
	if strings.Contains(got, "inner") || strings.Contains(got, "outer") || strings.Contains(got, "token") {
		t.Errorf("Redact = %s, still has a token", got)
	}
	if want := "whip+https://h/ep?x=1&whep=https%3A%2F%2Fc%2Fw"; got != want {
		t.Errorf("Redact = %s, want %s", got, want)
	}
}

func TestProviderMatchAndForms(t *testing.T) {
	noLeaks(t)
	p, _ := newProvider(t, Config{}, &fakePeers{})
	for raw, want := range map[string]bool{
		"whip+https://h/ep":    true,
		"whip+http://h/ep":     true, // Join says why not
		"whep+https://h/ep":    true,
		"https://h/ep":         false,
		"janus+wss://h/?room=": false,
	} {
		if got := p.Match(mustParse(t, raw)); got != want {
			t.Errorf("Match(%s) = %v, want %v", raw, got, want)
		}
	}
	forms := strings.Join(p.URLForms(), "\n")
	for _, want := range []string{"whip+https://", "whep+https://", "whep=", "#token=", "loopback"} {
		if !strings.Contains(forms, want) {
			t.Errorf("URLForms lacks %q:\n%s", want, forms)
		}
	}
	if p.Name() != "whip" {
		t.Errorf("Name = %q", p.Name())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	noLeaks(t)
	for _, cfg := range []Config{
		{Tokens: map[string]string{"": "x"}},
		{Tokens: map[string]string{"https://h/": "x"}},
		{Tokens: map[string]string{"h": ""}},
		{Tokens: map[string]string{"h": "two words"}},
	} {
		if _, err := New(cfg, func(ctx context.Context) (meeting.PeerFactory, error) { return nil, nil }, nil); err == nil {
			t.Errorf("New(%v) accepted", cfg.Tokens)
		}
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("New without a peer factory accepted")
	}
}
