package calendar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav/caldav"
)

// CalDAV sources: Source.CalDAV set, Source.URL the calendar collection
// (such as https://dav.example.com/calendars/room/default/). The events
// of a window around now are asked for with a calendar-query REPORT and
// joined into one iCalendar document (one VCALENDAR per object), which
// then goes through the same validation, disk copy and offline fallback
// as a plain iCalendar URL. REPORT has no conditional form, so "changed"
// compares the documents.

// CalDAVWindow is how far ahead a CalDAV query looks; it also looks a day
// back, for meetings under way.
const CalDAVWindow = 31 * 24 * time.Hour

// authClient adds the source's credentials to each request and bounds the
// size of each response body.
type authClient struct {
	c   *http.Client
	src Source
	max int64
}

func (a authClient) Do(req *http.Request) (*http.Response, error) {
	switch {
	case a.src.Username != "":
		req.SetBasicAuth(a.src.Username, a.src.Password)
	case a.src.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+a.src.BearerToken)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > a.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, resp.ContentLength, a.max)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: a.max}
	return resp, nil
}

// limitedBody fails a read past the limit instead of truncating quietly.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: more than the limit", ErrTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// fetchCalDAV queries the collection and returns the joined document.
func (f *Fetcher) fetchCalDAV(ctx context.Context) ([]byte, error) {
	op := "calendar: caldav " + f.url.Host + f.url.Path
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	client, err := caldav.NewClient(authClient{c: f.client, src: f.cfg.Source, max: f.cfg.MaxBytes}, f.url.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	now := f.cfg.Now().UTC()
	query := &caldav.CalendarQuery{
		CompRequest: caldav.CalendarCompRequest{Name: "VCALENDAR", AllProps: true, AllComps: true},
		CompFilter: caldav.CompFilter{
			Name:  "VCALENDAR",
			Comps: []caldav.CompFilter{{Name: "VEVENT", Start: now.Add(-24 * time.Hour), End: now.Add(CalDAVWindow)}},
		},
	}
	objs, err := client.QueryCalendar(ctx, f.url.Path, query)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%s: %w", op, ErrTooLarge)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var buf bytes.Buffer
	for _, o := range objs {
		if o.Data == nil {
			continue
		}
		if err := ical.NewEncoder(&buf).Encode(o.Data); err != nil {
			return nil, fmt.Errorf("%s: re-encode %s: %w", op, o.Path, err)
		}
		if int64(buf.Len()) > f.cfg.MaxBytes {
			return nil, fmt.Errorf("%s: %w: more than %d bytes", op, ErrTooLarge, f.cfg.MaxBytes)
		}
	}
	if buf.Len() == 0 {
		// An empty calendar is a valid answer: no meetings.
		buf.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Atrium//CalDAV//EN\r\nEND:VCALENDAR\r\n")
	}
	return buf.Bytes(), nil
}
