package calendar

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const tinyCal = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260303T090000Z\r\nSUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"

// calServer is an iCalendar server whose answers a test sets and whose
// requests it reads.
type calServer struct {
	mu       sync.Mutex
	body     string
	etag     string
	lastMod  string
	user     string // basic auth user:pass, or "Bearer x"
	requests []*http.Request
	srv      *httptest.Server
}

func newCalServer(t *testing.T, body string) *calServer {
	s := &calServer{body: body, etag: `"v1"`}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		switch {
		case strings.HasPrefix(s.user, "Bearer "):
			if r.Header.Get("Authorization") != s.user {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
		case s.user != "":
			u, p, ok := r.BasicAuth()
			if !ok || u+":"+p != s.user {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
		}
		if s.etag != "" && r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if s.lastMod != "" && r.Header.Get("If-Modified-Since") == s.lastMod {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if s.etag != "" {
			w.Header().Set("ETag", s.etag)
		}
		if s.lastMod != "" {
			w.Header().Set("Last-Modified", s.lastMod)
		}
		w.Header().Set("Content-Type", "text/calendar")
		if r.URL.Query().Get("chunked") != "" {
			// No Content-Length: the limit must hold while reading.
			w.(http.Flusher).Flush()
		}
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *calServer) set(f func(*calServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *calServer) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

func testFetcher(t *testing.T, cfg FetcherConfig) *Fetcher {
	t.Helper()
	f, err := NewFetcher(cfg)
	if err != nil {
		t.Fatalf("NewFetcher: %v", err)
	}
	return f
}

func body(title string) string { return strings.Replace(tinyCal, "%s", title, 1) }

func TestFetchETagAnd304(t *testing.T) {
	srv := newCalServer(t, body("one"))
	cache := filepath.Join(t.TempDir(), "calendar.json")
	f := testFetcher(t, FetcherConfig{Source: Source{URL: srv.srv.URL + "/cal.ics"}, CachePath: cache})
	if _, err := f.Current(); !errors.Is(err, ErrNoCopy) {
		t.Fatalf("Current before any fetch: %v, want ErrNoCopy", err)
	}
	s, changed, err := f.Fetch(t.Context())
	if err != nil || !changed || string(s.Data) != body("one") || s.ETag != `"v1"` {
		t.Fatalf("first Fetch = %q %v %v", s.Data, changed, err)
	}
	s, changed, err = f.Fetch(t.Context())
	if err != nil || changed || string(s.Data) != body("one") {
		t.Fatalf("Fetch after 304 = %q changed=%v %v; want the cached copy, unchanged", s.Data, changed, err)
	}
	if got := srv.last().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("If-None-Match = %q", got)
	}
	srv.set(func(s *calServer) { s.body, s.etag = body("two"), `"v2"` })
	s, changed, err = f.Fetch(t.Context())
	if err != nil || !changed || string(s.Data) != body("two") {
		t.Fatalf("Fetch after a change = %q %v %v", s.Data, changed, err)
	}
	info, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("copy on disk has mode %v, want 0600", info.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(cache), ".calendar-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestFetchIfModifiedSince(t *testing.T) {
	srv := newCalServer(t, body("one"))
	srv.set(func(s *calServer) { s.etag, s.lastMod = "", "Mon, 02 Mar 2026 07:00:00 GMT" })
	f := testFetcher(t, FetcherConfig{Source: Source{URL: srv.srv.URL}})
	if _, _, err := f.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, changed, err := f.Fetch(t.Context())
	if err != nil || changed || string(s.Data) != body("one") {
		t.Fatalf("second Fetch = %q %v %v", s.Data, changed, err)
	}
	if got := srv.last().Header.Get("If-Modified-Since"); got != "Mon, 02 Mar 2026 07:00:00 GMT" {
		t.Errorf("If-Modified-Since = %q", got)
	}
}

func TestFetchAuth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server string
		src    Source
		ok     bool
	}{
		{"basic", "room:s3cret", Source{Username: "room", Password: "s3cret"}, true},
		{"basic wrong", "room:s3cret", Source{Username: "room", Password: "nope"}, false},
		{"bearer", "Bearer tok", Source{BearerToken: "tok"}, true},
		{"bearer missing", "Bearer tok", Source{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCalServer(t, body("x"))
			srv.set(func(s *calServer) { s.user = tc.server })
			tc.src.URL = srv.srv.URL
			f := testFetcher(t, FetcherConfig{Source: tc.src})
			_, _, err := f.Fetch(t.Context())
			if tc.ok != (err == nil) {
				t.Fatalf("Fetch: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "401") {
				t.Errorf("error %q does not give the status", err)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope")) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestFetchOfflineUsesCopyOnDisk(t *testing.T) {
	srv := newCalServer(t, body("kept"))
	cache := filepath.Join(t.TempDir(), "calendar.json")
	src := Source{URL: srv.srv.URL + "/cal.ics"}
	f := testFetcher(t, FetcherConfig{Source: src, CachePath: cache})
	if _, _, err := f.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.srv.Close() // the room goes offline, then roomd restarts

	f2 := testFetcher(t, FetcherConfig{Source: src, CachePath: cache, Timeout: 2 * time.Second})
	s, err := f2.Current()
	if err != nil || string(s.Data) != body("kept") {
		t.Fatalf("Current after restart = %q, %v; want the copy on disk", s.Data, err)
	}
	s, _, err = f2.Fetch(t.Context())
	if err == nil {
		t.Fatal("Fetch from a closed server succeeded")
	}
	if string(s.Data) != body("kept") {
		t.Errorf("Fetch failure returned %q, want the last good copy", s.Data)
	}
	if s, err := f2.Current(); string(s.Data) != body("kept") || err == nil {
		t.Errorf("Current = %q, %v; want the copy and the refresh error", s.Data, err)
	}

	// A copy of another calendar is not shown for this one.
	f3 := testFetcher(t, FetcherConfig{Source: Source{URL: srv.srv.URL + "/other.ics"}, CachePath: cache})
	if _, err := f3.Current(); !errors.Is(err, ErrNoCopy) {
		t.Errorf("Current with another source: %v, want ErrNoCopy", err)
	}
}

func TestFetchRefusesOversizedAndInvalid(t *testing.T) {
	srv := newCalServer(t, body("good"))
	for _, path := range []string{"/", "/?chunked=1"} {
		srv.set(func(s *calServer) { s.body, s.etag = body("good"), "" })
		f := testFetcher(t, FetcherConfig{Source: Source{URL: srv.srv.URL + path}, MaxBytes: 200})
		if _, _, err := f.Fetch(t.Context()); err != nil {
			t.Fatal(err)
		}
		srv.set(func(s *calServer) { s.body = body(strings.Repeat("x", 300)) })
		s, _, err := f.Fetch(t.Context())
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: oversized body: %v, want ErrTooLarge", path, err)
		}
		if string(s.Data) != body("good") {
			t.Errorf("%s: after a refused body the copy is %q", path, s.Data)
		}
		srv.set(func(s *calServer) { s.body = "<html>login page</html>" })
		if _, _, err := f.Fetch(t.Context()); !errors.Is(err, ErrNotCalendar) {
			t.Errorf("%s: HTML body: %v, want ErrNotCalendar", path, err)
		}
		if s, _ := f.Current(); string(s.Data) != body("good") {
			t.Errorf("%s: after an invalid body the copy is %q", path, s.Data)
		}
	}
}

func TestNewFetcherChecksSource(t *testing.T) {
	for _, tc := range []struct {
		src Source
		ok  bool
	}{
		{Source{URL: "https://cal.example.com/x.ics"}, true},
		{Source{URL: "webcal://cal.example.com/x.ics"}, true},
		{Source{URL: "http://127.0.0.1:8080/x.ics", BearerToken: "t"}, true},
		{Source{URL: "http://cal.example.com/x.ics", BearerToken: "t"}, false},
		{Source{URL: "https://u:p@cal.example.com/x.ics"}, false},
		{Source{URL: "ftp://cal.example.com/x.ics"}, false},
		{Source{URL: "https://cal.example.com/x.ics", Username: "u", BearerToken: "t"}, false},
		{Source{URL: "https:///x.ics"}, false},
	} {
		if _, err := NewFetcher(FetcherConfig{Source: tc.src}); (err == nil) != tc.ok {
			t.Errorf("NewFetcher(%+v): %v, want ok=%v", tc.src, err, tc.ok)
		}
	}
	f := testFetcher(t, FetcherConfig{Source: Source{URL: "webcal://cal.example.com/x.ics"}})
	if f.url.Scheme != "https" {
		t.Errorf("webcal became %q, want https", f.url.Scheme)
	}
}

// TestRun drives the refresh loop with a timer the test fires: OnUpdate
// sees each new copy, a 304 is not an update, and Run returns when its
// context ends, leaving no goroutine.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := newCalServer(t, body("one"))
	tick := make(chan time.Time)
	waits := make(chan time.Duration, 10)
	updates := make(chan string, 10)
	f := testFetcher(t, FetcherConfig{
		Source:   Source{URL: srv.srv.URL},
		Interval: time.Hour,
		After: func(d time.Duration) <-chan time.Time {
			waits <- d
			return tick
		},
		OnUpdate: func(s Snapshot) { updates <- string(s.Data) },
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	expect := func(want string) {
		t.Helper()
		select {
		case got := <-updates:
			if got != want {
				t.Fatalf("update %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no update %q", want)
		}
	}
	expect(body("one"))
	if d := <-waits; d != time.Hour {
		t.Errorf("waits %v after a good refresh, want the interval", d)
	}
	tick <- time.Time{} // 304: no update
	if d := <-waits; d != time.Hour {
		t.Errorf("waits %v after a 304, want the interval", d)
	}
	srv.set(func(s *calServer) { s.body, s.etag = body("two"), `"v2"` })
	tick <- time.Time{}
	expect(body("two"))
	<-waits
	srv.set(func(s *calServer) { s.body, s.etag = "garbage", "" })
	tick <- time.Time{}
	if d := <-waits; d != time.Minute {
		t.Errorf("waits %v after a failed refresh, want the retry interval (1m)", d)
	}
	select {
	case u := <-updates:
		t.Errorf("a failed refresh gave an update: %q", u)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	srv.srv.Close()
	srv.srv.Client().CloseIdleConnections()
	f.client.CloseIdleConnections()
}
