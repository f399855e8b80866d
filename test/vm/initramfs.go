package vm

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Module is a kernel module the guest loads at boot, with the options
// written to /etc/modprobe.d/atrium.conf (so a later plain modprobe in a
// test uses them too).
type Module struct {
	Name    string
	Options string
}

// DefaultModules returns the modules the guest loads at boot, in order;
// doc.go explains what they give.
func DefaultModules() []Module {
	return []Module{
		{Name: "vivid", Options: "n_devs=2 node_types=0x60101,0xa0001 num_inputs=1,1"},
		{Name: "vicodec"},
		{Name: "vim2m"},
		{Name: "snd-aloop", Options: "index=0"},
		{Name: "snd-dummy", Options: "index=1"},
	}
}

// Test is a test binary to run in the guest.
type Test struct {
	// Name labels the binary in markers and results; it is also its
	// directory in the guest, /atrium/<Name>. A package path relative to
	// the module root ("hal/v4l2"), without spaces.
	Name string
	// Binary is the test binary on the host.
	Binary string
	// Testdata, when set, is a host directory copied to the guest as
	// /atrium/<Name>/testdata.
	Testdata string
}

// guestDir is where a test's binary and testdata are in the guest.
func guestDir(t Test) string { return "/atrium/" + t.Name }

// guestBinary is the test binary's path in the guest.
func guestBinary(t Test) string { return guestDir(t) + "/" + path.Base(t.Name) + ".test" }

// marker is the prefix of the lines /init writes around each test binary.
const marker = "@@ATRIUM-VM"

