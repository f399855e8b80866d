package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// fakeAdmin answers the admin routes as roomd does and records PIN changes.
type fakeAdmin struct {
	mu   sync.Mutex
	pins []apiv1.PINChange
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "PUT /api/v1/admin/pin":
		var c apiv1.PINChange
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
			return
		}
		if len(c.New) < 4 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(422)
			_, _ = io.WriteString(w, `{"type":"/api/v1/problems/invalid-value","title":"Invalid PIN","status":422,"detail":"the PIN must be 4 to 12 digits"}`)
			return
		}
		f.mu.Lock()
		f.pins = append(f.pins, c)
		f.mu.Unlock()
		w.WriteHeader(204)
	case "GET /api/v1/admin":
		_, _ = io.WriteString(w, `{"pinSet":true,"locked":false,"attemptsLeft":3}`)
	case "DELETE /api/v1/admin/lockout":
		w.WriteHeader(204)
	case "GET /api/v1/settings":
		_, _ = io.WriteString(w, `{"version":2,"roomName":"Boardroom","calendar":{"hasPassword":true},"iceServers":[],"devices":{},"display":{}}`)
	default:
		w.WriteHeader(404)
	}
}

func runAdmin(t *testing.T, url, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runIO(context.Background(), append([]string{"-url", url}, args...), strings.NewReader(stdin), &out, &errOut, func(string) string { return "" })
	return out.String(), errOut.String(), code
}

func TestAdminCommands(t *testing.T) {
	f := &fakeAdmin{}
	ts := httptest.NewServer(f)
	defer ts.Close()

	if _, errOut, code := runAdmin(t, ts.URL, "4711\n", "admin", "set-pin"); code != exitOK || !strings.Contains(errOut, "PIN set") {
		t.Fatalf("set-pin: exit %d, %q", code, errOut)
	}
	if len(f.pins) != 1 || f.pins[0].New != "4711" || f.pins[0].Current != "" {
		t.Fatalf("PIN changes sent: %+v", f.pins)
	}
	if _, errOut, code := runAdmin(t, ts.URL, "12\n", "admin", "set-pin"); code != exitRefused || !strings.Contains(errOut, "4 to 12 digits") {
		t.Fatalf("short PIN: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runAdmin(t, ts.URL, "", "admin", "set-pin"); code != exitUsage || !strings.Contains(errOut, "standard input") {
		t.Fatalf("no PIN: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runAdmin(t, ts.URL, "", "admin", "set-pin", "4711"); code != exitUsage || !strings.Contains(errOut, "unexpected arguments") {
		t.Fatalf("PIN as an argument: exit %d, %q", code, errOut)
	}
	if out, _, code := runAdmin(t, ts.URL, "", "admin"); code != exitOK || !strings.Contains(out, "3 attempts") {
		t.Fatalf("admin status: exit %d, %q", code, out)
	}
	if _, errOut, code := runAdmin(t, ts.URL, "", "admin", "unlock"); code != exitOK || !strings.Contains(errOut, "lock cleared") {
		t.Fatalf("unlock: exit %d, %q", code, errOut)
	}
	out, _, code := runAdmin(t, ts.URL, "", "admin", "settings")
	var s apiv1.Settings
	if code != exitOK || json.Unmarshal([]byte(out), &s) != nil || s.RoomName != "Boardroom" || !s.Calendar.HasPassword {
		t.Fatalf("settings: exit %d, %q", code, out)
	}
	if _, errOut, code := runAdmin(t, ts.URL, "", "admin", "dance"); code != exitUsage || !strings.Contains(errOut, "set-pin") {
		t.Fatalf("unknown subcommand: exit %d, %q", code, errOut)
	}
}
