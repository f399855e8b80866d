package calendar

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
)

// memBackend is an in-memory CalDAV server backend: one calendar at
// /room/cal/ whose objects a test sets; queries record their filter.
type memBackend struct {
	mu      sync.Mutex
	objects []caldav.CalendarObject
	queries []caldav.CalendarQuery
}

var errNotHere = webdav.NewHTTPError(http.StatusNotFound, errors.New("not found"))

func (b *memBackend) CurrentUserPrincipal(context.Context) (string, error) { return "/room/", nil }
func (b *memBackend) CalendarHomeSetPath(context.Context) (string, error)  { return "/room/", nil }
func (b *memBackend) CreateCalendar(context.Context, *caldav.Calendar) error {
	return errNotHere
}
func (b *memBackend) ListCalendars(context.Context) ([]caldav.Calendar, error) {
	return []caldav.Calendar{{Path: "/room/cal/", Name: "Board Room", SupportedComponentSet: []string{"VEVENT"}}}, nil
}
func (b *memBackend) GetCalendar(_ context.Context, path string) (*caldav.Calendar, error) {
	if path != "/room/cal/" {
		return nil, errNotHere
	}
	return &caldav.Calendar{Path: path, Name: "Board Room", SupportedComponentSet: []string{"VEVENT"}}, nil
}
func (b *memBackend) GetCalendarObject(context.Context, string, *caldav.CalendarCompRequest) (*caldav.CalendarObject, error) {
	return nil, errNotHere
}
func (b *memBackend) ListCalendarObjects(context.Context, string, *caldav.CalendarCompRequest) ([]caldav.CalendarObject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]caldav.CalendarObject(nil), b.objects...), nil
}
func (b *memBackend) QueryCalendarObjects(_ context.Context, _ string, q *caldav.CalendarQuery) ([]caldav.CalendarObject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queries = append(b.queries, *q)
	return append([]caldav.CalendarObject(nil), b.objects...), nil
}
func (b *memBackend) PutCalendarObject(context.Context, string, *ical.Calendar, *caldav.PutCalendarObjectOptions) (*caldav.CalendarObject, error) {
	return nil, errNotHere
}
func (b *memBackend) DeleteCalendarObject(context.Context, string) error { return errNotHere }

func (b *memBackend) put(t *testing.T, path, doc string) {
	t.Helper()
	cal, err := ical.NewDecoder(strings.NewReader(doc)).Decode()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects = append(b.objects, caldav.CalendarObject{Path: path, ETag: `"` + path + `"`, ModTime: corpusNow, Data: cal})
}

func calObject(uid, start, title, link string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20260301T000000Z\r\nDTSTART:" + start +
		"\r\nDURATION:PT30M\r\nSUMMARY:" + title + "\r\nURL:" + link + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
}

func TestCalDAV(t *testing.T) {
	be := &memBackend{}
	be.put(t, "/room/cal/a.ics", calObject("a", "20260303T090000Z", "Planning", "janus+wss://j.example/?room=1"))
	be.put(t, "/room/cal/b.ics", calObject("b", "20260304T090000Z", "Vendor", "https://zoom.us/j/5"))
	var authMu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authMu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		authMu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "room" || p != "pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		(&caldav.Handler{Backend: be}).ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()

	f := testFetcher(t, FetcherConfig{
		Source: Source{URL: srv.URL + "/room/cal/", CalDAV: true, Username: "room", Password: "pw"},
		Now:    func() time.Time { return corpusNow },
	})
	defer f.client.CloseIdleConnections()
	s, changed, err := f.Fetch(t.Context())
	if err != nil || !changed {
		t.Fatalf("Fetch = %v, %v", changed, err)
	}
	cal, err := Parse(s.Data, Options{Classifier: testClassifier})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range cal.Upcoming(corpusNow, 7) {
		got = append(got, o.Title+" "+o.Provider)
	}
	if strings.Join(got, "|") != "Planning janus|Vendor Zoom" {
		t.Errorf("agenda from CalDAV = %q", got)
	}
	if len(be.queries) != 1 {
		t.Fatalf("%d queries, want 1", len(be.queries))
	}
	q := be.queries[0].CompFilter
	if q.Name != "VCALENDAR" || len(q.Comps) != 1 || q.Comps[0].Name != "VEVENT" ||
		!q.Comps[0].Start.Equal(corpusNow.Add(-24*time.Hour)) || !q.Comps[0].End.Equal(corpusNow.Add(CalDAVWindow)) {
		t.Errorf("query filter %+v, want VEVENTs from a day ago to CalDAVWindow ahead", q)
	}
	for _, a := range auth {
		if !strings.HasPrefix(a, "Basic ") {
			t.Errorf("a request went without basic auth: %q", a)
		}
	}

	// Same answer: not a change. Then the answer grows past the limit.
	if _, changed, err := f.Fetch(t.Context()); err != nil || changed {
		t.Errorf("second Fetch = changed %v, %v", changed, err)
	}
	small := testFetcher(t, FetcherConfig{
		Source:   Source{URL: srv.URL + "/room/cal/", CalDAV: true, Username: "room", Password: "pw"},
		MaxBytes: 300,
	})
	defer small.client.CloseIdleConnections()
	if _, _, err := small.Fetch(t.Context()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized CalDAV answer: %v, want ErrTooLarge", err)
	}
	wrong := testFetcher(t, FetcherConfig{Source: Source{URL: srv.URL + "/room/cal/", CalDAV: true, Username: "room", Password: "nope"}})
	defer wrong.client.CloseIdleConnections()
	if _, _, err := wrong.Fetch(t.Context()); err == nil || strings.Contains(err.Error(), "nope") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		n   int
		err error
	}{{10, nil}, {11, ErrTooLarge}} {
		l := &limitedBody{rc: nopCloser{bytes.NewReader(make([]byte, tc.n))}, left: 10}
		var buf bytes.Buffer
		_, err := buf.ReadFrom(l)
		if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
			t.Errorf("%d bytes with a limit of 10: %v, want %v", tc.n, err, tc.err)
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
