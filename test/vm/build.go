package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BuildTag is the build constraint of guest test files.
const BuildTag = "vmguest"

// Package is a package of the module that has guest tests.
type Package struct {
	ImportPath string
	// Dir is its directory on the host; Rel the same relative to the
	// module root, with slashes ("hal/v4l2"), which names it in the guest.
	Dir, Rel string
}

// FindPackages lists the packages matching patterns (go list patterns,
// relative to root, e.g. "./..." or "./hal/v4l2") that have test files
// named *_vm_test.go once built with the vmguest tag.
func FindPackages(ctx context.Context, root string, patterns []string) ([]Package, error) {
	const tmpl = `{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}`
	args := append([]string{"list", "-tags", BuildTag, "-f", tmpl, "--"}, patterns...)
	out, err := run(ctx, root, "go", args...)
	if err != nil {
		return nil, err
	}
	return parseList(out, root)
}

// parseList reads FindPackages' go list output.
func parseList(out, root string) ([]Package, error) {
	var pkgs []Package
	for line := range strings.Lines(out) {
		fields := strings.SplitN(strings.TrimRight(line, "\n"), "\t", 3)
		if len(fields) != 3 {
			return nil, fmt.Errorf("vm: go list: unexpected line %q", line)
		}
		has := false
		for _, f := range strings.Fields(fields[2]) {
			if strings.HasSuffix(f, "_vm_test.go") {
				has = true
			}
		}
		if !has {
			continue
		}
		rel, err := filepath.Rel(root, fields[1])
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("vm: package %s is outside %s", fields[0], root)
		}
		pkgs = append(pkgs, Package{ImportPath: fields[0], Dir: fields[1], Rel: filepath.ToSlash(rel)})
	}
	return pkgs, nil
}

// BuildTests compiles each package's tests, guest tests included, into a
// static binary in outDir (CGO_ENABLED=0 go test -c -tags vmguest,
// stripped to keep the initramfs small) and returns them as Tests.
func BuildTests(ctx context.Context, root string, pkgs []Package, outDir string) ([]Test, error) {
	var tests []Test
	for i, p := range pkgs {
		bin := filepath.Join(outDir, fmt.Sprintf("%d-%s.test", i, filepath.Base(p.Dir)))
		cmd := []string{"test", "-c", "-tags", BuildTag, "-ldflags=-s -w", "-o", bin, p.ImportPath}
		if _, err := runEnv(ctx, root, []string{"CGO_ENABLED=0"}, "go", cmd...); err != nil {
			return nil, err
		}
		// go test -c writes nothing for a package without test files.
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("vm: go test -c %s wrote no binary: %w", p.ImportPath, err)
		}
		t := Test{Name: p.Rel, Binary: bin}
		if st, err := os.Stat(filepath.Join(p.Dir, "testdata")); err == nil && st.IsDir() {
			t.Testdata = filepath.Join(p.Dir, "testdata")
		}
		if list := filepath.Join(p.Dir, ProgramsFile); fileExists(list) {
			if t.Testdata != "" {
				return nil, fmt.Errorf("vm: %s has both testdata/ and %s; only one is supported", p.Rel, ProgramsFile)
			}
			t.Testdata = filepath.Join(outDir, fmt.Sprintf("%d-%s.data", i, filepath.Base(p.Dir)))
			if err := buildPrograms(ctx, root, list, filepath.Join(t.Testdata, "programs")); err != nil {
				return nil, err
			}
		}
		tests = append(tests, t)
	}
	return tests, nil
}
