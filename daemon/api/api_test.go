package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/agenda"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
	"github.com/atriumroom/atrium/daemon/devctl"
	"github.com/atriumroom/atrium/daemon/events"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/nettest"
	"github.com/atriumroom/atrium/hal"
	"github.com/atriumroom/atrium/hal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCamera is a HAL device with capabilities, to check their conversion.
type testCamera struct{}

func (testCamera) Info() hal.Info {
	return hal.Info{ID: "test:cam", Kind: hal.KindCamera, Name: "Test camera", Driver: "test", Simulated: true}
}
func (testCamera) Modes() []hal.VideoMode {
	return []hal.VideoMode{{Width: 640, Height: 360, FPS: 30, Format: hal.PixelI420}}
}
func (testCamera) Controls() []hal.Control {
	return []hal.Control{{ID: hal.CtrlZoom, Name: "Zoom", Type: hal.ControlInt, Min: 100, Max: 400, Step: 1, Default: 100, Value: 150}}
}
func (testCamera) SetControl(context.Context, hal.ControlID, int64) error { return nil }
func (testCamera) Open(context.Context, hal.VideoMode) (hal.VideoStream, error) {
	return nil, hal.ErrUnsupportedMode
}

type testBackend struct {
	engine *meeting.Engine
	bus    *events.Bus
	*devctl.Controller
	devs     map[string]hal.Device // what Lookup and the Controller see
	simDevs  *sim.Driver
	audioErr error
	agenda   *agenda.Agenda
	mu       sync.Mutex
	lastNet  *apiv1.NetworkTest
	kiosk    int // POST /kiosk/ready calls
}

func (b *testBackend) Lookup(id string) (hal.Device, bool) { d, ok := b.devs[id]; return d, ok }

// Calendar and JoinFromCalendar: an agenda over a real calendar file.
func (b *testBackend) Calendar() apiv1.Agenda { return b.agenda.Agenda() }
func (b *testBackend) JoinFromCalendar(ctx context.Context, id string) (apiv1.Meeting, error) {
	link, err := b.agenda.Join(id)
	if err != nil {
		return b.engine.State(), err
	}
	return b.engine.Join(ctx, link)
}

// CheckCalendar parses for real, with a classifier that knows Janus links.
func (b *testBackend) CheckCalendar(ics []byte) (apiv1.CalendarCheck, error) {
	cal, err := calendar.Parse(ics, calendar.Options{Location: time.UTC, Classifier: calendar.ClassifierFunc(b.engine.Classify)})
	if err != nil {
		return apiv1.CalendarCheck{}, err
	}
	out := apiv1.CalendarCheck{Meetings: []apiv1.CalendarMeeting{}, Problems: []string{}}
	for _, o := range cal.Occurrences(time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		out.Meetings = append(out.Meetings, apiv1.CalendarMeeting{Start: o.Start, End: o.End, Title: o.Title, URL: o.URL, Joinable: o.Joinable, Reason: o.Reason})
	}
	return out, nil
}

// RunNetworkTest: nettest itself is tested against real coturn; here no
// server is configured, as on a room without any.
func (b *testBackend) RunNetworkTest(ctx context.Context) (apiv1.NetworkTest, error) {
	r, err := nettest.Run(ctx, nil, nettest.Options{})
	if err != nil {
		return apiv1.NetworkTest{}, err
	}
	v := apiv1.NetworkTest{Time: r.Time, Verdict: apiv1.NetworkVerdict{Level: string(r.Verdict.Level), Text: r.Verdict.Text}, Checks: []apiv1.NetworkCheck{}}
	b.mu.Lock()
	b.lastNet = &v
	b.mu.Unlock()
	return v, nil
}

func (b *testBackend) LastNetworkTest() (apiv1.NetworkTest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lastNet == nil {
		return apiv1.NetworkTest{}, nettest.ErrNoResult
	}
	return *b.lastNet, nil
}

