package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRecentKeepsTheNewestWithinItsBound(t *testing.T) {
	recent := NewRecent(400)
	var stderr bytes.Buffer
	log, err := New(Options{Level: "info", Format: "text", Stderr: &stderr, Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("subsystem", "fleet").WithGroup("cmd")
	log.Debug("not kept: below the level")
	for i := range 20 {
		log.Info("check-in", "n", i)
	}
	got := string(recent.Since(time.Time{}, 1<<20))
	if strings.Contains(got, "not kept") || len(got) > 400 || !strings.Contains(got, "cmd.n=19") || strings.Contains(got, "cmd.n=0\n") {
		t.Fatalf("recent:\n%s", got)
	}
	if !strings.Contains(got, "subsystem=fleet") || !strings.Contains(stderr.String(), "cmd.n=0") {
		t.Fatalf("attributes or the terminal copy lost:\n%s\n%s", got, stderr.String())
	}
	// A smaller limit keeps whole newest lines only.
	small := string(recent.Since(time.Time{}, 100))
	if small == "" || !strings.HasSuffix(small, "\n") || !strings.Contains(small, "cmd.n=19") || len(small) > 100 {
		t.Fatalf("bounded copy %q", small)
	}
	// Since drops older records.
	if out := recent.Since(time.Now().Add(time.Hour), 1<<20); len(out) != 0 {
		t.Fatalf("future since gave %q", out)
	}
}

func TestTeeHonoursEachLevel(t *testing.T) {
	var a, b bytes.Buffer
	log := slog.New(Tee(slog.NewTextHandler(&a, &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.Info("info only in b")
	log.Warn("warn in both")
	if strings.Contains(a.String(), "info only") || !strings.Contains(a.String(), "warn in both") || !strings.Contains(b.String(), "info only") {
		t.Fatalf("a=%q b=%q", a.String(), b.String())
	}
}
