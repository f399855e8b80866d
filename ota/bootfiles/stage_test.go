package bootfiles

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

// fixture is a stager over an image and an ESP in temporary directories.
type fixture struct {
	esp   string
	dst   bootctl.BootFiles
	image string
	st    *Stager
}

func newFixture(t *testing.T, image string, ex Extractor) *fixture {
	t.Helper()
	f := &fixture{esp: t.TempDir(), image: image}
	f.dst = bootctl.BootFiles{Kernel: filepath.Join(f.esp, "atrium/b/vmlinuz"), Initrd: filepath.Join(f.esp, "atrium/b/initrd.img")}
	st, err := New(Config{
		Extractor: ex,
		SlotImage: func(s bootctl.Slot) (string, error) {
			if s != bootctl.SlotB {
				t.Errorf("asked for slot %s's image, want b's", s)
			}
			return f.image, nil
		},
		Destination: func(_ context.Context, s bootctl.Slot) (bootctl.BootFiles, error) { return f.dst, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	return f
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
	// Again, as after a power cut before the loader was armed.
	if err := f.st.Stage(ctx, bootctl.SlotB); err != nil {
		t.Fatal(err)
	}
	f.check(t, kernel, initrd)
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
