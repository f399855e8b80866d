package otabench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/ota/install"
	"github.com/atriumroom/atrium/ota/install/blockdev"
)

// installRun is one round's timings.
type installRun struct {
	raw, rawSync4M time.Duration // sequential write, one fsync / fsync every 4 MiB
	download       time.Duration // the same HTTP GET, hashed, to no disk
	install        time.Duration // the whole Install
	readBack       time.Duration // of which in the slot's ReadAt (the read-back verify)
}

type installResult struct {
	size   int64
	rounds []installRun
}

// timedDevice measures the time Install spends reading the slot: with a
// fresh install that is only the read-back verify.
type timedDevice struct {
	*blockdev.File
	mu   sync.Mutex
	read time.Duration
}

func (d *timedDevice) ReadAt(p []byte, off int64) (int, error) {
	start := time.Now()
	n, err := d.File.ReadAt(p, off)
	d.mu.Lock()
	d.read += time.Since(start)
	d.mu.Unlock()
	return n, err
}

func randomImage(size int64) []byte {
	r := rand.NewChaCha8([32]byte{'a', 't', 'r', 'i', 'u', 'm'})
	b := make([]byte, size)
	_, _ = r.Read(b)
	return b
}

// measureInstall runs rounds of (raw write, install), interleaved so that
// both see the same state of a shared machine.
func measureInstall(ctx context.Context, b *testing.B, dir string, size int64, rounds int) installResult {
	img := randomImage(size)
	sum := sha256.Sum256(img)
	imgPath := filepath.Join(dir, "image.bin")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	in := install.New(install.Options{Client: client, SyncEvery: install.DefaultSyncEvery, Logger: slog.New(slog.DiscardHandler)})
	res := installResult{size: size}
	// The first write to a fresh file system area is slower: not a round.
	if _, err := rawWrite(filepath.Join(dir, "raw.bin"), img, 0); err != nil {
		b.Fatal(err)
	}
	for round := range rounds {
		var run installRun
		var err error
		if run.raw, err = rawWrite(filepath.Join(dir, "raw.bin"), img, 0); err != nil {
			b.Fatal(err)
		}
		if run.rawSync4M, err = rawWrite(filepath.Join(dir, "raw.bin"), img, install.DefaultSyncEvery); err != nil {
			b.Fatal(err)
		}
		if run.download, err = download(ctx, client, srv.URL+"/image.bin", sum); err != nil {
			b.Fatal(err)
		}
		slot := filepath.Join(dir, "slot.bin")
		_ = os.Remove(slot)
		// The slot is a partition: it exists with its size before the
		// install (16 MiB larger than the image).
		if err := os.WriteFile(slot, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(slot, size+16<<20); err != nil {
			b.Fatal(err)
		}
		f, err := blockdev.Open(slot)
		if err != nil {
			b.Fatal(err)
		}
		dev := &timedDevice{File: f}
		progress := filepath.Join(dir, "progress.json")
		// The engine persists progress after every sync: so does this.
		persist := func(p install.Progress) error {
			raw, err := json.Marshal(p)
			if err != nil {
				return err
			}
			return atomicfile.Write(progress, raw, 0o600)
		}
		start := time.Now()
		err = in.Install(ctx, dev, install.Target{URL: srv.URL + "/image.bin", Length: size, SHA256: sum}, install.Progress{}, persist)
		run.install = time.Since(start)
		run.readBack = dev.read
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatalf("install round %d: %v", round, err)
		}
		_ = os.Remove(slot)
		res.rounds = append(res.rounds, run)
		b.Logf("install round %d: raw %v, raw+fsync/4MiB %v, download %v, install %v (read-back %v)", round, run.raw, run.rawSync4M, run.download, run.install, run.readBack)
	}
	_ = os.Remove(imgPath)
	return res
}

// rawWrite writes img to a new file at path in 4 MiB writes, with an
// fsync every syncEvery bytes (0: only at the end), and returns the time
// from creating the file to the last fsync returning.
func rawWrite(path string, img []byte, syncEvery int64) (time.Duration, error) {
	_ = os.Remove(path)
	start := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	const chunk = 4 << 20
	var sinceSync int64
	for off := 0; off < len(img); off += chunk {
		n, err := f.Write(img[off:min(off+chunk, len(img))])
		if err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("raw write: %w", err)
		}
		sinceSync += int64(n)
		if syncEvery > 0 && sinceSync >= syncEvery {
			if err := f.Sync(); err != nil {
				_ = f.Close()
				return 0, fmt.Errorf("raw write: %w", err)
			}
			sinceSync = 0
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return 0, fmt.Errorf("raw write: %w", err)
	}
	d := time.Since(start)
	if err := f.Close(); err != nil {
		return 0, err
	}
	return d, os.Remove(path)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func mibps(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / (1 << 20) / d.Seconds()
}

// download fetches url and hashes it, writing nothing: what the network
// and the hash alone cost the installer.
func download(ctx context.Context, client *http.Client, url string, want [32]byte) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = res.Body.Close() }()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, res.Body, make([]byte, 256<<10)); err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	d := time.Since(start)
	if [32]byte(h.Sum(nil)) != want {
		return 0, fmt.Errorf("download: hash mismatch")
	}
	return d, nil
}
