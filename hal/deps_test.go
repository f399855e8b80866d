package hal_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestDependencies keeps the arrows pointing one way: the HAL and its
// simulated driver need only the standard library (and the HAL itself), so
// the daemon, the UI and the providers import them, never the reverse, and
// the simulator builds anywhere without cgo.
func TestDependencies(t *testing.T) {
	for dir, allowed := range map[string][]string{
		".":   nil,
		"sim": {"github.com/atriumroom/atrium/hal"},
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
