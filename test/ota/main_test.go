// Package ota_test is the update tier: a release published with the real
// `fleetd release` tool reaches the real roomd through a rollout in the real
// fleetd, streams into the inactive slot of a file-backed disk (roomd's
// "file" boot loader plays the firmware), survives roomd being killed
// halfway through the download, and is then blessed by the health gate, or
// rolled back by it and never tried again. The kiosk is Chromium showing
// roomd's own UI, which tells roomd once its home screen is up.
package ota_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/atriumroom/atrium/test/roomdtest"
)

var (
	buildOnce           sync.Once
	fleetdBin, roomdBin string
	buildDir            string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds fleetd and roomd once for all tests.
func binaries(t *testing.T) (fleetd, roomd string) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ota-bin")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
		fleetdBin = copyInto(t, roomdtest.Build(t, "./cmd/fleetd"), dir)
		roomdBin = copyInto(t, roomdtest.Build(t, "./cmd/roomd"), dir)
	})
	if fleetdBin == "" || roomdBin == "" {
		t.Fatal("building fleetd and roomd failed in an earlier test")
	}
	return fleetdBin, roomdBin
}

func copyInto(t *testing.T, bin, dir string) string {
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(bin))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
