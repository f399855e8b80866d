package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// builtModules are the modules Debian's kernel lacks, built out of tree from
// linux-source: the C files of each and the private headers they include,
// as paths (or tar wildcards) in the source tree.
var builtModules = []struct {
	name    string
	objects []string
	headers []string
}{
	{"v4l2-mem2mem", []string{"drivers/media/v4l2-core/v4l2-mem2mem.c"}, nil},
	{"vicodec", []string{
		"drivers/media/test-drivers/vicodec/codec-fwht.c",
		"drivers/media/test-drivers/vicodec/codec-v4l2-fwht.c",
		"drivers/media/test-drivers/vicodec/vicodec-core.c",
	}, []string{"drivers/media/test-drivers/vicodec/*.h"}},
	{"vim2m", []string{"drivers/media/test-drivers/vim2m.c"}, nil},
}

// keptModules are the parts of the modules tree the cache keeps, with
// their dependencies; the rest (300 MB of file systems, network and other
// drivers no guest test needs) is deleted.
var keptModules = []string{
	"kernel/drivers/media/", "kernel/sound/", "kernel/drivers/usb/",
	"kernel/drivers/input/", "kernel/drivers/hid/", "updates/",
}

// pruneModules deletes the modules outside keptModules and their
// dependencies; depmod must run again afterwards.
func pruneModules(k *Kernel) error {
	dir := k.ModulesDir()
	dep, err := readLines(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	var roots []string
	for _, line := range dep {
		mod, _, _ := strings.Cut(line, ":")
		for _, prefix := range keptModules {
			if strings.HasPrefix(mod, prefix) {
				roots = append(roots, moduleName(mod))
			}
		}
	}
	keep, err := moduleClosure(dep, roots)
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, m := range keep {
		kept[m] = true
	}
	var dirs []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".ko") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if kept[filepath.ToSlash(rel)] {
			return nil
		}
		return os.Remove(path)
	})
	if err != nil {
		return fmt.Errorf("vm: prune modules: %w", err)
	}
	// Children come after their parents in walk order: remove the
	// directories left empty deepest first. Non-empty ones stay.
	for _, d := range slices.Backward(dirs) {
		if ents, err := os.ReadDir(d); err == nil && len(ents) == 0 {
			if err := os.Remove(d); err != nil {
				return fmt.Errorf("vm: prune modules: %w", err)
			}
		}
	}
	return nil
}

// unpackHeaders unpacks the flavour's headers, the common headers and
// kbuild into root, fixes the flavour's Makefile, and returns the
// directory to build against.
func unpackHeaders(ctx context.Context, files map[string]string, pkgs []string, root, release, abi string) (string, error) {
	var debs []string
	for _, pkg := range pkgs {
		debs = append(debs, files[pkg])
	}
	if err := unpackDeb(ctx, debs[0], root, debs[1:]...); err != nil {
		return "", err
	}
	kdir := filepath.Join(root, "usr", "src", "linux-headers-"+release)
	// The flavour's Makefile includes the common headers' Makefile by its
	// absolute path under /usr/src, where nothing is installed.
	mk := filepath.Join(kdir, "Makefile")
	b, err := os.ReadFile(mk)
	if err != nil {
		return "", fmt.Errorf("vm: headers: %w", err)
	}
	common := "/usr/src/linux-headers-" + abi + "-common"
	if !bytes.Contains(b, []byte(common)) {
		return "", fmt.Errorf("vm: %s does not include %s:\n%s", mk, common, b)
	}
	b = bytes.ReplaceAll(b, []byte(common), []byte(filepath.Join(root, common)))
	if err := os.WriteFile(mk, b, 0o644); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	return kdir, nil
}

// buildModules builds builtModules from the sources in src with the
// kernel's kbuild in kdir, and returns the .ko files.
func buildModules(ctx context.Context, kdir, src string) ([]string, error) {
	var kbuild strings.Builder
	for _, m := range builtModules {
		fmt.Fprintf(&kbuild, "obj-m += %s.o\n", m.name)
		if len(m.objects) > 1 {
			var objs []string
			for _, o := range m.objects {
				objs = append(objs, strings.TrimSuffix(filepath.Base(o), ".c")+".o")
			}
			fmt.Fprintf(&kbuild, "%s-y := %s\n", m.name, strings.Join(objs, " "))
		}
	}
	if err := os.WriteFile(filepath.Join(src, "Kbuild"), []byte(kbuild.String()), 0o644); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	if _, err := run(ctx, "", "make", "-s", "-C", kdir, "M="+src, "-j2", "modules"); err != nil {
		return nil, err
	}
	var kos []string
	for _, m := range builtModules {
		kos = append(kos, filepath.Join(src, m.name+".ko"))
	}
	return kos, nil
}

// extractSources streams linux-source's tarball out of its .deb and
// extracts only the files builtModules need, flat into dst. Unpacking the
// whole tree would cost a gigabyte of disk and a minute.
func (p *preparer) extractSources(ctx context.Context, deb, series, dst string) error {
	tree := filepath.Join(dst, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	top := "linux-source-" + series
	var members []string
	for _, m := range builtModules {
		for _, f := range append(slices.Clone(m.objects), m.headers...) {
			members = append(members, top+"/"+f)
		}
	}
	p.log.Info("vm: extracting module sources", "package", filepath.Base(deb))
	// The pipeline runs under bash with pipefail so that a failure of any
	// of its three processes fails it.
	script := `set -eo pipefail
dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/src/$2.tar.xz" | tar -xJ -C "$3" --wildcards --no-wildcards-match-slash --strip-components=1 "${@:4}"`
	args := append([]string{"-c", script, "extract", deb, top, tree}, members...)
	if _, err := run(ctx, "", "bash", args...); err != nil {
		return err
	}
	// Flatten: the Kbuild file builds everything from one directory.
	err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		target := filepath.Join(dst, d.Name())
		if _, err := os.Stat(target); err == nil {
			return fmt.Errorf("two source files named %s", d.Name())
		}
		return os.Rename(path, target)
	})
	if err != nil {
		return fmt.Errorf("vm: linux-source: %w", err)
	}
	return os.RemoveAll(tree)
}

// vermagicOf reads the vermagic= entry of a module's .modinfo section.
func vermagicOf(ko string) (string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return "", fmt.Errorf("vm: vermagic: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return "", fmt.Errorf("vm: %s has no .modinfo", ko)
	}
	data, err := sec.Data()
	if err != nil {
		return "", fmt.Errorf("vm: %s: %w", ko, err)
	}
	for entry := range bytes.SplitSeq(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(entry, []byte("vermagic=")); ok {
			return string(v), nil
		}
	}
	return "", fmt.Errorf("vm: %s has no vermagic", ko)
}
