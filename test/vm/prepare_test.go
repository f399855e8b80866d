package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestQueryParsing(t *testing.T) {
	out := `Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel.

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Depends: libc6
`
	pkgs := parseAptShow(out)
	name, version, err := exactDependency(pkgs["linux-image-amd64"]["Depends"], "linux-image-")
	if err != nil || name != "linux-image-6.1.0-56-amd64" || version != "6.1.192-2" {
		t.Errorf("exactDependency = %q, %q, %v", name, version, err)
	}
	if v := pkgs["busybox-static"]["Version"]; v != "1:1.35.0-4+deb12u1+b1" {
		t.Errorf("busybox-static version %q", v)
	}
	for _, bad := range []string{"linux-image-6.1.0-56-amd64 (>= 6.1)", "other (= 1)", ""} {
		if _, _, err := exactDependency(bad, "linux-image-"); err == nil {
			t.Errorf("exactDependency(%q) accepted", bad)
		}
	}
}

func TestRelease(t *testing.T) {
	abi, flavour, ok := splitRelease("6.1.0-56-amd64")
	if !ok || abi != "6.1.0-56" || flavour != "amd64" {
		t.Errorf("splitRelease = %q, %q, %v", abi, flavour, ok)
	}
	if s := seriesOf("6.1.0-56-amd64"); s != "6.1" {
		t.Errorf("seriesOf = %q", s)
	}
	for _, bad := range []string{"6.1.0-amd64", "busybox-1.35", "6.1.0-56-amd64/../x"} {
		if _, _, ok := splitRelease(bad); ok {
			t.Errorf("splitRelease(%q) accepted", bad)
		}
	}
}

func TestParseList(t *testing.T) {
	root := "/src/atrium"
	out := "github.com/a/atrium/hal/v4l2\t/src/atrium/hal/v4l2\tv4l2_test.go capture_vm_test.go \n" +
		"github.com/a/atrium/hal/sim\t/src/atrium/hal/sim\tsim_test.go \n" +
		"github.com/a/atrium/hal/m2m_test\t/src/atrium/hal/m2m\t m2m_vm_test.go\n" +
		"github.com/a/atrium/cmd/roomd\t/src/atrium/cmd/roomd\t \n"
	pkgs, err := parseList(out, root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{ImportPath: "github.com/a/atrium/hal/v4l2", Dir: "/src/atrium/hal/v4l2", Rel: "hal/v4l2"},
		{ImportPath: "github.com/a/atrium/hal/m2m_test", Dir: "/src/atrium/hal/m2m", Rel: "hal/m2m"},
	}
	if len(pkgs) != len(want) || pkgs[0] != want[0] || pkgs[1] != want[1] {
		t.Errorf("got %+v, want %+v", pkgs, want)
	}
	if _, err := parseList("x\t/elsewhere/x\ta_vm_test.go\n", root); err == nil {
		t.Error("a package outside the module was accepted")
	}
}

// TestLockFile checks that a second holder waits until the first lets go,
// and gives up when its context ends.
func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	log := testLogger(t)
	unlock, err := lockFile(t.Context(), path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path, log); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want deadline exceeded", err)
	}
	unlock()
	unlock2, err := lockFile(t.Context(), path, log)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}

// TestCachedFallback checks that a complete cache is found from its stamp
// alone, as when apt-cache cannot answer.
func TestCachedFallback(t *testing.T) {
	cache := t.TempDir()
	p := &preparer{cache: cache, log: testLogger(t), version: "6.1.192-2", busyboxVersion: "1:1.35.0-4"}
	if k := p.cached(); k != nil {
		t.Fatalf("empty cache gave %+v", k)
	}
	k := p.kernel("6.1.0-56-amd64")
	if err := os.MkdirAll(filepath.Dir(p.stamp(k)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(p.stamp(k), []byte(p.stampContent(k))); err != nil {
		t.Fatal(err)
	}
	got := (&preparer{cache: cache, log: testLogger(t)}).cached()
	if got == nil || *got != *k {
		t.Errorf("cached() = %+v, want %+v", got, k)
	}
	// A stamp from another layout does not count.
	if err := os.WriteFile(p.stamp(k), []byte("layout 1 kernel 6.1.192-2 busybox 1 modules x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := (&preparer{cache: cache, log: testLogger(t)}).cached(); got != nil {
		t.Errorf("stale stamp accepted: %+v", got)
	}
}
