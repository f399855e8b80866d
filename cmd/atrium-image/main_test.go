package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestResolveBuildTime(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 21, 16, 0, 0, 500, time.UTC) }
	for _, c := range []struct {
		flag, epoch string
		want        time.Time
		bad         bool
	}{
		{"2026-01-02T03:04:05+01:00", "99", time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC), false},
		{"", "1795262400", time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), false},
		{"", "", time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC), false},
		{"yesterday", "", time.Time{}, true},
		{"", "-5", time.Time{}, true},
	} {
		got, err := resolveBuildTime(c.flag, c.epoch, now)
		if (err != nil) != c.bad || !got.Equal(c.want) {
			t.Errorf("resolveBuildTime(%q, %q) = %v, %v", c.flag, c.epoch, got, err)
		}
	}
}

func TestUsage(t *testing.T) {
	now := time.Now
	for _, args := range [][]string{
		nil,
		{"bake"},
		{"build", "-out", "o", "-version", "1", "-roomd", "r", "-roomctl", "c", "-roomkiosk", "k"},
		{"build", "-out", "o", "-version", "1 0", "-roomd", "r", "-roomctl", "c", "-roomkiosk", "k", "-update-root", "u"},
		{"build", "-out", "o", "-version", "1", "-roomd", "r", "-roomctl", "c", "-roomkiosk", "k", "-update-root", "u", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr, now); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (usage); stderr %s", args, code, stderr.String())
		}
	}
	o, err := parseBuild(strings.Fields("-out o -version 1.2 -roomd r -roomctl c -roomkiosk k -update-root u -comp lz4 -build-time 2026-11-21T12:00:00Z"), &bytes.Buffer{}, now)
	if err != nil || o.Out != "o" || o.Layer.Version != "1.2" || o.Comp != "lz4" || o.Layer.Source != "rootfs" || o.CacheDir != ".cache/image" ||
		!o.Layer.BuildTime.Equal(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("parseBuild = %+v, %v", o, err)
	}
}
