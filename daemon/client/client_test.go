package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait in these tests.
const timeout = 5 * time.Second

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// request is what the fake roomd saw.
type request struct {
	Method, Path, ContentType, Auth, Body string
}

// fakeRoomd answers the API routes the client calls.
type fakeRoomd struct {
	mu       sync.Mutex
	requests []request

	// stream is written verbatim as the body of GET /events; then the
	// handler ends the response, or, with hold, waits for the client to go.
	stream string
	hold   bool
}

func newFakeRoomd() *fakeRoomd { return &fakeRoomd{} }

func (f *fakeRoomd) last(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the server saw no request")
	}
	return f.requests[len(f.requests)-1]
}

func problem(w http.ResponseWriter, p apiv1.Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (f *fakeRoomd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(body)})
	f.mu.Unlock()

	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch r.Method + " " + strings.TrimPrefix(r.URL.Path, apiv1.BasePath) {
	case "GET /status":
		reply(apiv1.Status{Room: "Lab", Version: "1.2.3", BootID: "b1", StartedAt: epoch, State: apiv1.DaemonReady,
			Meeting: apiv1.Meeting{State: apiv1.MeetingIdle, Since: epoch},
			Devices: []apiv1.Device{{ID: "sim:cam", Kind: apiv1.KindCamera, Name: "Cam", Driver: "sim", Simulated: true}}})
	case "GET /devices":
		reply(apiv1.DeviceList{Devices: []apiv1.Device{
			{ID: "sim:cam", Kind: apiv1.KindCamera, Name: "Cam", Driver: "sim", Simulated: true,
				VideoModes: []apiv1.VideoMode{{Width: 1280, Height: 720, FPS: 30, PixelFormat: "I420"}}},
			{ID: "sim:mic", Kind: apiv1.KindMicrophone, Name: "Mic", Driver: "sim", Simulated: true,
				AudioFormats: []apiv1.AudioFormat{{SampleRate: 48000, Channels: 1}}},
		}})
	case "POST /meeting/join":
		var jr apiv1.JoinRequest
		if err := json.Unmarshal(body, &jr); err != nil {
			problem(w, apiv1.Problem{Type: apiv1.ProblemBadRequest, Title: "Malformed JSON body", Status: 400, Detail: err.Error()})
			return
		}
		if !strings.HasPrefix(jr.URL, "https://") {
			problem(w, apiv1.Problem{Type: apiv1.ProblemInvalidURL, Title: "Invalid meeting URL", Status: 400,
				Detail: "not an absolute URL", Field: "url"})
			return
		}
		reply(apiv1.Meeting{State: apiv1.MeetingConnected, URL: jr.URL, Provider: "janus", Since: epoch})
	case "POST /meeting/leave":
		reply(apiv1.Meeting{State: apiv1.MeetingLeft, URL: "https://m.example/", Provider: "janus", Reason: "left by request", Since: epoch})
	case "GET /events":
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, f.stream)
		w.(http.Flusher).Flush()
		if f.hold {
			select {
			case <-r.Context().Done():
			case <-time.After(timeout):
			}
		}
	default:
		problem(w, apiv1.Problem{Type: apiv1.ProblemNotFound, Title: "Not found", Status: 404, Detail: r.URL.Path})
	}
}

// transport is one way of reaching the fake roomd.
type transport struct {
	name  string
	start func(t *testing.T, h http.Handler) *Client
}

var transports = []transport{
	{"http", func(t *testing.T, h http.Handler) *Client {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		c := NewHTTP(ts.URL+"/", "")
		t.Cleanup(c.Close)
		return c
	}},
	{"unix", func(t *testing.T, h http.Handler) *Client {
		path := socketPath(t)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(h)
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		t.Cleanup(ts.Close)
		c := NewUnix(path)
		t.Cleanup(c.Close)
		return c
	}},
}

