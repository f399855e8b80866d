package kiosk

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"testing"
)

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != DefaultURL || c.Origin.String() != "http://127.0.0.1:8480" || !c.Fullscreen || c.LogLevel != slog.LevelInfo || c.Console || c.GPU != GPUAuto {
		t.Errorf("defaults = %+v", c)
	}

	c, err = ParseFlags([]string{"-url", "http://localhost:9000/kiosk", "-fullscreen=false", "-width", "800", "-height", "600", "-log-level", "debug", "-console"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin.String() != "http://localhost:9000" || c.Fullscreen || c.Width != 800 || c.Height != 600 || c.LogLevel != slog.LevelDebug || !c.Console {
		t.Errorf("parsed = %+v", c)
	}

	for _, args := range [][]string{
		{"-url", "file:///srv/ui/index.html"},
		{"-url", "127.0.0.1:8480"},
		{"-width", "0"},
		{"-log-level", "loud"},
		{"extra"},
	} {
		if _, err := ParseFlags(args, io.Discard); err == nil {
			t.Errorf("ParseFlags(%q): no error", args)
		}
	}
	if _, err := ParseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}
