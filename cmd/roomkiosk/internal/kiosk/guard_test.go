package kiosk

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestNavigationGuard(t *testing.T) {
	var logs bytes.Buffer
	o, err := OriginOf("http://127.0.0.1:8480/")
	if err != nil {
		t.Fatal(err)
	}
	g := NewNavigationGuard(o, slog.New(slog.NewTextHandler(&logs, nil)))
	tests := []struct {
		kind RequestKind
		uri  string
		want bool
	}{
		{Navigate, "http://127.0.0.1:8480/", true},
		{Navigate, "http://127.0.0.1:8480/settings#audio", true},
		{Navigate, OfflinePageURI, true},
		{Navigate, "http://127.0.0.2:8480/", false},
		{Navigate, "https://meet.example.com/j/123", false},
		{Navigate, "file:///etc/passwd", false},
		{Navigate, "data:text/html,<h1>x</h1>", false},
		{Navigate, "about:config", false},
		{NewWindow, "http://127.0.0.1:8480/", false}, // even same origin: the new window would be invisible
		{NewWindow, "https://evil.example/", false},
		{Download, "http://127.0.0.1:8480/logs.tar", false},
		{RequestKind(99), "http://127.0.0.1:8480/", false},
	}
	for _, tt := range tests {
		if got := g.Allow(tt.kind, tt.uri); got != tt.want {
			t.Errorf("Allow(%v, %q) = %v, want %v", tt.kind, tt.uri, got, tt.want)
		}
	}
	// Every refusal is logged with what was refused; allowed ones are not.
	if n, want := strings.Count(logs.String(), "refused navigation"), 9; n != want {
		t.Errorf("logged %d refusals, want %d:\n%s", n, want, logs.String())
	}
	if !strings.Contains(logs.String(), `uri=https://meet.example.com/j/123`) || !strings.Contains(logs.String(), "kind=new-window") {
		t.Errorf("refusal log lacks uri or kind:\n%s", logs.String())
	}
}