// socketPath returns a unix socket path short enough for sun_path.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "roomd.sock")
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestCalls(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFakeRoomd()
			c := tr.start(t, f)
			ctx := ctxT(t)

			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Room != "Lab" || st.Version != "1.2.3" || st.State != apiv1.DaemonReady || !st.StartedAt.Equal(epoch) ||
				st.Meeting.State != apiv1.MeetingIdle || len(st.Devices) != 1 || st.Devices[0].ID != "sim:cam" {
				t.Errorf("Status = %+v", st)
			}
			if r := f.last(t); r.Method != "GET" || r.Path != "/api/v1/status" || r.Auth != "" {
				t.Errorf("Status sent %+v", r)
			}

			devs, err := c.Devices(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != 2 || devs[0].VideoModes[0].Width != 1280 || devs[1].Kind != apiv1.KindMicrophone ||
				devs[1].AudioFormats[0].SampleRate != 48000 {
				t.Errorf("Devices = %+v", devs)
			}
			if r := f.last(t); r.Method != "GET" || r.Path != "/api/v1/devices" {
				t.Errorf("Devices sent %+v", r)
			}

			m, err := c.Join(ctx, "https://m.example/r")
			if err != nil {
				t.Fatal(err)
			}
			want := apiv1.Meeting{State: apiv1.MeetingConnected, URL: "https://m.example/r", Provider: "janus", Since: epoch}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("Join = %+v, want %+v", m, want)
			}
			r := f.last(t)
			if r.Method != "POST" || r.Path != "/api/v1/meeting/join" || r.ContentType != "application/json" {
				t.Errorf("Join sent %+v", r)
			}
			var jr apiv1.JoinRequest
			if err := json.Unmarshal([]byte(r.Body), &jr); err != nil || jr.URL != "https://m.example/r" {
				t.Errorf("Join body = %q (%v)", r.Body, err)
			}

			m, err = c.Leave(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.State != apiv1.MeetingLeft || m.Reason != "left by request" {
				t.Errorf("Leave = %+v", m)
			}
			if r := f.last(t); r.Method != "POST" || r.Path != "/api/v1/meeting/leave" || r.Body != "" {
				t.Errorf("Leave sent %+v", r)
			}
		})
	}
}

func TestProblem(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := tr.start(t, newFakeRoomd())
			_, err := c.Join(ctxT(t), "meet.example.com")
			var p *apiv1.Problem
			if !errors.As(err, &p) {
				t.Fatalf("Join error = %v (%T), want *apiv1.Problem", err, err)
			}
			want := apiv1.Problem{Type: apiv1.ProblemInvalidURL, Title: "Invalid meeting URL", Status: 400, Detail: "not an absolute URL", Field: "url"}
			if *p != want {
				t.Errorf("problem = %+v, want %+v", *p, want)
			}
			if err.Error() != "Invalid meeting URL: not an absolute URL" {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestProblemWithoutBody(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   apiv1.Problem
	}{
		{"plain text", http.StatusBadGateway, "upstream broke", apiv1.Problem{Status: 502, Title: "502 Bad Gateway"}},
		{"empty", http.StatusServiceUnavailable, "", apiv1.Problem{Status: 503, Title: "503 Service Unavailable"}},
		{"partial problem", http.StatusUnauthorized, `{"title":"Unauthorized","detail":"missing token"}`,
			apiv1.Problem{Status: 401, Title: "Unauthorized", Detail: "missing token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transports[0].start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			_, err := c.Status(ctxT(t))
			var p *apiv1.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error = %v (%T), want *apiv1.Problem", err, err)
			}
			if *p != tt.want {
				t.Errorf("problem = %+v, want %+v", *p, tt.want)
			}
		})
	}
}

func TestBadResponseBody(t *testing.T) {
	c := transports[0].start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html>not json</html>")
	}))
	_, err := c.Status(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "decode response") {
		t.Errorf("Status = %v, want a decode error", err)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Error("a bad body is reported as unreachable")
	}
}

func TestUnreachable(t *testing.T) {
	// A listener that was closed: nothing accepts on its port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	clients := map[string]*Client{
		"missing socket": NewUnix(filepath.Join(t.TempDir(), "nope.sock")),
		"closed port":    NewHTTP("http://"+addr, ""),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			defer c.Close()
			_, err := c.Status(ctxT(t))
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("Status = %v, want ErrUnreachable", err)
			}
			err = c.Events(ctxT(t), func(apiv1.Event) error { return nil })
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("Events = %v, want ErrUnreachable", err)
			}
		})
	}
}

