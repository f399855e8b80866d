package kiosk

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Origin is a web origin in the sense of RFC 6454: scheme, host and port.
// The zero Origin matches nothing.
type Origin struct {
	Scheme string // lower case: "http" or "https"
	Host   string // lower case, without IPv6 brackets
	Port   string // always explicit: the scheme's default port is filled in
}

// defaultPort fills in the port a URL leaves implicit, so that "http://h/" and
// "http://h:80/" compare equal, as browsers do. Only http and https qualify:
// roomd is a web server, and every other scheme is refused by the guard anyway.
func defaultPort(scheme string) (string, bool) {
	switch scheme {
	case "http":
		return "80", true
	case "https":
		return "443", true
	}
	return "", false
}

// OriginOf returns the origin of an absolute http or https URL.
func OriginOf(rawURL string) (Origin, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Origin{}, fmt.Errorf("parse url %q: %w", rawURL, err)
	}
	scheme := strings.ToLower(u.Scheme)
	def, ok := defaultPort(scheme)
	if !ok {
		return Origin{}, fmt.Errorf("url %q: scheme %q has no network origin: %w", rawURL, u.Scheme, ErrNotWebURL)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return Origin{}, fmt.Errorf("url %q has no host: %w", rawURL, ErrNotWebURL)
	}
	port := u.Port()
	if port == "" {
		port = def
	}
	return Origin{Scheme: scheme, Host: host, Port: port}, nil
}

// String returns the origin in serialized form, always with the port,
// e.g. "http://127.0.0.1:8480" or "http://[::1]:80".
func (o Origin) String() string {
	return o.Scheme + "://" + net.JoinHostPort(o.Host, o.Port)
}

// Contains reports whether rawURL is an http or https URL of this origin.
func (o Origin) Contains(rawURL string) bool {
	if o == (Origin{}) {
		return false
	}
	other, err := OriginOf(rawURL)
	return err == nil && other == o
}
