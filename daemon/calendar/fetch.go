package calendar

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Source is where a room's calendar comes from.
type Source struct {
	// URL is an https:// or http:// iCalendar URL (webcal:// is read as
	// https://).
	URL string
	// Username and Password, when Username is set, are sent as HTTP basic
	// auth; BearerToken as "Authorization: Bearer". At most one of them.
	Username, Password string
	BearerToken        string
	// CalDAV reads URL as a CalDAV calendar collection (see caldav.go)
	// rather than an iCalendar file.
	CalDAV bool
}

// Fetcher defaults.
const (
	DefaultMaxBytes = 8 << 20
	DefaultTimeout  = 30 * time.Second
	DefaultInterval = 5 * time.Minute
)

// FetcherConfig configures NewFetcher.
type FetcherConfig struct {
	Source Source
	// CachePath is the file that keeps the last good copy (mode 0600: a
	// calendar is private). Empty keeps nothing on disk.
	CachePath string
	// MaxBytes refuses larger bodies (ErrTooLarge). Default DefaultMaxBytes.
	MaxBytes int64
	// Timeout bounds one request. Default DefaultTimeout.
	Timeout time.Duration
	// Interval between refreshes in Run; RetryInterval after a failed one
	// (default: Interval, at most one minute).
	Interval, RetryInterval time.Duration
	// Validate accepts a body before it replaces the last good copy.
	// Default: Parse must succeed.
	Validate func([]byte) error
	// OnUpdate is called from Run with each new copy (not on 304).
	OnUpdate func(Snapshot)
	Client   *http.Client // default: a client with Timeout
	Logger   *slog.Logger
	Now      func() time.Time
	// After is the timer Run waits on; default time.After. Tests inject a
	// channel they control.
	After func(time.Duration) <-chan time.Time
}

// Snapshot is the last good copy of the calendar.
type Snapshot struct {
	Data         []byte    `json:"data"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"lastModified,omitempty"`
	FetchedAt    time.Time `json:"fetchedAt"` // when this copy was downloaded or last confirmed (304)
	Source       string    `json:"source"`    // hash of the URL: a copy of another calendar is not used
}

// Fetcher downloads a calendar and keeps its last good copy.
type Fetcher struct {
	cfg    FetcherConfig
	url    *url.URL
	client *http.Client
	key    string

	mu      sync.Mutex
	current Snapshot
	have    bool
	lastErr error
}

