// Package fleet_test is the fleet tier: the built fleetd (on SQLite and on
// Debian's PostgreSQL) and the built roomd, end to end through the console
// in Chromium, and under faults: fleetd killed during check-ins, the
// network between them cut, roomd killed between receiving a command and
// reporting it.
package fleet_test

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
func binaries(t *testing.T) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fleet-bin")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
		fleetdBin = buildInto(t, "./cmd/fleetd", dir)
		roomdBin = buildInto(t, "./cmd/roomd", dir)
	})
	if fleetdBin == "" || roomdBin == "" {
		t.Fatal("building fleetd and roomd failed in an earlier test")
	}
}

func buildInto(t *testing.T, pkg, dir string) string {
	bin := roomdtest.Build(t, pkg)
	dst := filepath.Join(dir, filepath.Base(pkg))
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func fleetdBinary(t *testing.T) string { binaries(t); return fleetdBin }
func roomdBinary(t *testing.T) string  { binaries(t); return roomdBin }
