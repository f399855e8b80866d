package blockdev_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/install"
	"github.com/atriumroom/atrium/ota/install/blockdev"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ install.Device = (*blockdev.File)(nil)

// slotFile makes a partition image file of size bytes.
func slotFile(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slot-b.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenMissingNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := blockdev.Open(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(missing) = %v, want ErrNotExist naming the path", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created %s", path)
	}
}

func TestFileRoundTrip(t *testing.T) {
	path := slotFile(t, 1<<20)
	d, err := blockdev.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n, err := d.Size(); err != nil || n != 1<<20 {
		t.Fatalf("Size = %d, %v; want %d", n, err, 1<<20)
	}
	want := []byte("atrium slot")
	if _, err := d.WriteAt(want, 4096); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := d.ReadAt(got, 4096); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt = %q, %v; want %q", got, err, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Sync after Close = %v, want an error naming the slot", err)
	}
}

// TestInstallIntoFile runs a real install into a partition image file.
func TestInstallIntoFile(t *testing.T) {
	img := make([]byte, 5<<20+77)
	rand.NewChaCha8([32]byte{9}).Read(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	path := slotFile(t, 8<<20)
	d, err := blockdev.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tgt := install.Target{URL: srv.URL, Length: int64(len(img)), SHA256: sha256.Sum256(img)}
	var last install.Progress
	in := install.New(install.Options{Client: srv.Client(), SyncEvery: 1 << 20})
	if err := in.Install(t.Context(), d, tgt, install.Progress{}, func(p install.Progress) error { last = p; return nil }); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if last.Written != tgt.Length {
		t.Errorf("last progress %d, want %d", last.Written, tgt.Length)
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[:len(img)], img) || len(disk) != 8<<20 {
		t.Fatal("slot file does not hold the image at its start, or changed size")
	}
}

// The pair of benchmarks behind issue 7's "install throughput as a ratio of
// the raw write speed of the same target": the same 64 MiB written to a
// slot file by Install (over loopback HTTP, hashed, synced every 4 MiB,
// read back) and by plain writes and one fsync.
const benchSize = 64 << 20

func benchImage() []byte {
	img := make([]byte, benchSize)
	rand.NewChaCha8([32]byte{1}).Read(img)
	return img
}

func BenchmarkInstall(b *testing.B) {
	img := benchImage()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	d, err := blockdev.Open(slotFile(b, benchSize))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	tgt := install.Target{URL: srv.URL, Length: benchSize, SHA256: sha256.Sum256(img)}
	in := install.New(install.Options{Client: srv.Client()})
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := in.Install(b.Context(), d, tgt, install.Progress{}, func(install.Progress) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawWrite(b *testing.B) {
	img := benchImage()
	d, err := blockdev.Open(slotFile(b, benchSize))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.SetBytes(benchSize)
	for b.Loop() {
		for off := 0; off < benchSize; off += 256 << 10 {
			if _, err := d.WriteAt(img[off:off+256<<10], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
