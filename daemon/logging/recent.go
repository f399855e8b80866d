package logging

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// Recent keeps roomd's latest log records as text in memory, bounded in
// bytes, for the fleet's collect-logs command: the journal is not readable
// by roomd's unprivileged user on every image, and a development machine
// has none.
type Recent struct {
	mu    sync.Mutex
	max   int
	size  int
	lines []recentLine
}

type recentLine struct {
	at   time.Time
	text []byte
}

// NewRecent keeps at most maxBytes of text.
func NewRecent(maxBytes int) *Recent { return &Recent{max: maxBytes} }

func (r *Recent) add(at time.Time, text []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, recentLine{at, text})
	r.size += len(text)
	drop := 0
	for r.size > r.max && drop < len(r.lines) {
		r.size -= len(r.lines[drop].text)
		drop++
	}
	if drop > 0 {
		r.lines = append(r.lines[:0:0], r.lines[drop:]...)
	}
}

// Since returns the records logged at or after t, oldest first, as text
// lines, keeping the newest when they exceed maxBytes.
func (r *Recent) Since(t time.Time, maxBytes int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := len(r.lines)
	total := 0
	for i := len(r.lines) - 1; i >= 0 && !r.lines[i].at.Before(t); i-- {
		if total+len(r.lines[i].text) > maxBytes {
			break
		}
		total += len(r.lines[i].text)
		first = i
	}
	var b bytes.Buffer
	b.Grow(total)
	for _, l := range r.lines[first:] {
		b.Write(l.text)
	}
	return b.Bytes()
}

// Handler returns a handler that formats records as text into r.
func (r *Recent) Handler(level slog.Leveler) slog.Handler {
	return &recentHandler{r: r, level: level}
}

// recentHandler formats each record with a text handler of its own, so
// attributes and groups render exactly as on a terminal. ops replays the
// WithAttrs and WithGroup calls in their order.
type recentHandler struct {
	r     *Recent
	level slog.Leveler
	ops   []func(slog.Handler) slog.Handler
}

func (h *recentHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *recentHandler) Handle(ctx context.Context, rec slog.Record) error {
	var buf bytes.Buffer
	var th slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: h.level})
	for _, op := range h.ops {
		th = op(th)
	}
	if err := th.Handle(ctx, rec); err != nil {
		return err
	}
	h.r.add(rec.Time, buf.Bytes())
	return nil
}

func (h *recentHandler) with(op func(slog.Handler) slog.Handler) *recentHandler {
	c := *h
	c.ops = append(append([]func(slog.Handler) slog.Handler(nil), h.ops...), op)
	return &c
}

func (h *recentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(th slog.Handler) slog.Handler { return th.WithAttrs(attrs) })
}

func (h *recentHandler) WithGroup(name string) slog.Handler {
	return h.with(func(th slog.Handler) slog.Handler { return th.WithGroup(name) })
}

// Tee sends every record to each handler that is enabled for it.
func Tee(handlers ...slog.Handler) slog.Handler { return tee(handlers) }

type tee []slog.Handler

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var first error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (t tee) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (t tee) WithGroup(name string) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
