// Package logging builds roomd's *slog.Logger: structured records to the
// systemd journal when roomd runs under systemd, readable text on a
// terminal, JSON on request.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// Options selects the output.
type Options struct {
	Level  string // debug, info, warn, error
	Format string // auto, journal, text, json
	// Stderr receives text and JSON output.
	Stderr io.Writer
	// StderrIsJournal reports whether stderr is connected to the journal
	// (systemd sets JOURNAL_STREAM to say so); it decides "auto".
	StderrIsJournal func() bool
	// Send writes one journal entry; journal.Send in production.
	Send SendFunc
	// Recent, when set, also receives every record (for the fleet's log
	// collection).
	Recent *Recent
}

// SendFunc writes one entry to the journal.
type SendFunc func(message string, priority journal.Priority, fields map[string]string) error

// New returns a logger for opts.
func New(opts Options) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", opts.Level, err)
	}
	h, err := handler(opts, level)
	if err != nil {
		return nil, err
	}
	if opts.Recent != nil {
		h = Tee(h, opts.Recent.Handler(level))
	}
	return slog.New(h), nil
}

func handler(opts Options, level slog.Level) (slog.Handler, error) {
	hopts := &slog.HandlerOptions{Level: level}
	format := opts.Format
	if format == "auto" {
		format = "text"
		if opts.StderrIsJournal != nil && opts.StderrIsJournal() {
			format = "journal"
		}
	}
	switch format {
	case "text":
		return slog.NewTextHandler(opts.Stderr, hopts), nil
	case "json":
		return slog.NewJSONHandler(opts.Stderr, hopts), nil
	case "journal":
		send := opts.Send
		if send == nil {
			send = journal.Send
		}
		return &JournalHandler{level: level, send: send}, nil
	}
	return nil, fmt.Errorf("log format %q: want auto, journal, text or json", opts.Format)
}

// JournalStderr reports whether stderr is the journal, as systemd's
// JOURNAL_STREAM says.
func JournalStderr() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// JournalHandler writes records as native journal entries, so that every
// attribute is a field that journalctl can filter on (journalctl MEETING_STATE=failed).
type JournalHandler struct {
	level  slog.Leveler
	send   SendFunc
	prefix string            // group prefix for attribute names
	fields map[string]string // attributes from WithAttrs
}

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]string, len(h.fields)+r.NumAttrs())
	for k, v := range h.fields {
		fields[k] = v
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		// journalctl and a console fed by the journal show MESSAGE only:
		// a failure without its cause there sends IT staff hunting for
		// the ERR field.
		if a.Key == "err" && h.prefix == "" {
			if v := a.Value.Resolve().String(); v != "" {
				msg += ": " + v
			}
		}
		return true
	})
	return h.send(msg, priority(r.Level), fields)
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.fields = make(map[string]string, len(h.fields)+len(attrs))
	for k, v := range h.fields {
		n.fields[k] = v
	}
	for _, a := range attrs {
		addField(n.fields, h.prefix, a)
	}
	return &n
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "_"
	return &n
}

func addField(fields map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "_"
		}
		for _, g := range a.Value.Group() {
			addField(fields, p, g)
		}
		return
	}
	if name := fieldName(prefix + a.Key); name != "" {
		fields[name] = a.Value.String()
	}
}

// fieldName maps an attribute key to a journal field name: upper case
// letters, digits and underscores, not starting with an underscore or digit
// (those are reserved for trusted fields).
func fieldName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_0123456789")
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