func TestCancelledRequest(t *testing.T) {
	release := make(chan struct{})
	c := transports[0].start(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Status(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Status = %v, want DeadlineExceeded and not ErrUnreachable", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"token", "s3cret", "Bearer s3cret"},
		{"no token", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRoomd()
			ts := httptest.NewServer(f)
			defer ts.Close()
			c := NewHTTP(ts.URL, tt.token)
			defer c.Close()
			ctx := ctxT(t)
			if _, err := c.Status(ctx); err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Auth; got != tt.want {
				t.Errorf("Status: Authorization = %q, want %q", got, tt.want)
			}
			if _, err := c.Join(ctx, "https://m.example/"); err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Auth; got != tt.want {
				t.Errorf("Join: Authorization = %q, want %q", got, tt.want)
			}
			f.stream = ""
			_ = c.Events(ctx, func(apiv1.Event) error { return nil })
			if got := f.last(t).Auth; got != tt.want {
				t.Errorf("Events: Authorization = %q, want %q", got, tt.want)
			}
		})
	}
}

func sse(evs ...apiv1.Event) string {
	var b strings.Builder
	b.WriteString("retry: 1000\n\n")
	b.WriteString(": a comment\n\n")
	for _, ev := range evs {
		data, _ := json.Marshal(ev)
		if ev.Seq > 0 {
			fmt.Fprintf(&b, "id: %d\n", ev.Seq)
		}
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", ev.Type, data)
		b.WriteString(": keepalive\n\n")
	}
	return b.String()
}

var streamEvents = []apiv1.Event{
	{Seq: 0, Type: apiv1.EventStatus, Time: epoch, Data: json.RawMessage(`{"room":"Lab"}`)},
	{Seq: 7, Type: apiv1.EventMeetingState, Time: epoch, Data: json.RawMessage(`{"state":"joining"}`)},
	{Seq: 8, Type: apiv1.EventDeviceAdded, Time: epoch.Add(time.Second), Data: json.RawMessage(`{"id":"usb:cam"}`)},
}

func TestEventsUntilEOF(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFakeRoomd()
			f.stream = sse(streamEvents...)
			c := tr.start(t, f)
			var got []apiv1.Event
			err := c.Events(ctxT(t), func(ev apiv1.Event) error {
				got = append(got, ev)
				return nil
			})
			if err != io.EOF {
				t.Errorf("Events = %v, want io.EOF when the server ends the stream", err)
			}
			if !reflect.DeepEqual(got, streamEvents) {
				t.Errorf("events:\n got  %+v\n want %+v", got, streamEvents)
			}
			if r := f.last(t); r.Method != "GET" || r.Path != "/api/v1/events" {
				t.Errorf("Events sent %+v", r)
			}
		})
	}
}

func TestEventsCallbackError(t *testing.T) {
	f := newFakeRoomd()
	f.stream = sse(streamEvents...)
	f.hold = true
	c := transports[0].start(t, f)
	stop := errors.New("enough")
	n := 0
	err := c.Events(ctxT(t), func(apiv1.Event) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("Events = %v after %d events, want the callback's error after 2", err, n)
	}
}

func TestEventsCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFakeRoomd()
			f.stream = sse(streamEvents[0])
			f.hold = true
			c := tr.start(t, f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan apiv1.Event, 10)
			result := make(chan error, 1)
			go func() {
				result <- c.Events(ctx, func(ev apiv1.Event) error { got <- ev; return nil })
			}()
			select {
			case ev := <-got:
				if ev.Type != apiv1.EventStatus {
					t.Errorf("first event = %+v", ev)
				}
			case <-time.After(timeout):
				t.Fatal("no event received")
			}
			cancel()
			select {
			case err := <-result:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Events = %v, want context.Canceled", err)
				}
			case <-time.After(timeout):
				t.Fatal("Events did not return after cancel")
			}
		})
	}
}

func TestEventsProblem(t *testing.T) {
	c := transports[0].start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		problem(w, apiv1.Problem{Type: apiv1.ProblemUnauthorized, Title: "Unauthorized", Status: 401})
	}))
	called := false
	err := c.Events(ctxT(t), func(apiv1.Event) error { called = true; return nil })
	var p *apiv1.Problem
	if !errors.As(err, &p) || p.Status != 401 || p.Title != "Unauthorized" {
		t.Errorf("Events = %v, want a 401 problem", err)
	}
	if called {
		t.Error("callback called for a refused stream")
	}
}

func TestEventsBadData(t *testing.T) {
	f := newFakeRoomd()
	f.stream = "event: status\ndata: {not json\n\n"
	c := transports[0].start(t, f)
	err := c.Events(ctxT(t), func(apiv1.Event) error { return nil })
	if err == nil || err == io.EOF || !strings.Contains(err.Error(), "decode event") {
		t.Errorf("Events = %v, want a decode error", err)
	}
}
