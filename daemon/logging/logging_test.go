package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// entry is one journal entry captured by fakeJournal.
type entry struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

type fakeJournal struct {
	entries []entry
	err     error
}

func (f *fakeJournal) send(msg string, pri journal.Priority, fields map[string]string) error {
	f.entries = append(f.entries, entry{msg, pri, fields})
	return f.err
}

func (f *fakeJournal) only(t *testing.T) entry {
	t.Helper()
	if len(f.entries) != 1 {
		t.Fatalf("got %d journal entries, want 1: %+v", len(f.entries), f.entries)
	}
	return f.entries[0]
}

func always(v bool) func() bool { return func() bool { return v } }

func TestNewFormats(t *testing.T) {
	tests := []struct {
		format    string
		isJournal func() bool
		want      string // "text", "json" or "journal"
	}{
		{"text", nil, "text"},
		{"text", always(true), "text"},
		{"json", nil, "json"},
		{"json", always(true), "json"},
		{"journal", nil, "journal"},
		{"journal", always(false), "journal"},
		{"auto", always(true), "journal"},
		{"auto", always(false), "text"},
		{"auto", nil, "text"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		fj := &fakeJournal{}
		logger, err := New(Options{Level: "info", Format: tt.format, Stderr: &buf, StderrIsJournal: tt.isJournal, Send: fj.send})
		if err != nil {
			t.Fatalf("New(%s): %v", tt.format, err)
		}
		logger.Info("hello", "k", "v")
		var got string
		switch {
		case len(fj.entries) == 1 && buf.Len() == 0:
			got = "journal"
		case json.Valid(buf.Bytes()) && len(fj.entries) == 0:
			got = "json"
		case strings.Contains(buf.String(), "msg=hello k=v") && len(fj.entries) == 0:
			got = "text"
		default:
			got = "unknown: " + buf.String()
		}
		journalSet := tt.isJournal != nil && tt.isJournal()
		if got != tt.want {
			t.Errorf("format %q (stderr is journal: %v) wrote %s, want %s", tt.format, journalSet, got, tt.want)
		}
	}
}

func TestNewJournalDefaultsToJournalSend(t *testing.T) {
	logger, err := New(Options{Level: "info", Format: "journal"})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := logger.Handler().(*JournalHandler)
	if !ok {
		t.Fatalf("handler is %T, want *JournalHandler", logger.Handler())
	}
	if h.send == nil {
		t.Error("journal handler without Send has no send function")
	}
}

func TestNewLevels(t *testing.T) {
	tests := []struct {
		level   string
		enabled []slog.Level
		off     []slog.Level
	}{
		{"debug", []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelError}, nil},
		{"info", []slog.Level{slog.LevelInfo, slog.LevelWarn}, []slog.Level{slog.LevelDebug}},
		{"warn", []slog.Level{slog.LevelWarn, slog.LevelError}, []slog.Level{slog.LevelInfo}},
		{"error", []slog.Level{slog.LevelError}, []slog.Level{slog.LevelWarn}},
		{"WARN", []slog.Level{slog.LevelWarn}, []slog.Level{slog.LevelInfo}},
	}
	for _, format := range []string{"text", "json", "journal"} {
		for _, tt := range tests {
			logger, err := New(Options{Level: tt.level, Format: format, Stderr: &bytes.Buffer{}, Send: (&fakeJournal{}).send})
			if err != nil {
				t.Fatalf("New(%s, %s): %v", tt.level, format, err)
			}
			for _, l := range tt.enabled {
				if !logger.Enabled(context.Background(), l) {
					t.Errorf("%s/%s: %v not enabled", format, tt.level, l)
				}
			}
			for _, l := range tt.off {
				if logger.Enabled(context.Background(), l) {
					t.Errorf("%s/%s: %v enabled", format, tt.level, l)
				}
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		level, format, want string
	}{
		{"loud", "text", "log level"},
		{"", "text", "log level"},
		{"info", "xml", "log format"},
		{"info", "", "log format"},
		{"info", "Auto", "log format"},
	}
	for _, tt := range tests {
		logger, err := New(Options{Level: tt.level, Format: tt.format, Stderr: &bytes.Buffer{}})
		if err == nil || logger != nil {
			t.Errorf("New(level %q, format %q) = %v, %v; want an error", tt.level, tt.format, logger, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(level %q, format %q) error %q does not mention %q", tt.level, tt.format, err, tt.want)
		}
	}
}

func newJournalLogger(level slog.Level) (*slog.Logger, *fakeJournal) {
	fj := &fakeJournal{}
	return slog.New(&JournalHandler{level: level, send: fj.send}), fj
}

func TestJournalMessageAndPriority(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  journal.Priority
	}{
		{slog.LevelDebug - 4, journal.PriDebug},
		{slog.LevelDebug, journal.PriDebug},
		{slog.LevelInfo, journal.PriInfo},
		{slog.LevelInfo + 2, journal.PriInfo},
		{slog.LevelWarn, journal.PriWarning},
		{slog.LevelError, journal.PriErr},
		{slog.LevelError + 4, journal.PriErr},
	}
	for _, tt := range tests {
		logger, fj := newJournalLogger(slog.LevelDebug - 8)
		logger.Log(context.Background(), tt.level, "camera opened")
		e := fj.only(t)
		if e.msg != "camera opened" || e.pri != tt.want {
			t.Errorf("level %v: got message %q priority %d, want %q %d", tt.level, e.msg, e.pri, "camera opened", tt.want)
		}
		if len(e.fields) != 0 {
			t.Errorf("level %v: fields %v, want none", tt.level, e.fields)
		}
	}
}

func TestJournalMessageCarriesTheError(t *testing.T) {
	logger, fj := newJournalLogger(slog.LevelDebug)
	logger.Warn("update step failed", "err", errors.New("open slot b: permission denied"), "state", "installing")
	e := fj.only(t)
	if e.msg != "update step failed: open slot b: permission denied" {
		t.Errorf("message %q, want the error after the text", e.msg)
	}
	if e.fields["ERR"] != "open slot b: permission denied" || e.fields["STATE"] != "installing" {
		t.Errorf("fields %v", e.fields)
	}
	logger.WithGroup("call").Warn("ended", "err", "x")
	if e := fj.entries[len(fj.entries)-1]; e.msg != "ended" {
		t.Errorf("a grouped err attribute changed the message: %q", e.msg)
	}
}

func TestJournalEnabled(t *testing.T) {
	logger, fj := newJournalLogger(slog.LevelWarn)
	ctx := context.Background()
	if logger.Enabled(ctx, slog.LevelInfo) || !logger.Enabled(ctx, slog.LevelWarn) || !logger.Enabled(ctx, slog.LevelError) {
		t.Error("Enabled does not honour the warn level")
	}
	logger.Debug("d")
	logger.Info("i")
	logger.Warn("w")
	logger.Error("e")
	var got []string
	for _, e := range fj.entries {
		got = append(got, e.msg)
	}
	if want := []string{"w", "e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}

	// A LevelVar is followed when it changes.
	var lv slog.LevelVar
	lv.Set(slog.LevelError)
	h := &JournalHandler{level: &lv, send: fj.send}
	if h.Enabled(ctx, slog.LevelWarn) {
		t.Error("warn enabled at error level")
	}
	lv.Set(slog.LevelDebug)
	if !h.Enabled(ctx, slog.LevelDebug) {
		t.Error("debug not enabled after the LevelVar changed")
	}
}

func TestJournalFields(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want map[string]string
	}{
		{
			"attributes become upper-case fields",
			func(l *slog.Logger) { l.Info("m", "state", "failed", "count", 3, "ok", true) },
			map[string]string{"STATE": "failed", "COUNT": "3", "OK": "true"},
		},
		{
			"WithAttrs",
			func(l *slog.Logger) { l.With("device", "cam0").Info("m", "mode", "720p") },
			map[string]string{"DEVICE": "cam0", "MODE": "720p"},
		},
		{
			"WithGroup prefixes later attributes",
			func(l *slog.Logger) { l.With("a", 1).WithGroup("meeting").Info("m", "state", "failed") },
			map[string]string{"A": "1", "MEETING_STATE": "failed"},
		},
		{
			"WithAttrs inside a group",
			func(l *slog.Logger) { l.WithGroup("hal").With("kind", "camera").Info("m", "id", "x") },
			map[string]string{"HAL_KIND": "camera", "HAL_ID": "x"},
		},
		{
			"nested groups",
			func(l *slog.Logger) { l.WithGroup("a").WithGroup("b").Info("m", "c", "d") },
			map[string]string{"A_B_C": "d"},
		},
		{
			"group attribute",
			func(l *slog.Logger) {
				l.WithGroup("api").Info("m", slog.Group("req", "method", "GET", slog.Group("peer", "uid", 0)))
			},
			map[string]string{"API_REQ_METHOD": "GET", "API_REQ_PEER_UID": "0"},
		},
		{
			"group attribute with empty key is inlined",
			func(l *slog.Logger) { l.Info("m", slog.Group("", "x", 1)) },
			map[string]string{"X": "1"},
		},
		{
			"empty WithGroup is ignored",
			func(l *slog.Logger) { l.WithGroup("").Info("m", "x", 1) },
			map[string]string{"X": "1"},
		},
		{
			"empty attribute is dropped",
			func(l *slog.Logger) { l.Info("m", slog.Attr{}, "x", 1) },
			map[string]string{"X": "1"},
		},
		{
			"LogValuer is resolved",
			func(l *slog.Logger) { l.Info("m", "secret", redacted{}) },
			map[string]string{"SECRET": "***"},
		},
		{
			"dashes and dots become underscores",
			func(l *slog.Logger) { l.Info("m", "request-id", "r1", "a.b", "c") },
			map[string]string{"REQUEST_ID": "r1", "A_B": "c"},
		},
		{
			"leading digits and underscores are dropped",
			func(l *slog.Logger) { l.Info("m", "_hidden", 1, "9lives", 2, "_1_x", 3) },
			map[string]string{"HIDDEN": "1", "LIVES": "2", "X": "3"},
		},
		{
			"names with nothing usable are dropped",
			func(l *slog.Logger) { l.Info("m", "___", 1, "123", 2, "é", 3, "ok", 4) },
			map[string]string{"OK": "4"},
		},
		{
			"long names are cut to 64 bytes",
			func(l *slog.Logger) { l.Info("m", strings.Repeat("k", 70), "v") },
			map[string]string{strings.Repeat("K", 64): "v"},
		},
		{
			"error values",
			func(l *slog.Logger) { l.Error("m", "err", errors.New("boom")) },
			map[string]string{"ERR": "boom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, fj := newJournalLogger(slog.LevelDebug)
			tt.log(logger)
			if got := fj.only(t).fields; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fields = %v, want %v", got, tt.want)
			}
		})
	}
}

type redacted struct{}

func (redacted) LogValue() slog.Value { return slog.StringValue("***") }

func TestJournalWithDoesNotShareState(t *testing.T) {
	logger, fj := newJournalLogger(slog.LevelDebug)
	base := logger.With("a", 1)
	_ = base.With("b", 2)   // must not add b to base
	_ = base.WithGroup("g") // must not prefix base
	base.Info("m", "c", 3)
	want := map[string]string{"A": "1", "C": "3"}
	if got := fj.only(t).fields; !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
}

func TestJournalSendError(t *testing.T) {
	fj := &fakeJournal{err: errors.New("journal gone")}
	h := &JournalHandler{level: slog.LevelInfo, send: fj.send}
	r := slog.NewRecord(testTime, slog.LevelInfo, "m", 0)
	if err := h.Handle(context.Background(), r); !errors.Is(err, fj.err) {
		t.Errorf("Handle = %v, want the send error", err)
	}
}

var testTime = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
