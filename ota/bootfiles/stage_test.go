package bootfiles

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/ota/bootctl"
)

// squashfs makes a squashfs image with mksquashfs (squashfs-tools) of a
// tree laid out as the image build lays out /boot: versioned files and
// hard links at the fixed names.
func squashfs(t *testing.T, kernel, initrd []byte) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "root")
	boot := filepath.Join(tree, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"vmlinuz-6.1.0-test": kernel, "initrd.img-6.1.0-test": initrd}
	for name, data := range files {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(boot, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(boot, name), filepath.Join(boot, strings.TrimSuffix(name, "-6.1.0-test"))); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "root.squashfs")
	out, err := exec.Command("mksquashfs", tree, img, "-comp", "lz4", "-noappend", "-quiet", "-no-progress").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs (Debian package squashfs-tools): %v\n%s", err, out)
	}
	return img
}

// fixture is a stager over an image and an ESP in temporary directories,
// with the real systemd-boot control reading and editing its entries.
type fixture struct {
	esp   string
	dst   bootctl.BootFiles
	image string
	st    *Stager
}

// entryB is slot b's entry as the factory writes it (rootfs/disk), with
// an older image's root hash.
const entryB = "title Atrium (b)\nlinux /atrium/b/vmlinuz\ninitrd /atrium/b/initrd.img\n" +
	"options root=/dev/mapper/atrium-root atrium.verity=00ff,4096 ro rootfstype=squashfs atrium.slot=b quiet\n"

