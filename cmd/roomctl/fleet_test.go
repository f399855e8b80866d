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

func TestFleetCommands(t *testing.T) {
	var got []apiv1.FleetEnrollRequest
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/fleet":
			_, _ = io.WriteString(w, `{"managed":true,"server":"https://fleet.example:8443","enrolled":false,"pending":0,"canEnroll":true}`)
		case "POST /api/v1/fleet/enroll":
			var req apiv1.FleetEnrollRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			got = append(got, req)
			if req.Code == "USED" {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(422)
				_, _ = io.WriteString(w, `{"type":"/api/v1/problems/enroll-refused","title":"Enrollment refused","status":422,"detail":"this activation code was used already","field":"code"}`)
				return
			}
			_, _ = io.WriteString(w, `{"managed":true,"server":"https://fleet.example:8443","enrolled":true,"deviceId":"d-42","fleetRoom":"Lab","pending":1,"canEnroll":false}`)
		default:
			w.WriteHeader(404)
		}
	}))
	defer ts.Close()

	out, _, code := runAdmin(t, ts.URL, "", "fleet")
	if code != 0 || !strings.Contains(out, "https://fleet.example:8443") || !strings.Contains(out, "not enrolled") {
		t.Fatalf("fleet status: %d %q", code, out)
	}
	out, errOut, code := runAdmin(t, ts.URL, "", "fleet", "enroll", "-room", "Lab", "ABCD-EFGH")
	if code != 0 || !strings.Contains(errOut, "enrolled as d-42") || !strings.Contains(out, `room "Lab"`) {
		t.Fatalf("fleet enroll: %d %q %q", code, out, errOut)
	}
	if len(got) != 1 || got[0] != (apiv1.FleetEnrollRequest{Code: "ABCD-EFGH", RoomName: "Lab"}) {
		t.Fatalf("sent %+v", got)
	}
	_, errOut, code = runAdmin(t, ts.URL, "", "fleet", "enroll", "USED")
	if code != 1 || !strings.Contains(errOut, "used already") {
		t.Fatalf("refused code: %d %q", code, errOut)
	}
	if _, _, code = runAdmin(t, ts.URL, "", "fleet", "enroll"); code != 2 {
		t.Fatalf("enroll without a code: exit %d, want 2", code)
	}
}
