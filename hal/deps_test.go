package hal_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestDependencies keeps the arrows pointing one way: the HAL and its
// drivers need only the standard library, x/sys and each other as listed, so
// the daemon, the UI and the providers import them, never the reverse. None
// of these uses cgo: the simulator builds anywhere, and the real drivers'
// guest tests are static binaries in the QEMU tier (test/vm). The software
// codecs and the VA-API probe are the cgo packages.
func TestDependencies(t *testing.T) {
	const (
		hal      = "github.com/atriumroom/atrium/hal"
		hotplug  = hal + "/hotplug"
		uapi     = hal + "/internal/v4l2"
		xsysUnix = "golang.org/x/sys/unix"
	)
	for dir, allowed := range map[string][]string{
		".":             nil,
		"sim":           {hal},
		"internal/v4l2": {xsysUnix},
		"hotplug":       {xsysUnix},
		"v4l2":          {hal, hotplug, uapi, xsysUnix},
		"alsa":          {hal, hotplug, xsysUnix},
		"m2m":           {hal, uapi, xsysUnix},
		"pixconv":       {hal},
		"codecsel":      {hal},
	} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(pkg.CgoFiles) > 0 {
			t.Errorf("%s uses cgo: %v", dir, pkg.CgoFiles)
		}
	imports:
		for _, imp := range pkg.Imports {
			if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // standard library
			}
			for _, a := range allowed {
				if imp == a {
					continue imports
				}
			}
			t.Errorf("%s imports %s", dir, imp)
		}
	}
}
