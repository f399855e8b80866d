package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const testSalt = "5a17" + "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"

// image writes a file that starts like a squashfs of blocks 4 KiB blocks
// (magic, bytes_used) and is filled with a pattern, then lets the real
// veritysetup (Debian package cryptsetup-bin) append the tree, and returns
// the file and the root hash veritysetup printed.
func image(t *testing.T, blocks int, used uint64) (string, string) {
	t.Helper()
	data := make([]byte, blocks*BlockSize)
	for i := range data {
		data[i] = byte(i*7 + i/BlockSize)
	}
	binary.LittleEndian.PutUint32(data, squashfsMagic)
	binary.LittleEndian.PutUint64(data[squashfsBytesUsed:], used)
	p := filepath.Join(t.TempDir(), "root.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("veritysetup", "format", p, p,
		"--hash-offset="+strconv.Itoa(len(data)), "--data-blocks="+strconv.Itoa(blocks),
		"--salt="+testSalt, "--uuid=5b1f4a8e-0000-4000-8000-000000000001").CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format (Debian package cryptsetup-bin): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Root hash:\s+([0-9a-f]{64})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup's output:\n%s", out)
	}
	return p, string(m[1])
}

func read(t *testing.T, p string) (*Tree, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Read(f)
}

// TestReadAgreesWithVeritysetup covers a tree of no level (one block),
// one level, and two and three levels (a top block over several).
func TestReadAgreesWithVeritysetup(t *testing.T) {
	for _, blocks := range []int{1, 2, 128, 129, 128*128 + 3} {
		t.Run(strconv.Itoa(blocks), func(t *testing.T) {
			// bytes_used short of the last block, as mksquashfs leaves it.
			p, want := image(t, blocks, uint64(blocks*BlockSize-100))
			tr, err := read(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if tr.RootHash != want {
				t.Errorf("root hash %s, veritysetup says %s", tr.RootHash, want)
			}
			if tr.HashOffset != int64(blocks*BlockSize) || tr.DataBlocks != uint64(blocks) {
				t.Errorf("tree %+v, want offset %d, %d blocks", tr, blocks*BlockSize, blocks)
			}
			// The kernel agrees too, as far as userspace can ask it:
			// veritysetup verify checks every block against this hash.
			if out, err := exec.Command("veritysetup", "verify", p, p, tr.RootHash, "--hash-offset="+strconv.FormatInt(tr.HashOffset, 10)).CombinedOutput(); err != nil {
				t.Errorf("veritysetup verify with the root hash read: %v\n%s", err, out)
			}
		})
	}
}

func TestReadWithoutTree(t *testing.T) {
	dir := t.TempDir()
	sq := make([]byte, 2*BlockSize)
	binary.LittleEndian.PutUint32(sq, squashfsMagic)
	binary.LittleEndian.PutUint64(sq[squashfsBytesUsed:], uint64(len(sq)-10))
	// A squashfs image file, and the same in a partition followed by
	// zeros or by what an earlier, longer image left there.
	for name, data := range map[string][]byte{
		"file":               sq,
		"partition":          append(slices.Clone(sq), make([]byte, 3*BlockSize)...),
		"after a longer one": append(slices.Clone(sq), bytes.Repeat([]byte("old image "), BlockSize)...),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := read(t, p); !errors.Is(err, ErrNoTree) {
			t.Errorf("%s: %v, want ErrNoTree", name, err)
		}
	}
}

// TestReadRefuses: each damage is an error that names what is wrong.
func TestReadRefuses(t *testing.T) {
	p, _ := image(t, 3, 3*BlockSize)
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sb := 3 * BlockSize
	put32 := func(at int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[at:], v) }
	}
	for _, c := range []struct {
		name   string
		damage func([]byte)
		want   string
	}{
		{"not a squashfs", func(b []byte) { b[0] ^= 1 }, "no squashfs magic"},
		{"bytes_used zero", func(b []byte) { binary.LittleEndian.PutUint64(b[squashfsBytesUsed:], 0) }, "bytes_used 0"},
		{"version", put32(sb+sbVersion, 0), "version is 0, want 1"},
		{"hash type", put32(sb+sbHashType, 2), "hash type is 2"},
		{"data block size", put32(sb+sbDataBlock, 512), "data block size is 512, want 4096"},
		{"hash block size", put32(sb+sbHashBlock, 1024), "hash block size is 1024"},
		{"fewer data blocks", func(b []byte) { binary.LittleEndian.PutUint64(b[sb+sbDataBlocks:], 2) }, "data blocks is 2, want 3"},
		{"algorithm", func(b []byte) { copy(b[sb+sbAlgorithm:], "sha1\x00\x00") }, `hash algorithm "sha1"`},
		{"salt size", func(b []byte) { binary.LittleEndian.PutUint16(b[sb+sbSaltSize:], 300) }, "salt of 300 bytes"},
		{"no tree", func(b []byte) {}, "read the tree's top block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := slices.Clone(good)
			c.damage(b)
			if c.name == "no tree" {
				b = b[:sb+BlockSize]
			}
			q := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(q, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := read(t, q)
			if !errors.Is(err, ErrBadImage) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Errorf("error %v, want ErrBadImage saying %q", err, c.want)
			}
		})
	}
}

// TestReadChangesWithTheTree: a root hash read from a slot whose tree was
// altered is another hash, which the kernel then refuses.
func TestReadChangesWithTheTree(t *testing.T) {
	p, want := image(t, 300, 300*BlockSize)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[301*BlockSize+5] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := read(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if tr.RootHash == want {
		t.Error("a changed top block gave the same root hash")
	}
}

func TestRootArgs(t *testing.T) {
	tr := &Tree{RootHash: "ab12", HashOffset: 8192}
	for _, c := range []struct {
		name    string
		options []string
		tree    *Tree
		want    string
	}{
		{"factory entry gains the tree", []string{"root=PARTLABEL=root-b", "ro", "atrium.slot=b", "quiet"}, tr,
			"root=/dev/mapper/atrium-root atrium.verity=ab12,8192 ro atrium.slot=b quiet"},
		{"an older tree replaced", []string{"ro", "root=/dev/mapper/atrium-root", "atrium.verity=ffff,4096", "panic=5"}, tr,
			"ro root=/dev/mapper/atrium-root atrium.verity=ab12,8192 panic=5"},
		{"an image without a tree", []string{"root=/dev/mapper/atrium-root", "atrium.verity=ffff,4096", "ro"}, nil,
			"root=PARTLABEL=root-b ro"},
		{"no root= at all", []string{"ro"}, tr, "root=/dev/mapper/atrium-root atrium.verity=ab12,8192 ro"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := WithRootArgs(c.options, RootArgs("b", c.tree))
			if s := strings.Join(got, " "); s != c.want {
				t.Errorf("got %q, want %q", s, c.want)
			}
		})
	}
}
