package kiosk

import (
	"errors"
	"testing"
)

func TestOriginOf(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"http://127.0.0.1:8480/", "http://127.0.0.1:8480"},
		{"HTTP://LocalHost:8480/ui?x=1#top", "http://localhost:8480"},
		{"http://example.com/", "http://example.com:80"},
		{"https://example.com", "https://example.com:443"},
		{"http://[::1]:8480/", "http://[::1]:8480"},
		{"http://user:pw@127.0.0.1:8480/", "http://127.0.0.1:8480"},
	}
	for _, tt := range tests {
		o, err := OriginOf(tt.url)
		if err != nil {
			t.Errorf("OriginOf(%q): %v", tt.url, err)
			continue
		}
		if got := o.String(); got != tt.want {
			t.Errorf("OriginOf(%q) = %s, want %s", tt.url, got, tt.want)
		}
	}
	for _, bad := range []string{"", "/relative", "about:blank", "file:///etc/passwd", "data:text/html,x", "http:///nohost", "ftp://h/"} {
		if _, err := OriginOf(bad); !errors.Is(err, ErrNotWebURL) {
			t.Errorf("OriginOf(%q) error = %v, want ErrNotWebURL", bad, err)
		}
	}
}

func TestOriginContains(t *testing.T) {
	o, err := OriginOf("http://127.0.0.1:8480/")
	if err != nil {
		t.Fatal(err)
	}
	yes := []string{"http://127.0.0.1:8480/", "http://127.0.0.1:8480/api/v1/events", "HTTP://127.0.0.1:8480/x#y"}
	no := []string{
		"https://127.0.0.1:8480/", // scheme differs
		"http://127.0.0.1:8481/",  // port differs
		"http://127.0.0.1/",       // port 80
		"http://127.0.0.2:8480/",  // host differs
		"http://localhost:8480/",  // same machine, different origin
		"http://127.0.0.1:8480.evil.example/",
		"http://127.0.0.1:8480@evil.example/",
		"javascript:alert(1)",
		"about:blank",
		"not a url at all\x7f",
	}
	for _, u := range yes {
		if !o.Contains(u) {
			t.Errorf("Contains(%q) = false, want true", u)
		}
	}
	for _, u := range no {
		if o.Contains(u) {
			t.Errorf("Contains(%q) = true, want false", u)
		}
	}
	if (Origin{}).Contains("http://127.0.0.1:8480/") {
		t.Error("zero Origin contains a URL")
	}
}