// SetMedia: the test server is never in a call.
func (b *testBackend) SetMedia(apiv1.MediaChange) (apiv1.MediaState, error) {
	return apiv1.MediaState{}, errors.New("not in a meeting")
}

// AudioSelfTest answers what the test set in audioErr; the self-test itself
// is tested against a real PipeWire in test/integration.
func (b *testBackend) AudioSelfTest(ctx context.Context, req apiv1.AudioTestRequest) (apiv1.AudioTestResult, error) {
	if b.audioErr != nil {
		return apiv1.AudioTestResult{}, b.audioErr
	}
	return apiv1.AudioTestResult{Raw: &apiv1.AudioTestRun{Speaker: req.Speaker, Microphone: req.Microphone}}, nil
}

func (b *testBackend) Status() apiv1.Status {
	return apiv1.Status{Room: "Test Room", State: apiv1.DaemonReady, Meeting: b.engine.State(), Devices: ConvertDevices(b.Devices())}
}
func (b *testBackend) Devices() []hal.Device { return []hal.Device{testCamera{}} }
func (b *testBackend) Join(ctx context.Context, u string) (apiv1.Meeting, error) {
	return b.engine.Join(ctx, u)
}
func (b *testBackend) Leave(ctx context.Context) (apiv1.Meeting, error) { return b.engine.Leave(ctx) }
func (b *testBackend) Subscribe(ctx context.Context) <-chan apiv1.Event {
	return b.bus.Subscribe(ctx)
}

func newTestServer(t *testing.T, access Access, token string) (*httptest.Server, *testBackend) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := events.New(logger, time.Now)
	b := &testBackend{bus: bus}
	simDevs, err := sim.New(sim.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	b.simDevs = simDevs
	b.devs = map[string]hal.Device{sim.CameraID: simDevs.Camera(), sim.SpeakerID: simDevs.Speaker()}
	store, err := devctl.OpenStore(filepath.Join(t.TempDir(), "presets.json"), time.Now, logger)
	if err != nil {
		t.Fatal(err)
	}
	b.Controller = devctl.New(b, store, logger)
	b.agenda = agenda.New(agenda.Config{Logger: logger,
		Classifier: calendar.ClassifierFunc(func(u string) (string, bool, string) { return b.engine.Classify(u) })})
	b.engine = meeting.NewEngine(logger, time.Now, func(m apiv1.Meeting) { _ = bus.Publish(apiv1.EventMeetingState, m) })
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ui:"+r.URL.Path) })
	ts := httptest.NewServer(New(logger, b, Mounts{UI: ui}, token).Handler(access))
	t.Cleanup(ts.Close)
	return ts, b
}

type result struct {
	status  int
	ctype   string
	body    string
	problem apiv1.Problem
}

func call(t *testing.T, ts *httptest.Server, method, path, ctype, body string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1] // the client ignores a Host header
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: string(data)}
	if r.ctype == "application/problem+json" {
		if err := json.Unmarshal(data, &r.problem); err != nil {
			t.Fatalf("problem body %q: %v", data, err)
		}
		if r.problem.Status != r.status || r.problem.Title == "" || r.problem.Type == "" {
			t.Errorf("incomplete problem body: %+v", r.problem)
		}
	}
	return r
}

