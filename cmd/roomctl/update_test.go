package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func TestUpdateCommand(t *testing.T) {
	body := `{"enabled":true,"hardware":"atrium-amd64","running":"1.0.0","slot":"a","state":"checking","rollout":"r1","target":"atrium-2.0.0","version":"2.0.0","length":100,"deferred":"maintenance-window","nextWindow":"2026-11-22T02:00:00Z","neverRetry":["1.9.0"],"securityFloor":2}`
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method+" "+r.URL.Path != "GET /api/v1/update" {
			w.WriteHeader(404)
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	defer ts.Close()
	out, _, code := runAdmin(t, ts.URL, "", "update")
	for _, want := range []string{"1.0.0 (slot a)", "checking 2.0.0 (rollout r1)", "maintenance window", "1.9.0", "Security floor:  2"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("update: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	out, _, code = runAdmin(t, ts.URL, "", "-json", "update")
	var st apiv1.UpdateStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "2.0.0" {
		t.Fatalf("update -json: %d %q", code, out)
	}
	if _, _, code = runAdmin(t, ts.URL, "", "update", "now"); code != 2 {
		t.Fatalf("update now: exit %d, want 2", code)
	}
	body = `{"enabled":false,"disabled":"updates are off: roomd.toml has no [update] section","running":"dev","state":"idle","securityFloor":0}`
	out, _, code = runAdmin(t, ts.URL, "", "update")
	if code != 0 || !strings.Contains(out, "off: updates are off") {
		t.Fatalf("updates off: %d %q", code, out)
	}
}