// initScript returns the guest's /init: a busybox sh script.
func initScript(nonce string, modules []Module, tests []Test, args []string, testTimeout time.Duration) string {
	var b strings.Builder
	m := marker + " " + nonce
	b.WriteString(`#!/bin/sh
# Written by test/vm: sets up the guest, runs each test binary, powers off.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp ATRIUM_VM=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
`)
	fmt.Fprintf(&b, "M='%s'\n", m)
	for _, mod := range modules {
		fmt.Fprintf(&b, "out=$(modprobe %s 2>&1) || echo \"$M SETUP modprobe %s failed: $out\"\n", shellQuote(mod.Name), mod.Name)
	}
	fmt.Fprintf(&b, "echo \"$M READY $(uname -r)\"\n")
	// A hard limit a little after Go's own -test.timeout, which panics
	// with every goroutine's stack, for a binary stuck in the kernel.
	hard := int((testTimeout + 30*time.Second).Seconds())
	for _, t := range tests {
		cmd := []string{"timeout", "-s", "KILL", fmt.Sprint(hard), guestBinary(t), "-test.v", "-test.timeout=" + testTimeout.String()}
		cmd = append(cmd, args...)
		var q []string
		for _, a := range cmd {
			q = append(q, shellQuote(a))
		}
		fmt.Fprintf(&b, "echo \"$M BEGIN %s\"\n", t.Name)
		fmt.Fprintf(&b, "cd %s && %s\n", shellQuote(guestDir(t)), strings.Join(q, " "))
		fmt.Fprintf(&b, "echo \"$M END %s exit=$?\"\n", t.Name)
	}
	b.WriteString("cd /\necho \"$M DONE\"\npoweroff -f\n")
	return b.String()
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// modprobeConf returns /etc/modprobe.d/atrium.conf.
func modprobeConf(modules []Module) string {
	var b strings.Builder
	b.WriteString("# Written by test/vm: the options of the modules loaded at boot.\n")
	for _, m := range modules {
		if m.Options != "" {
			fmt.Fprintf(&b, "options %s %s\n", strings.ReplaceAll(m.Name, "-", "_"), m.Options)
		}
	}
	return b.String()
}

// moduleName normalizes a module's name or file name as the kernel does
// ("snd-aloop", "snd_aloop.ko" → "snd_aloop").
func moduleName(s string) string {
	s = path.Base(s)
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// moduleClosure returns the modules.dep paths of roots and everything they
// depend on, from the lines of modules.dep.
func moduleClosure(dep []string, roots []string) ([]string, error) {
	deps := map[string][]string{} // path → dependency paths
	byName := map[string]string{} // normalized name → path
	for _, line := range dep {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range deps[p] {
			walk(d)
		}
	}
	for _, r := range roots {
		p, ok := byName[moduleName(r)]
		if !ok {
			return nil, fmt.Errorf("vm: module %s is not in modules.dep", r)
		}
		walk(p)
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// image describes an initramfs to write.
type image struct {
	kernel  *Kernel
	modules []Module
	tests   []Test
	args    []string
	timeout time.Duration
	nonce   string
	// applets are busybox's applets as paths ("bin/ls", "sbin/modprobe").
	applets []string
}

// writeInitramfs writes the initramfs to out. The modules go through a
// staging directory in tmp where depmod indexes just them.
func (im *image) write(ctx context.Context, out, tmp string) error {
	modDir := im.kernel.ModulesDir()
	dep, err := readLines(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	var roots []string
	for _, m := range im.modules {
		roots = append(roots, m.Name)
	}
	mods, err := moduleClosure(dep, roots)
	if err != nil {
		return err
	}
	stage := filepath.Join(tmp, "modules")
	stageMods := filepath.Join(stage, "lib", "modules", im.kernel.Release)
	for _, m := range mods {
		dst := filepath.Join(stageMods, m)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("vm: %w", err)
		}
		if err := copyFile(filepath.Join(modDir, m), dst, 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if err := copyFile(filepath.Join(modDir, f), filepath.Join(stageMods, f), 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", "depmod", "-b", stage, im.kernel.Release); err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	defer f.Close()
	c := newCPIOWriter(f)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "root", "etc/modprobe.d", "usr/bin", "usr/sbin", "atrium"} {
		c.Dir(d, 0o755)
	}
	// The kernel opens /dev/console for /init before devtmpfs is mounted.
	c.CharDev("dev/console", 0o600, 5, 1)
	if err := addFile(c, im.kernel.Busybox, "bin/busybox", 0o755); err != nil {
		return err
	}
	for _, a := range im.applets {
		// A link named busybox pointing at itself would shadow the binary.
		if a == "bin/busybox" {
			continue
		}
		c.Symlink(a, "/bin/busybox")
	}
	if !slices.Contains(im.applets, "sbin/modprobe") {
		c.Symlink("sbin/modprobe", "/bin/busybox")
	}
	addBytes(c, "init", 0o755, initScript(im.nonce, im.modules, im.tests, im.args, im.timeout))
	addBytes(c, "etc/modprobe.d/atrium.conf", 0o644, modprobeConf(im.modules))
	addBytes(c, "etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")
	addBytes(c, "etc/group", 0o644, "root:x:0:\n")
	if err := addTree(c, stage, ""); err != nil {
		return err
	}
	for _, t := range im.tests {
		dir := strings.TrimPrefix(guestDir(t), "/")
		c.Dir(dir, 0o755)
		if err := addFile(c, t.Binary, strings.TrimPrefix(guestBinary(t), "/"), 0o755); err != nil {
			return err
		}
		if t.Testdata != "" {
			if err := addTree(c, t.Testdata, dir+"/testdata"); err != nil {
				return err
			}
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	return nil
}

func addBytes(c *cpioWriter, name string, perm uint32, s string) {
	c.File(name, perm, int64(len(s)), strings.NewReader(s))
}

func addFile(c *cpioWriter, src, name string, perm uint32) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	c.File(name, perm, st.Size(), f)
	return nil
}

// addTree adds the directory tree at src under prefix: directories,
// regular files (keeping their executable bit) and symlinks.
func addTree(c *cpioWriter, src, prefix string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(prefix, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			if name != "" && name != "." {
				c.Dir(name, 0o755)
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			c.Symlink(name, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			perm := uint32(0o644)
			if info.Mode()&0o111 != 0 {
				perm = 0o755
			}
			return addFile(c, p, name, perm)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	return nil
}