func TestEndpoints(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")

	r := call(t, ts, "GET", "/api/v1/status", "", "")
	var st apiv1.Status
	if r.status != 200 || json.Unmarshal([]byte(r.body), &st) != nil || st.Room != "Test Room" || st.Meeting.State != apiv1.MeetingIdle {
		t.Fatalf("status: %d %s", r.status, r.body)
	}

	r = call(t, ts, "GET", "/api/v1/devices", "", "")
	var dl apiv1.DeviceList
	if r.status != 200 || json.Unmarshal([]byte(r.body), &dl) != nil || len(dl.Devices) != 1 {
		t.Fatalf("devices: %d %s", r.status, r.body)
	}
	d := dl.Devices[0]
	if d.Kind != apiv1.KindCamera || len(d.VideoModes) != 1 || d.VideoModes[0].PixelFormat != "I420" || len(d.Controls) != 1 || d.Controls[0].Value != 150 {
		t.Errorf("device conversion: %+v", d)
	}

	r = call(t, ts, "POST", "/api/v1/meeting/leave", "", "")
	if r.status != 200 || !strings.Contains(r.body, `"idle"`) {
		t.Errorf("leave when idle: %d %s", r.status, r.body)
	}

	r = call(t, ts, "GET", "/api/v1/openapi.json", "", "")
	if r.status != 200 || !strings.Contains(r.body, `"openapi"`) {
		t.Errorf("openapi: %d", r.status)
	}

	r = call(t, ts, "GET", "/", "", "")
	if r.body != "ui:/" {
		t.Errorf("UI not mounted at /: %q", r.body)
	}
}

func TestJoinInput(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	const join = "/api/v1/meeting/join"
	const js = "application/json"
	cases := []struct {
		name, ctype, body string
		status            int
		typ, field, want  string
	}{
		{"no provider", js, `{"url":"https://meet.example.com/room/42"}`, 422, apiv1.ProblemNoProvider, "url", "meet.example.com"},
		{"invalid URL", js, `{"url":"not a url"}`, 400, apiv1.ProblemInvalidURL, "url", "spaces"},
		{"relative URL", js, `{"url":"/room/42"}`, 400, apiv1.ProblemInvalidURL, "url", "absolute"},
		{"empty URL", js, `{"url":""}`, 400, apiv1.ProblemInvalidURL, "url", "required"},
		{"too long URL", js, `{"url":"https://x.example/` + strings.Repeat("a", 3000) + `"}`, 400, apiv1.ProblemInvalidURL, "url", "at most"},
		{"malformed", js, `{"url":`, 400, apiv1.ProblemBadRequest, "", "ends early"},
		{"syntax", js, `{"url" "x"}`, 400, apiv1.ProblemBadRequest, "", "byte"},
		{"unknown field", js, `{"url":"https://a.example/","pin":"1"}`, 400, apiv1.ProblemBadRequest, "pin", "unknown field"},
		{"wrong type", js, `{"url":42}`, 400, apiv1.ProblemBadRequest, "url", "must be string"},
		{"trailing data", js, `{"url":"https://a.example/"} {}`, 400, apiv1.ProblemBadRequest, "", "after"},
		{"empty body", js, ``, 400, apiv1.ProblemBadRequest, "", "empty"},
		{"not JSON", "text/plain", `{"url":"https://a.example/"}`, 415, apiv1.ProblemUnsupportedMedia, "", "application/json"},
		{"oversized", js, `{"url":"` + strings.Repeat("a", apiv1.MaxBodyBytes) + `"}`, 413, apiv1.ProblemTooLarge, "", "65536"},
		{"huge", js, strings.Repeat(" ", 10<<20), 413, apiv1.ProblemTooLarge, "", "at most"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, ts, "POST", join, c.ctype, c.body)
			if r.status != c.status || r.ctype != "application/problem+json" {
				t.Fatalf("got %d %s %s", r.status, r.ctype, r.body)
			}
			if r.problem.Type != c.typ || r.problem.Field != c.field || !strings.Contains(r.problem.Detail, c.want) {
				t.Errorf("problem %+v; want type %s field %q detail containing %q", r.problem, c.typ, c.field, c.want)
			}
			if r.problem.Instance != join {
				t.Errorf("instance %q", r.problem.Instance)
			}
		})
	}
	// Nothing of the above may have changed the meeting.
	r := call(t, ts, "GET", "/api/v1/status", "", "")
	if !strings.Contains(r.body, `"state":"idle"`) {
		t.Errorf("meeting state changed by rejected requests: %s", r.body)
	}
}