// NewFetcher checks cfg and loads the copy on disk, if any.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.Source.URL))
	if err != nil {
		return nil, fmt.Errorf("calendar: source URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "webcal", "webcals":
		u.Scheme = "https"
	case "https", "http":
	default:
		return nil, fmt.Errorf("calendar: source URL: scheme %q is not http, https or webcal", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("calendar: source URL: no host")
	}
	if u.User != nil {
		return nil, fmt.Errorf("calendar: source URL: put credentials in the username/password settings, not the URL")
	}
	creds := cfg.Source.Username != "" || cfg.Source.BearerToken != ""
	if cfg.Source.Username != "" && cfg.Source.BearerToken != "" {
		return nil, fmt.Errorf("calendar: source: both basic auth and a bearer token")
	}
	if creds && strings.EqualFold(u.Scheme, "http") && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("calendar: source URL: credentials over plain http to %s would travel in clear text", u.Hostname())
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = min(cfg.Interval, time.Minute)
	}
	if cfg.Validate == nil {
		cfg.Validate = func(b []byte) error { _, err := Parse(b, Options{}); return err }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	id := u.String()
	if cfg.Source.CalDAV {
		id = "caldav " + id
	}
	sum := sha256.Sum256([]byte(id))
	f := &Fetcher{cfg: cfg, url: u, client: client, key: hex.EncodeToString(sum[:8])}
	if cfg.CachePath != "" {
		s, err := f.load()
		switch {
		case err == nil:
			f.current, f.have = s, true
		case errors.Is(err, os.ErrNotExist):
		default:
			// A damaged copy is not fatal: the next fetch replaces it.
			cfg.Logger.Warn("calendar: ignoring the copy on disk", "path", cfg.CachePath, "err", err)
		}
	}
	return f, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Current returns the last good copy; ErrNoCopy when there is none yet.
// The error of the last failed refresh, if any, is returned alongside a
// copy, so the agenda can say it may be stale.
func (f *Fetcher) Current() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.have {
		if f.lastErr != nil {
			return Snapshot{}, errors.Join(ErrNoCopy, f.lastErr)
		}
		return Snapshot{}, ErrNoCopy
	}
	return f.current, f.lastErr
}

// Fetch refreshes once. It returns the copy in use afterwards and whether
// it changed. On a 304 the cached copy stays and is confirmed; on an error
// the last good copy stays in use.
func (f *Fetcher) Fetch(ctx context.Context) (Snapshot, bool, error) {
	s, changed, err := f.fetch(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if err != nil {
		return f.current, false, err
	}
	f.current, f.have = s, true
	return s, changed, nil
}

func (f *Fetcher) fetch(ctx context.Context) (Snapshot, bool, error) {
	f.mu.Lock()
	prev, have := f.current, f.have
	f.mu.Unlock()
	if f.cfg.Source.CalDAV {
		body, err := f.fetchCalDAV(ctx)
		if err != nil {
			return Snapshot{}, false, err
		}
		return f.accept(body, "", "", prev, have)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url.String(), nil)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("calendar: fetch %s: %w", f.url.Redacted(), err)
	}
	req.Header.Set("Accept", "text/calendar, */*;q=0.5")
	if have {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	src := f.cfg.Source
	switch {
	case src.Username != "":
		req.SetBasicAuth(src.Username, src.Password)
	case src.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+src.BearerToken)
	}
	op := "calendar: fetch " + f.url.Host + f.url.Path // no query: it may hold a token
	resp, err := f.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its text repeats the URL, query included
		}
		return Snapshot{}, false, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	now := f.cfg.Now().UTC()
	switch {
	case resp.StatusCode == http.StatusNotModified && have:
		prev.FetchedAt = now
		if err := f.save(prev); err != nil {
			f.cfg.Logger.Warn("calendar: keep copy", "err", err)
		}
		return prev, false, nil
	case resp.StatusCode != http.StatusOK:
		return Snapshot{}, false, fmt.Errorf("%s: HTTP %s", op, resp.Status)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return Snapshot{}, false, fmt.Errorf("%s: %w: %d bytes, at most %d", op, ErrTooLarge, resp.ContentLength, f.cfg.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("%s: read: %w", op, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return Snapshot{}, false, fmt.Errorf("%s: %w: more than %d bytes", op, ErrTooLarge, f.cfg.MaxBytes)
	}
	return f.accept(body, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"), prev, have)
}

// accept validates a downloaded body and keeps it as the new copy.
func (f *Fetcher) accept(body []byte, etag, lastMod string, prev Snapshot, have bool) (Snapshot, bool, error) {
	if err := f.cfg.Validate(body); err != nil {
		return Snapshot{}, false, fmt.Errorf("calendar: fetch %s%s: %w", f.url.Host, f.url.Path, err)
	}
	s := Snapshot{Data: body, ETag: etag, LastModified: lastMod, FetchedAt: f.cfg.Now().UTC(), Source: f.key}
	changed := !have || string(prev.Data) != string(body)
	if err := f.save(s); err != nil {
		// The new copy is still used; only the offline fallback suffers.
		f.cfg.Logger.Warn("calendar: keep copy", "err", err)
	}
	return s, changed, nil
}

// Run refreshes at once and then every Interval (RetryInterval after a
// failure) until ctx ends, calling OnUpdate with each new copy. It returns
// nil when ctx ends.
func (f *Fetcher) Run(ctx context.Context) error {
	for {
		s, changed, err := f.Fetch(ctx)
		wait := f.cfg.Interval
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.cfg.Logger.Warn("calendar refresh failed; keeping the last good copy", "err", err)
			wait = f.cfg.RetryInterval
		case changed && f.cfg.OnUpdate != nil:
			f.cfg.OnUpdate(s)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.cfg.After(wait):
		}
	}
}

func (f *Fetcher) load() (Snapshot, error) {
	b, err := os.ReadFile(f.cfg.CachePath)
	if err != nil {
		return Snapshot{}, fmt.Errorf("calendar: read copy: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, fmt.Errorf("calendar: read copy %s: %w", f.cfg.CachePath, err)
	}
	if s.Source != f.key {
		return Snapshot{}, fmt.Errorf("calendar: copy %s is of another source: %w", f.cfg.CachePath, os.ErrNotExist)
	}
	return s, nil
}

// save writes the copy atomically: a temporary file in the same directory,
// synced, renamed over the old one, and the directory synced, so a power
// cut leaves the old copy or the new one, never half of one.
func (f *Fetcher) save(s Snapshot) (err error) {
	if f.cfg.CachePath == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("calendar: save copy: %w", err)
	}
	dir := filepath.Dir(f.cfg.CachePath)
	tmp, err := os.CreateTemp(dir, ".calendar-*.tmp") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("calendar: save copy: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("calendar: save copy: %w", err)
	}
	if err = os.Rename(tmp.Name(), f.cfg.CachePath); err != nil {
		return fmt.Errorf("calendar: save copy: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
