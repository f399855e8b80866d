package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBuildReal builds the image for real, twice, from the cached Debian
// base (the first run on a machine downloads it: minutes), with lz4 for
// speed, and checks that the two root images are the same bytes and hold
// what the layer put in.
func TestBuildReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the image build needs root (mmdebstrap, tar with owners, chroot)")
	}
	for _, prog := range []string{"mmdebstrap", "mksquashfs", "unsquashfs", "tar", "chroot", "zstd", "veritysetup"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is needed: apt-get install mmdebstrap squashfs-tools zstd cryptsetup-bin", prog)
		}
	}
	cache, err := filepath.Abs("../../.cache/image")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	layer := testLayer(t)
	build := func(out string) *Manifest {
		t.Helper()
		start := time.Now()
		m, err := Build(ctx, Options{
			Out: out, Layer: layer, CacheDir: cache, Comp: "lz4",
			Runner: ExecRunner{}, Logger: slogToTest(t),
		})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		t.Logf("build into %s: %.1f s, rootfs %d bytes", out, time.Since(start).Seconds(), m.RootfsSize)
		return m
	}
	out1, out2 := t.TempDir(), t.TempDir()
	m1 := build(out1)
	m2 := build(out2)
	if !reflect.DeepEqual(m1, m2) {
		t.Errorf("two builds of the same inputs differ:\n%+v\n%+v", m1, m2)
	}

	var onDisk Manifest
	data, err := os.ReadFile(filepath.Join(out1, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &onDisk); err != nil || onDisk != *m1 {
		t.Errorf("image.json = %s (%v), want %+v", data, err, m1)
	}
	sum, size, err := hashFile(filepath.Join(out1, RootfsFile))
	if err != nil || sum != m1.RootfsSHA256 || size != m1.RootfsSize {
		t.Errorf("rootfs.squashfs: sha256 %s size %d, manifest says %s %d", sum, size, m1.RootfsSHA256, m1.RootfsSize)
	}
	// The manifest's root hash is the tree's, and veritysetup checks the
	// whole file system against it.
	slot, err := DiskSlot(out1)
	if err != nil {
		t.Fatal(err)
	}
	v := slot.Verity
	if v.RootHash != m1.VerityRootHash || v.HashOffset != m1.VerityHashOffset {
		t.Errorf("tree %s at %d, manifest says %s at %d", v.RootHash, v.HashOffset, m1.VerityRootHash, m1.VerityHashOffset)
	}
	run(t, "veritysetup", "verify", filepath.Join(out1, RootfsFile), filepath.Join(out1, RootfsFile), m1.VerityRootHash,
		"--hash-offset="+strconv.FormatInt(m1.VerityHashOffset, 10))
	if m1.Version != layer.Version || m1.BuildTime != "2026-11-21T12:00:00Z" || !strings.HasSuffix(m1.KernelRelease, "-amd64") {
		t.Errorf("manifest %+v", m1)
	}
	for _, f := range []string{KernelFile, InitrdFile} {
		if fi, err := os.Stat(filepath.Join(out1, f)); err != nil || fi.Size() < 1<<20 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}

	img := filepath.Join(out1, RootfsFile)
	list := run(t, "unsquashfs", "-l", img)
	for _, p := range []string{
		"/usr/bin/roomd", "/usr/bin/roomctl", "/usr/bin/roomkiosk", "/usr/bin/cage", "/usr/bin/Xwayland",
		"/usr/lib/systemd/system/roomd.service", "/usr/lib/systemd/system/atrium-kiosk.service",
		"/etc/systemd/system/multi-user.target.wants/roomd.service",
		"/etc/polkit-1/rules.d/50-atrium.rules", "/etc/atrium/roomd.toml", UpdateRootPath,
		"/var/lib/atrium", "/data", "/efi", "/boot/vmlinuz-" + m1.KernelRelease,
		DataScript, DataHook, VerityScript, VerityHook, "/usr/sbin/e2fsck", "/usr/sbin/veritysetup",
		"/etc/systemd/user/sockets.target.wants/pipewire-pulse.socket",
		"/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
	} {
		if !bytes.Contains(list, []byte("\nsquashfs-root"+p+"\n")) {
			t.Errorf("the image lacks %s", p)
		}
	}
	for _, p := range []string{"/usr/share/man/man1", "/var/cache/apt/archives/systemd_"} {
		if bytes.Contains(list, []byte("squashfs-root"+p)) {
			t.Errorf("the image holds %s*", p)
		}
	}
	cat := func(p string) string { return string(run(t, "unsquashfs", "-cat", img, p)) }
	if osr := cat("usr/lib/os-release"); !strings.Contains(osr, "\nIMAGE_ID=atrium\nIMAGE_VERSION="+layer.Version+"\n") {
		t.Errorf("os-release:\n%s", osr)
	}
	if got := cat("usr/bin/roomd"); got != "#!/bin/sh\necho roomd\n" {
		t.Errorf("/usr/bin/roomd = %q", got)
	}
	if pw := cat("etc/passwd"); !strings.Contains(pw, "\natrium:x:") {
		t.Errorf("/etc/passwd has no atrium user:\n%s", pw)
	}
	if fstab := cat("etc/fstab"); !strings.Contains(fstab, "\nPARTLABEL=esp  /efi  vfat  uid=0,gid=") {
		t.Errorf("/etc/fstab does not mount the ESP:\n%s", fstab)
	}
	if id := cat("etc/machine-id"); id != "" {
		t.Errorf("/etc/machine-id = %q, want empty", id)
	}
	// The initramfs can mount a squashfs root.
	initrd := run(t, "zstd", "-dc", filepath.Join(out1, InitrdFile))
	if !bytes.Contains(initrd, []byte("kernel/fs/squashfs/squashfs.ko")) {
		t.Error("the initramfs has no squashfs module")
	}
	// And it has what the data partition and the writable /etc need,
	// and what opens the root with dm-verity.
	for _, p := range []string{"scripts/local-bottom/atrium-data", "usr/sbin/e2fsck", "usr/sbin/mke2fs", "usr/sbin/blkid", "usr/bin/rm", "kernel/fs/overlayfs/overlay.ko", "kernel/fs/ext4/ext4.ko",
		"scripts/local-top/atrium-verity", "usr/sbin/veritysetup", "usr/bin/head", "kernel/drivers/md/dm-verity.ko", "usr/sbin/dmsetup"} {
		if !bytes.Contains(initrd, []byte(p)) {
			t.Errorf("the initramfs lacks %s", p)
		}
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := ExecRunner{}.Run(context.Background(), Cmd{Name: name, Args: args})
	if err != nil {
		t.Fatalf("%s: %v", Cmd{Name: name, Args: args}, err)
	}
	return out
}
