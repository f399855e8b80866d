package vm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ProgramsFile, in a guest test package's directory, lists the module's
// programs (go build patterns such as ./cmd/roomd, one per line, # starts a
// comment) that the package's guest tests run. They are built as for the
// device (cgo, dynamically linked) and arrive in the guest under
// testdata/programs: bin/ holds the programs, lib/ every shared library
// they load, taken from the host, and the dynamic loader
// lib/ld-linux-x86-64.so.2, through which a guest test starts them
// (the initramfs has no /lib). See GuestCommand.
const ProgramsFile = "vm-programs.txt"

// buildPrograms builds the programs a package lists into dir/bin and copies
// their shared libraries into dir/lib.
func buildPrograms(ctx context.Context, root, listFile, dir string) error {
	f, err := os.Open(listFile)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	defer f.Close()
	var pkgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			pkgs = append(pkgs, line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("vm: read %s: %w", listFile, err)
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("vm: %s lists no programs", listFile)
	}
	bin, lib := filepath.Join(dir, "bin"), filepath.Join(dir, "lib")
	for _, d := range []string{bin, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("vm: %w", err)
		}
	}
	args := append([]string{"build", "-ldflags=-s -w", "-o", bin + "/"}, pkgs...)
	if _, err := run(ctx, root, "go", args...); err != nil {
		return err
	}
	entries, err := os.ReadDir(bin)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	copied := map[string]bool{}
	for _, e := range entries {
		out, err := run(ctx, root, "ldd", filepath.Join(bin, e.Name()))
		if err != nil {
			if strings.Contains(out, "not a dynamic executable") {
				continue // static: nothing to copy
			}
			return err
		}
		for line := range strings.Lines(out) {
			name, path, ok := lddLine(line)
			if !ok || copied[name] {
				continue
			}
			copied[name] = true
			if err := copyFile(path, filepath.Join(lib, name), 0o755); err != nil {
				return fmt.Errorf("vm: copy %s: %w", path, err)
			}
		}
	}
	if !copied[guestLoader] {
		return fmt.Errorf("vm: the programs of %s do not use %s; only amd64 glibc programs are supported", listFile, guestLoader)
	}
	return nil
}

// guestLoader is the dynamic loader of amd64 glibc programs.
const guestLoader = "ld-linux-x86-64.so.2"

// lddLine reads one line of ldd's output: the library's name in the guest
// and its file on the host. The vDSO has no file and is skipped.
func lddLine(line string) (name, path string, ok bool) {
	line = strings.TrimSpace(line)
	if i := strings.LastIndex(line, " ("); i >= 0 {
		line = line[:i]
	}
	if soname, p, found := strings.Cut(line, " => "); found {
		if !strings.HasPrefix(p, "/") {
			return "", "", false
		}
		return strings.TrimSpace(soname), p, true
	}
	if strings.HasPrefix(line, "/") {
		return filepath.Base(line), line, true
	}
	return "", "", false
}

// GuestCommand returns the argv that runs one of a package's programs in the
// guest, from the package's working directory: through the copied loader,
// with the copied libraries.
func GuestCommand(program string, args ...string) []string {
	const dir = "testdata/programs"
	return append([]string{dir + "/lib/" + guestLoader, "--library-path", dir + "/lib", dir + "/bin/" + program}, args...)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
