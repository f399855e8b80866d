package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var testExpiry = Expiry{Root: 365 * 24 * time.Hour, Targets: 30 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 24 * time.Hour}

const hw = "qemu-x86-64"

// server serves a repository directory like any static HTTP server, with
// per-path overrides that play the attacker.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	override map[string]http.Handler
}

func newServer(t *testing.T, dir string) *server {
	s := &server{override: map[string]http.Handler{}}
	files := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.override[r.URL.Path]
		s.mu.Unlock()
		if h != nil {
			h.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(path string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = h
}

type fixture struct {
	dir   string
	keys  *Keys
	repo  *Repo
	srv   *server
	clock *testclock.Clock
	image []byte
}

func testMeta(version string, hardware ...string) ImageMeta {
	if len(hardware) == 0 {
		hardware = []string{hw}
	}
	return ImageMeta{
		Hardware:        hardware,
		Version:         version,
		SecurityVersion: 3,
		BuildTime:       t0.Add(-time.Hour),
		Partitions: map[string]PartitionMeta{
			"rootfs": {Size: 4096, SHA256: hex.EncodeToString(make([]byte, 32))},
		},
	}
}

// newFixture publishes one image, "atrium-1.0.0", into a fresh repository
// served over HTTP.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clock: testclock.New(t0)}
	var err error
	if f.keys, err = GenerateKeys(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if f.repo, err = Init(f.dir, f.keys, testExpiry, t0); err != nil {
		t.Fatal(err)
	}
	f.image = bytes.Repeat([]byte("atrium rootfs "), 1000)
	if err := f.repo.AddImage("atrium-1.0.0", bytes.NewReader(f.image), testMeta("1.0.0"), t0); err != nil {
		t.Fatal(err)
	}
	f.srv = newServer(t, f.dir)
	return f
}

func (f *fixture) client(t *testing.T, mod func(*ClientOptions)) *Client {
	t.Helper()
	root, err := f.repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	opts := ClientOptions{
		TrustedRoot: root,
		MetadataDir: filepath.Join(t.TempDir(), "tuf"),
		BaseURL:     f.srv.URL,
		Hardware:    hw,
		Timeout:     5 * time.Second,
		Now:         f.clock.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func mustRefresh(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
}

func readMeta(t *testing.T, f *fixture, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "metadata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }
