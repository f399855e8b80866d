package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/verity"
)

func TestEntry(t *testing.T) {
	got := Entry("Atrium 1.2", "b", nil, []string{"quiet"})
	want := "title Atrium 1.2 (b)\n" +
		"linux /atrium/b/vmlinuz\n" +
		"initrd /atrium/b/initrd.img\n" +
		"options root=PARTLABEL=root-b ro rootfstype=squashfs atrium.slot=b console=ttyS0 systemd.gpt_auto=0 panic=5 quiet\n"
	if got != want {
		t.Errorf("entry:\n%s\nwant:\n%s", got, want)
	}
	tree := &verity.Tree{RootHash: strings.Repeat("ab", 32), HashOffset: 1 << 20}
	got = Entry("Atrium 1.2", "a", tree, nil)
	want = "title Atrium 1.2 (a)\n" +
		"linux /atrium/a/vmlinuz\n" +
		"initrd /atrium/a/initrd.img\n" +
		"options root=/dev/mapper/atrium-root atrium.verity=" + tree.RootHash + ",1048576 ro rootfstype=squashfs atrium.slot=a console=ttyS0 systemd.gpt_auto=0 panic=5\n"
	if got != want {
		t.Errorf("entry with a tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestDeriveGUID(t *testing.T) {
	a, b := DeriveGUID("1.0", "disk"), DeriveGUID("1.0", "disk")
	if a != b {
		t.Fatal("same inputs, different GUIDs")
	}
	if DeriveGUID("1.1", "disk") == a || DeriveGUID("1.0", "esp") == a {
		t.Fatal("different inputs, same GUID")
	}
	s := a.String()
	if len(s) != 36 || s[14] != '8' || !strings.ContainsRune("89AB", rune(s[19])) {
		t.Errorf("GUID %s is not a version 8 UUID", s)
	}
}

func TestLayout(t *testing.T) {
	if got := DefaultLayout().Size(); got != 2562*MiB {
		t.Errorf("default size %d MiB", got/MiB)
	}
	for _, l := range []Layout{{ESP: 64 * MiB, Root: MiB + 1, Data: MiB}, {ESP: 32 * MiB, Root: MiB, Data: MiB}, {ESP: 64 * MiB, Root: MiB}} {
		if l.check() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// TestBuildCommands checks the partitioning command line through a fake
// runner that records it and fails, which Build must report.
func TestBuildCommands(t *testing.T) {
	dir := t.TempDir()
	in := payload(t, dir, 1000)
	var got []string
	boom := errors.New("boom")
	run := func(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
		got = append(got, strings.Join(append(append(env, name), args...), " "))
		return nil, boom
	}
	err := Build(t.Context(), Options{Output: filepath.Join(dir, "disk.img"), Version: "1.0", Layout: small(), A: in, Run: run})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("err = %v, want the runner's error naming the step", err)
	}
	img := filepath.Join(dir, "disk.img.partial")
	want := "sgdisk -U " + DeriveGUID("1.0", "disk").String() +
		" -n 1:2048:133119 -t 1:EF00 -c 1:esp -u 1:" + DeriveGUID("1.0", "esp").String() +
		" -n 2:133120:165887 -t 2:8304 -c 2:root-a -u 2:" + DeriveGUID("1.0", "root-a").String() +
		" -n 3:165888:198655 -t 3:8304 -c 3:root-b -u 3:" + DeriveGUID("1.0", "root-b").String() +
		" -n 4:198656:231423 -t 4:8300 -c 4:data -u 4:" + DeriveGUID("1.0", "data").String() +
		" " + img
	if len(got) != 1 || got[0] != want {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if _, err := os.Stat(img); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial image left behind: %v", err)
	}
}

func small() Layout { return Layout{ESP: 64 * MiB, Root: 16 * MiB, Data: 16 * MiB} }

// payload writes a fake root image of n bytes, kernel and initrd.
func payload(t *testing.T, dir string, n int) Slot {
	t.Helper()
	s := Slot{Root: filepath.Join(dir, "root.img"), Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	root := make([]byte, n)
	for i := range root {
		root[i] = byte(i*7 + 1)
	}
	for p, data := range map[string][]byte{s.Root: root, s.Kernel: []byte("kernel"), s.Initrd: []byte("initrd")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func build(t *testing.T, dir string, o Options) string {
	t.Helper()
	if _, err := os.Stat(DefaultLoader); err != nil {
		t.Fatalf("systemd-boot missing (Debian package systemd-boot-efi): %v", err)
	}
	o.Output = filepath.Join(dir, "disk.img")
	if err := Build(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	return o.Output
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	a := payload(t, dir, 3*MiB+5)
	bdir := filepath.Join(dir, "b")
	if err := os.Mkdir(bdir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := payload(t, bdir, 100)
	if err := os.WriteFile(b.Kernel, []byte("kernel b"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := build(t, dir, Options{Version: "1.0", Layout: small(), A: a, B: b, KernelArgs: []string{"quiet"}})

	st, err := os.Stat(img)
	if err != nil || st.Size() != small().Size() {
		t.Fatalf("image: %v, size %d, want %d", err, st.Size(), small().Size())
	}
	table, err := ReadPartitions(img)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range table.Partitions {
		lines = append(lines, fmt.Sprintf("%d %s %s %s %d %d", p.Number, p.Label, p.Type, p.GUID, p.Offset/MiB, p.Size/MiB))
	}
	want := []string{
		"1 esp " + TypeESP + " " + DeriveGUID("1.0", "esp").String() + " 1 64",
		"2 root-a " + TypeRootX86_64 + " " + DeriveGUID("1.0", "root-a").String() + " 65 16",
		"3 root-b " + TypeRootX86_64 + " " + DeriveGUID("1.0", "root-b").String() + " 81 16",
		"4 data " + TypeLinuxData + " " + DeriveGUID("1.0", "data").String() + " 97 16",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") || table.DiskGUID != DeriveGUID("1.0", "disk") {
		t.Errorf("table (disk %s):\n%s\nwant:\n%s", table.DiskGUID, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ label, src string }{{"root-a", a.Root}, {"root-b", b.Root}} {
		p, _ := table.Find(c.label)
		src, _ := os.ReadFile(c.src)
		part := raw[p.Offset : p.Offset+p.Size]
		if !bytes.Equal(part[:len(src)], src) || bytes.ContainsFunc(part[len(src):], func(r rune) bool { return r != 0 }) {
			t.Errorf("%s does not hold %s followed by zeros", c.label, c.src)
		}
	}
	data, _ := table.Find("data")
	sb := raw[data.Offset+1024:]
	if binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 || string(bytes.TrimRight(sb[120:136], "\x00")) != "data" {
		t.Errorf("data partition has no ext4 labelled data")
	}
	esp, _ := table.Find("esp")
	if id := binary.LittleEndian.Uint32(raw[esp.Offset+67:]); id != serial("1.0", "esp") {
		t.Errorf("ESP serial %08X, want %08X", id, serial("1.0", "esp"))
	}

	got := filepath.Join(dir, "esp")
	if err := ReadESP(t.Context(), nil, img, got); err != nil {
		t.Fatal(err)
	}
	loader, _ := os.ReadFile(DefaultLoader)
	wantFiles := map[string]string{
		"EFI/BOOT/BOOTX64.EFI":            string(loader),
		"EFI/systemd/systemd-bootx64.efi": string(loader),
		"loader/loader.conf":              "default atrium-a.conf\ntimeout 0\neditor no\n",
		"loader/entries/atrium-a.conf":    Entry("Atrium", "a", nil, []string{"quiet"}),
		"loader/entries/atrium-b.conf":    Entry("Atrium", "b", nil, []string{"quiet"}),
		"atrium/a/vmlinuz":                "kernel",
		"atrium/a/initrd.img":             "initrd",
		"atrium/b/vmlinuz":                "kernel b",
		"atrium/b/initrd.img":             "initrd",
	}
	checkTree(t, got, wantFiles)
	// mcopy -m copied the times back: all are Options.ModTime's default.
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == got {
			return err
		}
		info, err := d.Info()
		if err == nil && !info.ModTime().Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("ESP %s has time %s", p, info.ModTime().UTC())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkTree compares the regular files under dir with want.
func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	have := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		have[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if h, ok := have[name]; !ok {
			t.Errorf("ESP lacks %s", name)
		} else if h != w {
			t.Errorf("ESP %s = %.80q, want %.80q", name, h, w)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("ESP has unexpected %s", name)
		}
	}
}

func TestBuildDeterministic(t *testing.T) {
	dir := t.TempDir()
	a := payload(t, dir, 2*MiB)
	var sums [2][32]byte
	for i := range sums {
		if i > 0 {
			// More than FAT's 2 s resolution apart, so that a time
			// stamp taken from the clock would show.
			time.Sleep(2100 * time.Millisecond)
		}
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(build(t, d, Options{Version: "2.0", Layout: small(), A: a}))
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %x and %x", sums[0], sums[1])
	}
}

func TestWriteESP(t *testing.T) {
	dir := t.TempDir()
	img := build(t, dir, Options{Version: "1.0", Layout: small(), A: payload(t, dir, 10)})
	esp := filepath.Join(dir, "esp")
	if err := ReadESP(t.Context(), nil, img, esp); err != nil {
		t.Fatal(err)
	}
	entries := filepath.Join(esp, "loader", "entries")
	if err := os.Rename(filepath.Join(entries, "atrium-b.conf"), filepath.Join(entries, "atrium-try-b+2-0.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(esp, "atrium", "b", "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	if err := WriteESP(t.Context(), nil, img, esp); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "back")
	if err := ReadESP(t.Context(), nil, img, back); err != nil {
		t.Fatal(err)
	}
	loader, _ := os.ReadFile(DefaultLoader)
	checkTree(t, back, map[string]string{
		"EFI/BOOT/BOOTX64.EFI":                 string(loader),
		"EFI/systemd/systemd-bootx64.efi":      string(loader),
		"loader/loader.conf":                   LoaderConf,
		"loader/entries/atrium-a.conf":         Entry("Atrium", "a", nil, nil),
		"loader/entries/atrium-try-b+2-0.conf": Entry("Atrium", "b", nil, nil),
		"atrium/a/vmlinuz":                     "kernel",
		"atrium/a/initrd.img":                  "initrd",
		"atrium/b/initrd.img":                  "initrd",
	})
	table, _ := ReadPartitions(img)
	p, _ := table.Find("esp")
	raw := make([]byte, 4)
	f, _ := os.Open(img)
	defer f.Close()
	if _, err := f.ReadAt(raw, p.Offset+67); err != nil || binary.LittleEndian.Uint32(raw) != serial("1.0", "esp") {
		t.Errorf("serial not kept: %x, %v", raw, err)
	}
}

// TestBuildDefaultLayout builds the full-size layout, which must stay
// sparse: the file is 2.5 GiB, what it allocates a few MiB.
func TestBuildDefaultLayout(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	img := build(t, dir, Options{Version: "3.0", A: payload(t, dir, 5*MiB)})
	took := time.Since(start)
	table, err := ReadPartitions(img)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, p := range table.Partitions {
		sizes = append(sizes, p.Size/MiB)
	}
	if fmt.Sprint(sizes) != "[256 1024 1024 256]" {
		t.Errorf("partition sizes %v MiB", sizes)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	used := st.Blocks * 512
	t.Logf("default layout: %d MiB image, %.1f MiB allocated, built in %s", st.Size/MiB, float64(used)/MiB, took.Round(time.Millisecond))
	if used > 48*MiB {
		t.Errorf("image allocates %d MiB: not sparse", used/MiB)
	}
}

func TestExecMissingTool(t *testing.T) {
	_, err := Exec(t.Context(), nil, "atrium-no-such-tool")
	if !errors.Is(err, ErrToolMissing) {
		t.Fatalf("err = %v, want ErrToolMissing", err)
	}
	_, err = Exec(t.Context(), nil, "sh", "-c", "echo out; echo why >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "why") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v, want the exit status and the output", err)
	}
}

// TestBuildCommandLines records every program Build runs (running them for
// real) and compares the list, temporary paths normalised.
func TestBuildCommandLines(t *testing.T) {
	dir := t.TempDir()
	a := payload(t, dir, 10)
	var got []string
	run := func(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
		got = append(got, strings.Join(append(append(slices.Clone(env), name), args...), " "))
		return Exec(ctx, env, name, args...)
	}
	build(t, dir, Options{Version: "1.0", Layout: small(), A: a, Run: run, ModTime: time.Unix(1700000000, 0)})
	text := regexp.MustCompile(`\.atrium-disk-[0-9]+`).ReplaceAllString(strings.Join(got, "\n"), "TMP")
	text = strings.ReplaceAll(text, dir, "DIR")
	g := func(name string) string { return DeriveGUID("1.0", name).String() }
	want := strings.Join([]string{
		"sgdisk -U " + g("disk") + " -n 1:2048:133119 -t 1:EF00 -c 1:esp -u 1:" + g("esp") +
			" -n 2:133120:165887 -t 2:8304 -c 2:root-a -u 2:" + g("root-a") +
			" -n 3:165888:198655 -t 3:8304 -c 3:root-b -u 3:" + g("root-b") +
			" -n 4:198656:231423 -t 4:8300 -c 4:data -u 4:" + g("data") + " DIR/disk.img.partial",
		fmt.Sprintf("TZ=UTC MTOOLS_SKIP_CHECK=1 mkfs.vfat -F 32 -n ESP --invariant -i %08X DIR/TMP/esp.img", serial("1.0", "esp")),
		"TZ=UTC MTOOLS_SKIP_CHECK=1 mcopy -i DIR/TMP/esp.img -s -m -Q DIR/TMP/esp/EFI DIR/TMP/esp/atrium DIR/TMP/esp/loader ::/",
		"E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -L data -U " + g("data-fs") + " -E hash_seed=" + g("data-fs") + ",root_owner=0:0 DIR/TMP/data.img",
	}, "\n")
	if text != want {
		t.Errorf("commands:\n%s\nwant:\n%s", text, want)
	}
}

func TestBuildNoLoader(t *testing.T) {
	dir := t.TempDir()
	err := Build(t.Context(), Options{Output: filepath.Join(dir, "disk.img"), Version: "1.0", Layout: small(), A: payload(t, dir, 10), Loader: filepath.Join(dir, "none.efi")})
	if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "systemd-boot-efi") {
		t.Fatalf("err = %v, want ErrToolMissing naming systemd-boot-efi", err)
	}
}
