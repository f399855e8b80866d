package vm

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	benchFlag = flag.String("vm.bench", "", "run the guest packages' benchmarks matching this regexp (-test.run '^$' -test.bench REGEXP) instead of their tests")
	benchOut  = flag.String("vm.benchout", "", "with -vm.bench: append the guest benchmark output, labelled, to this file")
)

// defaultVMTimeout bounds one boot when ATRIUM_VM_TIMEOUT is not set.
const defaultVMTimeout = 10 * time.Minute

// TestGuest builds every package that has *_vm_test.go files (or those
// ATRIUM_VM_PKGS names), runs them all in one VM, and reports a subtest per
// package with its guest output. See the package documentation.
func TestGuest(t *testing.T) {
	t.Parallel()
	timeout := defaultVMTimeout
	if s := os.Getenv("ATRIUM_VM_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("ATRIUM_VM_TIMEOUT: %v", err)
		}
		timeout = d
	}
	ctx := t.Context()
	// Leave the test binary time to report before its own -timeout.
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}

	start := time.Now()
	k, err := Prepare(ctx, PrepareOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	t.Logf("kernel %s (%s) ready in %s", k.Release, k.Version, time.Since(start).Round(time.Millisecond))

	root, err := RepoRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	patterns := []string{"./..."}
	if s := os.Getenv("ATRIUM_VM_PKGS"); s != "" {
		patterns = pkgPatterns(s)
	}
	start = time.Now()
	pkgs, err := FindPackages(ctx, root, patterns)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatalf("no package matching %q has *_vm_test.go files", patterns)
	}
	tests, err := BuildTests(ctx, root, pkgs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Rel)
	}
	t.Logf("built %d guest test binaries in %s: %s", len(tests), time.Since(start).Round(time.Millisecond), strings.Join(names, " "))

	args := strings.Fields(os.Getenv("ATRIUM_VM_ARGS"))
	if *benchFlag != "" {
		args = append([]string{"-test.run=^$", "-test.bench=" + *benchFlag, "-test.benchmem"}, args...)
	}
	var console io.Writer
	if dir := os.Getenv("ATRIUM_ARTIFACTS"); dir != "" {
		name := "vm-console.log"
		if *benchFlag != "" {
			name = "vm-bench-console.log"
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		console = f
		t.Logf("serial console: %s", f.Name())
	}

	var testTimeout time.Duration
	if s := os.Getenv("ATRIUM_VM_TEST_TIMEOUT"); s != "" {
		if testTimeout, err = time.ParseDuration(s); err != nil {
			t.Fatalf("ATRIUM_VM_TEST_TIMEOUT: %v", err)
		}
	}

	vmCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start = time.Now()
	results, runErr := Run(vmCtx, RunOptions{
		Kernel:      k,
		Tests:       tests,
		Args:        args,
		TestTimeout: testTimeout,
		Console:     console,
		TempDir:     t.TempDir(),
		Logger:      testLogger(t),
	})
	t.Logf("VM ran %d packages in %s", len(tests), time.Since(start).Round(time.Millisecond))
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			t.Logf("guest output (%s):\n%s", r.Duration.Round(time.Millisecond), r.Output)
			switch {
			case !r.Started:
				t.Error("the guest never started this package")
			case !r.Finished:
				t.Error("no result marker: the package hung or the guest died while it ran")
			case r.ExitCode != 0:
				t.Errorf("exit status %d", r.ExitCode)
			}
		})
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if *benchFlag != "" && *benchOut != "" {
		if err := appendBench(*benchOut, k, results); err != nil {
			t.Fatal(err)
		}
	}
}

// appendBench appends each package's guest output to path, under a header
// that says it was measured in an emulated machine.
func appendBench(path string, k *Kernel, results []Result) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for _, r := range results {
		if !hasBenchmarks(r.Output) {
			continue
		}
		fmt.Fprintf(f, "\n# Guest benchmarks of %s, in QEMU (TCG software emulation, -cpu max -smp 2), kernel %s: times are emulated, not the host's.\n%s", r.Name, k.Release, r.Output)
	}
	return f.Close()
}

// hasBenchmarks reports whether guest output has a benchmark result line.
func hasBenchmarks(out string) bool {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "Benchmark") {
			return true
		}
	}
	return false
}

// pkgPatterns splits ATRIUM_VM_PKGS into go list patterns; a path written
// without its "./" ("hal/v4l2") is taken as relative to the module root.
func pkgPatterns(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		first, _, _ := strings.Cut(p, "/")
		if !strings.HasPrefix(p, ".") && !strings.HasPrefix(p, "/") && !strings.Contains(first, ".") {
			p = "./" + p
		}
		out = append(out, p)
	}
	return out
}

func TestPkgPatterns(t *testing.T) {
	got := pkgPatterns(" ./hal/v4l2, hal/m2m,,github.com/atriumroom/atrium/hal/alsa,./hal/...")
	want := []string{"./hal/v4l2", "./hal/m2m", "github.com/atriumroom/atrium/hal/alsa", "./hal/..."}
	if !slices.Equal(got, want) {
		t.Errorf("pkgPatterns = %q, want %q", got, want)
	}
}
