package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/selftest"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

func controlValue(t *testing.T, body, control string) int64 {
	t.Helper()
	var d apiv1.Device
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("device body %q: %v", body, err)
	}
	for _, c := range d.Controls {
		if c.ID == control {
			return c.Value
		}
	}
	t.Fatalf("device %s has no control %s", d.ID, control)
	return 0
}

func TestDeviceControls(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const js = "application/json"
	cam := "/api/v1/devices/" + sim.CameraID

	if r := call(t, ts, "GET", cam, "", ""); r.status != 200 || controlValue(t, r.body, "zoom") != 100 {
		t.Fatalf("GET device: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "PUT", cam+"/controls/zoom", js, `{"value":300}`); r.status != 200 || controlValue(t, r.body, "zoom") != 300 {
		t.Fatalf("set zoom: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "PUT", cam+"/controls/pan", js, `{"delta":-2}`); r.status != 200 || controlValue(t, r.body, "pan") != -7200 {
		t.Fatalf("nudge pan: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		typ, field, want         string
	}{
		{"out of range", "PUT", cam + "/controls/zoom", `{"value":900}`, 422, apiv1.ProblemInvalidValue, "value", "outside 100..500"},
		{"both", "PUT", cam + "/controls/zoom", `{"value":1,"delta":1}`, 400, apiv1.ProblemBadRequest, "value", "exactly one"},
		{"neither", "PUT", cam + "/controls/zoom", `{}`, 400, apiv1.ProblemBadRequest, "value", "exactly one"},
		{"unknown field", "PUT", cam + "/controls/zoom", `{"val":1}`, 400, apiv1.ProblemBadRequest, "val", "unknown field"},
		{"unknown control", "PUT", cam + "/controls/sharpness", `{"value":1}`, 404, apiv1.ProblemNotFound, "control", "sharpness"},
		{"unknown device", "PUT", "/api/v1/devices/usb-0000:0000/controls/zoom", `{"value":1}`, 404, apiv1.ProblemNotFound, "id", "usb-0000:0000"},
		{"no controls", "PUT", "/api/v1/devices/" + sim.SpeakerID + "/controls/zoom", `{"value":1}`, 422, apiv1.ProblemInvalidValue, "id", "no controls"},
		{"GET unknown device", "GET", "/api/v1/devices/nope", "", 404, apiv1.ProblemNotFound, "id", "nope"},
		{"recall missing preset", "POST", cam + "/presets/Door/recall", "", 404, apiv1.ProblemNotFound, "name", "Door"},
		{"bad preset name", "PUT", cam + "/presets/a%2Fb", "", 422, apiv1.ProblemInvalidValue, "name", "a/b"},
		{"delete missing preset", "DELETE", cam + "/presets/Door", "", 404, apiv1.ProblemNotFound, "name", "Door"},
		{"preset on a speaker", "PUT", "/api/v1/devices/" + sim.SpeakerID + "/presets/Door", "", 422, apiv1.ProblemInvalidValue, "id", "no controls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctype := ""
			if c.body != "" {
				ctype = js
			}
			r := call(t, ts, c.method, c.path, ctype, c.body)
			if r.status != c.status || r.problem.Type != c.typ || r.problem.Field != c.field || !strings.Contains(r.problem.Detail, c.want) {
				t.Errorf("got %d %+v, want %d %s field %q mentioning %q", r.status, r.problem, c.status, c.typ, c.field, c.want)
			}
		})
	}
	if r := call(t, ts, "GET", cam, "", ""); controlValue(t, r.body, "zoom") != 300 {
		t.Errorf("a refused change moved zoom: %s", r.body)
	}
}

func TestMicrophoneLevel(t *testing.T) {
	ts, b := newTestServer(t, AccessLocal, "")
	b.devs[sim.MicrophoneID] = b.simDevs.Microphone()
	r := call(t, ts, "GET", "/api/v1/devices/"+sim.MicrophoneID+"/level?window=200ms", "", "")
	var lvl apiv1.AudioLevel
	if err := json.Unmarshal([]byte(r.body), &lvl); r.status != 200 || err != nil || lvl.WindowMs != 200 || lvl.RMSdBFS < -40 || lvl.PeakdBFS < lvl.RMSdBFS {
		t.Fatalf("level: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		path   string
		status int
		field  string
	}{
		{"/api/v1/devices/" + sim.MicrophoneID + "/level?window=loud", 400, "window"},
		{"/api/v1/devices/" + sim.MicrophoneID + "/level?window=10s", 422, "window"},
		{"/api/v1/devices/" + sim.CameraID + "/level", 422, "id"},
		{"/api/v1/devices/nope/level", 404, "id"},
	} {
		if r := call(t, ts, "GET", c.path, "", ""); r.status != c.status || r.problem.Field != c.field {
			t.Errorf("GET %s: %d %+v, want %d on %s", c.path, r.status, r.problem, c.status, c.field)
		}
	}
}

func TestCameraPresets(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const js = "application/json"
	cam := "/api/v1/devices/" + sim.CameraID
	call(t, ts, "PUT", cam+"/controls/zoom", js, `{"value":250}`)
	r := call(t, ts, "PUT", cam+"/presets/Whiteboard", "", "")
	var p apiv1.Preset
	if err := json.Unmarshal([]byte(r.body), &p); r.status != 200 || err != nil || p.Name != "Whiteboard" || p.Values["zoom"] != 250 {
		t.Fatalf("save preset: %d %s", r.status, r.body)
	}
	call(t, ts, "PUT", cam+"/controls/zoom", js, `{"value":100}`)
	if r := call(t, ts, "POST", cam+"/presets/Whiteboard/recall", "", ""); r.status != 200 || controlValue(t, r.body, "zoom") != 250 {
		t.Fatalf("recall: %d %s", r.status, r.body)
	}
	r = call(t, ts, "GET", cam+"/presets", "", "")
	var list apiv1.PresetList
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Presets) != 1 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "DELETE", cam+"/presets/Whiteboard", "", ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "GET", cam+"/presets", "", ""); r.status != 200 || !strings.Contains(r.body, `"presets":[]`) {
		t.Errorf("list after delete: %d %s", r.status, r.body)
	}
}

func TestAudioSelfTestErrors(t *testing.T) {
	ts, b := newTestServer(t, AccessLocal, "")
	const path, js = "/api/v1/audio/self-test", "application/json"
	if r := call(t, ts, "POST", path, js, `{"speaker":"a","microphone":"b"}`); r.status != 200 || !strings.Contains(r.body, `"speaker":"a"`) {
		t.Errorf("self-test: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "POST", path, "", ""); r.status != 200 {
		t.Errorf("self-test without a body: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "POST", path, js, `{"speker":"a"}`); r.status != 400 || r.problem.Field != "speker" {
		t.Errorf("unknown field: %d %+v", r.status, r.problem)
	}
	for _, c := range []struct {
		err    error
		status int
		field  string
	}{
		{selftest.ErrInCall, 409, ""},
		{selftest.ErrNoAudioPair, 422, ""},
		{fmt.Errorf("microphone %q: %w", "x", hal.ErrNotFound), 404, "microphone"},
		{fmt.Errorf("speaker %q: %w", "x", hal.ErrNotFound), 404, "speaker"},
		{fmt.Errorf("open: %w", hal.ErrBusy), 409, "id"},
	} {
		b.audioErr = c.err
		if r := call(t, ts, "POST", path, "", ""); r.status != c.status || r.problem.Field != c.field {
			t.Errorf("%v: %d %+v, want %d on %q", c.err, r.status, r.problem, c.status, c.field)
		}
	}
}

func TestMediaSwitchesOutsideACall(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const path, js = "/api/v1/meeting/media", "application/json"
	if r := call(t, ts, "PUT", path, js, `{"microphoneMuted":true}`); r.status != 409 || !strings.Contains(r.problem.Detail, "not in a meeting") {
		t.Errorf("mute outside a call: %d %+v", r.status, r.problem)
	}
	if r := call(t, ts, "PUT", path, js, `{}`); r.status != 400 {
		t.Errorf("empty change: %d %+v", r.status, r.problem)
	}
	if r := call(t, ts, "PUT", path, js, `{"microphoneMuted":"yes"}`); r.status != 400 || r.problem.Field != "microphoneMuted" {
		t.Errorf("wrong type: %d %+v", r.status, r.problem)
	}
}

func TestCalendarCheck(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const path = "/api/v1/calendar/check"
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a@x\r\nDTSTART:20261123T090000Z\r\nDTEND:20261123T093000Z\r\n" +
		"SUMMARY:Standup\r\nLOCATION:https://acme.zoom.us/j/123\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	r := call(t, ts, "POST", path, "text/calendar", ics)
	var res apiv1.CalendarCheck
	if err := json.Unmarshal([]byte(r.body), &res); r.status != 200 || err != nil || len(res.Meetings) != 1 {
		t.Fatalf("check: %d %s", r.status, r.body)
	}
	if m := res.Meetings[0]; m.Title != "Standup" || m.Joinable || !strings.Contains(m.Reason, "Zoom") {
		t.Errorf("meeting %+v", m)
	}
	if r := call(t, ts, "POST", path, "text/calendar", "hello"); r.status != 422 {
		t.Errorf("not a calendar: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "POST", path, "application/json", "{}"); r.status != 415 {
		t.Errorf("JSON body: %d %s", r.status, r.body)
	}
}

func TestNetworkTestEndpoints(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const path = "/api/v1/network/test"
	if r := call(t, ts, "GET", path, "", ""); r.status != 404 || !strings.Contains(r.problem.Detail, "POST") {
		t.Errorf("GET before any test: %d %+v", r.status, r.problem)
	}
	r := call(t, ts, "POST", path, "", "")
	var res apiv1.NetworkTest
	if err := json.Unmarshal([]byte(r.body), &res); r.status != 200 || err != nil || res.Verdict.Level != "warning" || !strings.Contains(res.Verdict.Text, "No STUN or TURN server") {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if r := call(t, ts, "GET", path, "", ""); r.status != 200 || !strings.Contains(r.body, "No STUN or TURN server") {
		t.Errorf("GET after a test: %d %s", r.status, r.body)
	}
}