func newFixture(t *testing.T, image string, ex Extractor) *fixture {
	t.Helper()
	f := &fixture{esp: t.TempDir(), image: image}
	for name, text := range map[string]string{
		"loader/loader.conf":           "timeout 0\ndefault atrium-a.conf\n",
		"loader/entries/atrium-a.conf": "title Atrium (a)\nlinux /atrium/a/vmlinuz\ninitrd /atrium/a/initrd.img\noptions root=PARTLABEL=root-a\n",
		"loader/entries/atrium-b.conf": entryB,
	} {
		p := filepath.Join(f.esp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := bootctl.NewSystemdBoot(bootctl.SystemdBootConfig{ESP: f.esp,
		SelectedEntry: func(context.Context) (string, error) { return "atrium-a.conf", nil }})
	if err != nil {
		t.Fatal(err)
	}
	f.dst = bootctl.BootFiles{Kernel: filepath.Join(f.esp, "atrium/b/vmlinuz"), Initrd: filepath.Join(f.esp, "atrium/b/initrd.img")}
	st, err := New(Config{
		Extractor: ex,
		SlotImage: func(s bootctl.Slot) (string, error) {
			if s != bootctl.SlotB {
				t.Errorf("asked for slot %s's image, want b's", s)
			}
			return f.image, nil
		},
		Destination: sb.BootFiles,
		SetOptions:  sb.SetOptions,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	return f
}

// options is the "options" line of slot b's entry.
func (f *fixture) options(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.esp, "loader/entries/atrium-b.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if o, ok := strings.CutPrefix(line, "options "); ok {
			return o
		}
	}
	t.Fatalf("entry b has no options:\n%s", data)
	return ""
}

// addTree appends a dm-verity tree to the image with the real veritysetup
// (Debian package cryptsetup-bin), as the image build does, and returns
// the root hash it printed.
func addTree(t *testing.T, img string) string {
	t.Helper()
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	out, err := exec.Command("veritysetup", "format", img, img, "--hash-offset="+strconv.FormatInt(size, 10),
		"--data-blocks="+strconv.FormatInt(size/4096, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format (Debian package cryptsetup-bin): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Root hash:\s+([0-9a-f]{64})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in:\n%s", out)
	}
	return string(m[1]) + "," + strconv.FormatInt(size, 10)
}

func (f *fixture) check(t *testing.T, kernel, initrd []byte) {
	t.Helper()
	for path, want := range map[string][]byte{f.dst.Kernel: kernel, f.dst.Initrd: initrd} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes %.20q, want %d bytes %.20q", path, len(got), got, len(want), want)
		}
	}
	left, _ := filepath.Glob(filepath.Join(f.esp, "atrium/b/*.new"))
	if len(left) > 0 {
		t.Errorf("staging left %v behind", left)
	}
}

// TestStageFromSquashfs copies a real squashfs image's kernel and
// initramfs (read with the real unsquashfs) over the slot's old ones.
func TestStageFromSquashfs(t *testing.T) {
	kernel := bytes.Repeat([]byte("kernel 2.0.0 "), 100_000) // more than a squashfs block
	initrd := []byte("initramfs of 2.0.0\n")
	f := newFixture(t, squashfs(t, kernel, initrd), Unsquashfs{})
	if err := os.MkdirAll(filepath.Dir(f.dst.Kernel), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.dst.Kernel, f.dst.Initrd} {
		if err := os.WriteFile(p, []byte("the factory's"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := f.st.Stage(ctx, bootctl.SlotB); err != nil {
		t.Fatal(err)
	}
	f.check(t, kernel, initrd)
	// An image without a tree boots its partition unchecked.
	if got, want := f.options(t), "root=PARTLABEL=root-b ro rootfstype=squashfs atrium.slot=b quiet"; got != want {
		t.Errorf("options %q, want %q", got, want)
	}
	// With a tree, the entry asks the initramfs for the checked root
	// (again, as after a power cut before the loader was armed).
	verity := addTree(t, f.image)
	if err := f.st.Stage(ctx, bootctl.SlotB); err != nil {
		t.Fatal(err)
	}
	f.check(t, kernel, initrd)
	if got, want := f.options(t), "root=/dev/mapper/atrium-root atrium.verity="+verity+" ro rootfstype=squashfs atrium.slot=b quiet"; got != want {
		t.Errorf("options %q, want %q", got, want)
	}
}

// TestStageFailuresKeepTheOldFiles: an image without an initramfs, an
// extractor that fails half way and an empty kernel each fail with the
// file named, and leave the files the entry names as they were.
func TestStageFailuresKeepTheOldFiles(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		image func(t *testing.T) string
		ex    Extractor
		want  string
	}{
		{"no initramfs in the image", func(t *testing.T) string { return squashfs(t, []byte("k"), nil) }, Unsquashfs{}, "boot/initrd.img"},
		{"not a squashfs", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "ext4.img")
			return p
		}, Unsquashfs{}, "unsquashfs -cat"},
		{"extractor fails half way", nil, failingExtractor{after: []byte("half a kern")}, "device went away"},
		{"empty kernel", nil, failingExtractor{}, "empty"},
		{"a tree of another format", func(t *testing.T) string {
			img := squashfs(t, []byte("k"), []byte("i"))
			f, err := os.OpenFile(img, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// A verity superblock of format version 0.
			if _, err := f.Write(append([]byte("verity\x00\x00"), make([]byte, 4088)...)); err != nil {
				t.Fatal(err)
			}
			return img
		}, Unsquashfs{}, "version is 0, want 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			image := "/dev/disk/by-partlabel/root-b"
			if c.image != nil {
				image = c.image(t)
			}
			f := newFixture(t, image, c.ex)
			old := []byte("the factory's")
			if err := os.MkdirAll(filepath.Dir(f.dst.Kernel), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{f.dst.Kernel, f.dst.Initrd} {
				if err := os.WriteFile(p, old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := f.st.Stage(ctx, bootctl.SlotB)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("stage: %v, want an error with %q", err, c.want)
			}
			f.check(t, old, old)
			if got, want := f.options(t), "root=/dev/mapper/atrium-root atrium.verity=00ff,4096 ro rootfstype=squashfs atrium.slot=b quiet"; got != want {
				t.Errorf("options %q, want %q", got, want)
			}
		})
	}
}

// failingExtractor writes after and then fails, or with nothing to write,
// succeeds with an empty file.
type failingExtractor struct{ after []byte }

func (e failingExtractor) Extract(_ context.Context, _, _ string, w io.Writer) error {
	if e.after == nil {
		return nil
	}
	if _, err := w.Write(e.after); err != nil {
		return err
	}
	return errors.New("device went away")
}

// TestStageWithoutDestination passes the boot loader's error on.
func TestStageWithoutDestination(t *testing.T) {
	st, err := New(Config{
		Extractor: Unsquashfs{},
		SlotImage: func(bootctl.Slot) (string, error) { return "img", nil },
		Destination: func(context.Context, bootctl.Slot) (bootctl.BootFiles, error) {
			return bootctl.BootFiles{}, bootctl.ErrNoEntry
		},
		SetOptions: func(context.Context, bootctl.Slot, func([]string) []string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Stage(context.Background(), bootctl.SlotA); !errors.Is(err, bootctl.ErrNoEntry) {
		t.Fatalf("stage: %v, want ErrNoEntry", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("a stager without its parts was built")
	}
}
