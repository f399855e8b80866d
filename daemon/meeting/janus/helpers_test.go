package janus_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/test/netns"
)

// The whole binary runs in a network namespace of its own: Janus needs a
// non-loopback address for ICE (see test/janustest), and the fake-server
// tests lose nothing by it.
func TestMain(m *testing.M) { netns.Main(m) }

// noLeaks checks, once everything else the test set up has been cleaned
// up, that no goroutine is left: it must be the test's first line.
// (netns.Main checks the whole run too; checking per test names the leaker.)
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// logRecorder is a slog.Handler that keeps every record, for tests that
// check what the provider logged, and prints them when the test fails.
type logRecorder struct {
	mu      sync.Mutex
	records []string
	attrs   []slog.Attr
	root    *logRecorder
}

func newLogger(t *testing.T) (*slog.Logger, *logRecorder) {
	r := &logRecorder{}
	r.root = r
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- provider log ---\n%s", r.String())
		}
	})
	return slog.New(r), r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", rec.Time.Format("15:04:05.000"), rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s", a)
		return true
	})
	r.root.mu.Lock()
	r.root.records = append(r.root.records, b.String())
	r.root.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr(nil), r.attrs...), as...), root: r.root}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// has reports whether some record contains every one of parts.
func (r *logRecorder) has(parts ...string) bool {
	r.root.mu.Lock()
	defer r.root.mu.Unlock()
	for _, rec := range r.root.records {
		all := true
		for _, p := range parts {
			if !strings.Contains(rec, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (r *logRecorder) String() string {
	r.root.mu.Lock()
	defer r.root.mu.Unlock()
	return strings.Join(r.root.records, "\n")
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := meeting.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// leave leaves s at the end of the test if the test did not.
func leaveAtCleanup(t *testing.T, s meeting.Session) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Leave(ctx)
	})
}