func TestLeaveInput(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	if r := call(t, ts, "POST", "/api/v1/meeting/leave", "application/json", `{}`); r.status != 200 {
		t.Errorf("leave with {}: %d", r.status)
	}
	if r := call(t, ts, "POST", "/api/v1/meeting/leave", "application/json", `{"force":true}`); r.status != 400 || r.problem.Field != "force" {
		t.Errorf("leave with unknown field: %d %+v", r.status, r.problem)
	}
}

func TestRouting(t *testing.T) {
	ts, _ := newTestServer(t, AccessLocal, "")
	r := call(t, ts, "GET", "/api/v1/nope", "", "")
	if r.status != 404 || r.problem.Type != apiv1.ProblemNotFound {
		t.Errorf("unknown path: %d %+v", r.status, r.problem)
	}
	r = call(t, ts, "DELETE", "/api/v1/status", "", "")
	if r.status != 405 || r.problem.Type != apiv1.ProblemMethodNotAllowed {
		t.Errorf("wrong method: %d %+v", r.status, r.problem)
	}
	r = call(t, ts, "GET", "/api/v1/meeting/join", "", "")
	if r.status != 405 || !strings.Contains(r.problem.Detail, "POST") {
		t.Errorf("GET on join: %d %+v", r.status, r.problem)
	}
}

func TestTokenAccess(t *testing.T) {
	const token = "0123456789abcdef-secret"
	ts, _ := newTestServer(t, AccessToken, token)
	for _, path := range []string{"/api/v1/status", "/api/v1/events", "/"} {
		r := call(t, ts, "GET", path, "", "")
		if r.status != 401 || r.problem.Type != apiv1.ProblemUnauthorized {
			t.Errorf("%s without token: %d", path, r.status)
		}
		if r := call(t, ts, "GET", path, "", "", "Authorization", "Bearer wrong-token"); r.status != 401 {
			t.Errorf("%s with a wrong token: %d", path, r.status)
		}
	}
	if r := call(t, ts, "GET", "/api/v1/status", "", "", "Authorization", "Bearer "+token); r.status != 200 {
		t.Errorf("with token: %d", r.status)
	}
	// A server configured without a token never lets anyone in.
	open, _ := newTestServer(t, AccessToken, "")
	if r := call(t, open, "GET", "/api/v1/status", "", "", "Authorization", "Bearer "); r.status != 401 {
		t.Errorf("empty token accepted: %d", r.status)
	}
}

func TestLoopbackHostAndCrossSite(t *testing.T) {
	ts, _ := newTestServer(t, AccessLoopback, "")
	if r := call(t, ts, "GET", "/api/v1/status", "", ""); r.status != 200 {
		t.Errorf("loopback host: %d", r.status)
	}
	if r := call(t, ts, "GET", "/api/v1/status", "", "", "Host", "attacker.example:8480"); r.status != 403 {
		t.Errorf("rebinding host accepted: %d", r.status)
	}
	r := call(t, ts, "POST", "/api/v1/meeting/leave", "application/json", "{}", "Sec-Fetch-Site", "cross-site")
	if r.status != 403 {
		t.Errorf("cross-site POST accepted: %d", r.status)
	}
}

func TestEventStream(t *testing.T) {
	ts, b := newTestServer(t, AccessLocal, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (string, apiv1.Event) {
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var ev apiv1.Event
				if err := json.Unmarshal([]byte(v), &ev); err != nil {
					t.Fatal(err)
				}
				return name, ev
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", apiv1.Event{}
	}
	name, ev := next()
	var st apiv1.Status
	if name != "status" || ev.Type != apiv1.EventStatus || json.Unmarshal(ev.Data, &st) != nil || st.Room != "Test Room" {
		t.Fatalf("first event %s %+v", name, ev)
	}
	if err := b.bus.Publish(apiv1.EventMeetingState, apiv1.Meeting{State: apiv1.MeetingJoining}); err != nil {
		t.Fatal(err)
	}
	name, ev = next()
	if name != "meeting.state" || ev.Seq != 1 || !strings.Contains(string(ev.Data), "joining") {
		t.Fatalf("second event %s %+v", name, ev)
	}
}
