package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestRefreshAndTarget(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	if _, err := c.Target("atrium-1.0.0"); !errors.Is(err, ErrNotRefreshed) {
		t.Fatalf("Target before Refresh: %v, want ErrNotRefreshed", err)
	}
	mustRefresh(t, c)
	tg, err := c.Target("atrium-1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Length != int64(len(f.image)) || tg.SHA256 != sum(f.image) {
		t.Errorf("target length %d sha %x, want %d %x", tg.Length, tg.SHA256, len(f.image), sum(f.image))
	}
	if want := testMeta("1.0.0"); !reflect.DeepEqual(tg.Meta, want) {
		t.Errorf("meta %+v, want %+v", tg.Meta, want)
	}
	// The URL serves exactly the bytes TUF vouches for.
	res, err := http.Get(tg.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(body, f.image) {
		t.Fatalf("GET %s: %d, %d bytes", tg.URL, res.StatusCode, len(body))
	}
	http.DefaultClient.CloseIdleConnections()

	// A second release shows up on the next refresh; the first stays.
	img2 := []byte("second image")
	if err := f.repo.AddImage("atrium-1.1.0", bytes.NewReader(img2), testMeta("1.1.0"), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Target("atrium-1.1.0"); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("new image before refresh: %v, want ErrUnknownTarget", err)
	}
	f.clock.Advance(time.Hour)
	mustRefresh(t, c)
	if tg, err := c.Target("atrium-1.1.0"); err != nil || tg.SHA256 != sum(img2) {
		t.Fatalf("Target after second publish: %+v, %v", tg, err)
	}
	if _, err := c.Target("atrium-1.0.0"); err != nil {
		t.Fatal(err)
	}
	// A device restarted with the same cache refreshes from its cached state.
	c2 := f.client(t, func(o *ClientOptions) { o.MetadataDir = c.opts.MetadataDir })
	mustRefresh(t, c2)
}

func TestArbitraryTargetRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	// Present on the server but not listed by TUF.
	if err := os.WriteFile(filepath.Join(f.dir, "targets", "evil"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evil", "atrium-9.9.9"} {
		if _, err := c.Target(name); !errors.Is(err, ErrUnknownTarget) {
			t.Errorf("Target(%q): %v, want ErrUnknownTarget", name, err)
		}
	}
	for _, name := range []string{"../metadata/root.json", "a/b", "", ".."} {
		if _, err := c.Target(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Target(%q): %v, want ErrBadName", name, err)
		}
	}
}

func TestWrongHardwareRefused(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.AddImage("atrium-other", strings.NewReader("other"), testMeta("1.0.0", "rpi5", "nuc12"), t0); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, nil)
	mustRefresh(t, c)
	_, err := c.Target("atrium-other")
	if !errors.Is(err, ErrWrongHardware) || !strings.Contains(err.Error(), "rpi5") || !strings.Contains(err.Error(), hw) {
		t.Fatalf("Target for other hardware: %v, want ErrWrongHardware naming both", err)
	}
}

func TestTimestampRollbackRefused(t *testing.T) {
	f := newFixture(t)
	old := readMeta(t, f, "timestamp.json")
	f.clock.Advance(time.Hour)
	if err := f.repo.RefreshTimestamp(f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, nil)
	mustRefresh(t, c)
	// The attacker serves the older, still unexpired and validly signed
	// timestamp.
	if err := os.WriteFile(filepath.Join(f.dir, "metadata", "timestamp.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrRollback) {
		t.Fatalf("Refresh with old timestamp: %v, want ErrRollback", err)
	}
	t.Logf("refused: %v", err)
	// The previous good state still answers.
	if _, err := c.Target("atrium-1.0.0"); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRollbackRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	if err := f.repo.AddImage("atrium-1.1.0", strings.NewReader("new"), testMeta("1.1.0"), t0); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, c)
	// Re-sign a timestamp (the online key is the likeliest to leak) that
	// points at the older snapshot with a higher timestamp version.
	var ts = *f.repo.timestamp
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(2)}
	ts.Signed.Version++
	if err := sign(&ts, f.keys, RoleTimestamp); err != nil {
		t.Fatal(err)
	}
	b, err := ts.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "metadata", "timestamp.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrRollback) {
		t.Fatalf("Refresh with a timestamp naming an older snapshot: %v, want ErrRollback", err)
	}
}

func TestFreezeExpiredTimestamp(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	// Nobody re-signs the timestamp: a frozen mirror.
	f.clock.Advance(testExpiry.Timestamp + time.Minute)
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "timestamp") {
		t.Fatalf("Refresh past timestamp expiry: %v, want ErrExpired naming timestamp", err)
	}
}

func TestFreezeExpiredSnapshot(t *testing.T) {
	f := newFixture(t)
	// The timestamp host keeps re-signing but snapshot is never renewed.
	f.clock.Advance(testExpiry.Snapshot + time.Hour)
	if err := f.repo.RefreshTimestamp(f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, nil)
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("Refresh past snapshot expiry: %v, want ErrExpired naming snapshot", err)
	}
}

func TestTimeFloor(t *testing.T) {
	f := newFixture(t)
	// A device without a real-time clock boots at 1970; its image was built
	// after the timestamp expired, so the floor reveals the freeze.
	c := f.client(t, func(o *ClientOptions) {
		o.Now = func() time.Time { return time.Unix(0, 0) }
		o.TimeFloor = t0.Add(testExpiry.Timestamp + time.Hour)
	})
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrExpired) {
		t.Fatalf("Refresh at 1970 with a later time floor: %v, want ErrExpired", err)
	}
	// With a floor before expiry the same device accepts the repository.
	c2 := f.client(t, func(o *ClientOptions) {
		o.Now = func() time.Time { return time.Unix(0, 0) }
		o.TimeFloor = t0
	})
	mustRefresh(t, c2)
	if got := c2.TrustedTime(); !got.Equal(t0) {
		t.Fatalf("TrustedTime %v, want the floor %v", got, t0)
	}
}

func TestTrustedTimeRatchets(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	f.clock.Advance(testExpiry.Timestamp - time.Minute)
	mustRefresh(t, c)
	want := f.clock.Now()
	// The clock steps back (an NTP spoof, a dead RTC battery): the check
	// still runs at the time already known to have passed.
	f.clock.Advance(-48 * time.Hour)
	mustRefresh(t, c)
	if got := c.TrustedTime(); !got.Equal(want) {
		t.Fatalf("TrustedTime %v after the clock stepped back, want %v", got, want)
	}
	// And time moving on from there still finds the freeze.
	f.clock.Advance(48*time.Hour + 2*time.Minute)
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrExpired) {
		t.Fatalf("Refresh past expiry: %v, want ErrExpired", err)
	}
}

func TestTamperedTargetsRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	name := fmt.Sprintf("%d.targets.json", f.repo.targets.Signed.Version)
	b := readMeta(t, f, name)
	evil := bytes.Replace(b, []byte(`"qemu-x86-64"`), []byte(`"qemu-x86-65"`), 1)
	if bytes.Equal(evil, b) {
		t.Fatal("tamper found nothing to change")
	}
	if err := os.WriteFile(filepath.Join(f.dir, "metadata", name), evil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Refresh with tampered targets: %v, want ErrBadSignature", err)
	}
	if _, err := c.Target("atrium-1.0.0"); !errors.Is(err, ErrNotRefreshed) {
		t.Fatalf("Target after a refused first refresh: %v, want ErrNotRefreshed", err)
	}
}

func TestTimestampWrongKeyRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	// Signed with a key the root does not give the timestamp role.
	bad := &Keys{priv: maps.Clone(f.keys.priv)}
	bad.priv[RoleTimestamp] = f.keys.priv[RoleSnapshot]
	if _, err := Open(f.dir, bad, testExpiry); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with a wrong timestamp key: %v, want ErrWrongKey", err)
	}
	r := *f.repo // bypass Open's check: the attacker has their own tools
	r.keys = bad
	if err := r.RefreshTimestamp(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Refresh with a timestamp signed by the wrong key: %v, want ErrBadSignature", err)
	}
}

func TestEndlessDataRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	// Announced length over the limit.
	f.srv.set("/metadata/timestamp.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte(" "), 1<<20))
	}))
	if err := c.Refresh(context.Background()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Refresh with a 1 MiB timestamp: %v, want ErrTooLarge", err)
	}
	// No announced length: an endless chunked stream, cut at the limit.
	f.srv.set("/metadata/timestamp.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte(" "), 4096)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Refresh with an endless timestamp: %v, want ErrTooLarge", err)
	}
	t.Logf("refused: %v", err)
}

func TestSlowRetrievalRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, func(o *ClientOptions) { o.Timeout = 300 * time.Millisecond })
	f.srv.set("/metadata/timestamp.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One byte, then nothing until the client gives up.
		_, _ = w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	start := time.Now()
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Refresh from a stalled server: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	// The caller's own cancellation is not reported as the server's fault.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Refresh(ctx); errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestCorruptCachedRootFallsBack(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	// The cached root is what the next refresh starts from: a corrupted
	// cache falls back to the image's root instead of bricking updates.
	if err := os.WriteFile(filepath.Join(c.opts.MetadataDir, "root.json"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRefresh(t, c)
}

func TestNewClientValidates(t *testing.T) {
	f := newFixture(t)
	root, _ := f.repo.RootJSON()
	good := ClientOptions{TrustedRoot: root, MetadataDir: t.TempDir(), BaseURL: "https://updates.example", Hardware: hw}
	for name, mod := range map[string]func(*ClientOptions){
		"no root":  func(o *ClientOptions) { o.TrustedRoot = nil },
		"bad root": func(o *ClientOptions) { o.TrustedRoot = []byte("{}") },
		"no dir":   func(o *ClientOptions) { o.MetadataDir = "" },
		"bad url":  func(o *ClientOptions) { o.BaseURL = "ftp://x" },
		"bad hw":   func(o *ClientOptions) { o.Hardware = "Not Valid" },
	} {
		o := good
		mod(&o)
		if c, err := NewClient(o); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := NewClient(good)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestMixAndMatchSnapshotRefused(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.AddImage("atrium-1.1.0", strings.NewReader("new"), testMeta("1.1.0"), t0); err != nil {
		t.Fatal(err)
	}
	// The current timestamp names snapshot 3; the server hands out the
	// (validly signed) snapshot 2 under that name.
	old := readMeta(t, f, "2.snapshot.json")
	if err := os.WriteFile(filepath.Join(f.dir, "metadata", "3.snapshot.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, nil)
	err := c.Refresh(context.Background())
	if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("Refresh with a mismatched snapshot: %v, want ErrRollback naming snapshot", err)
	}
	t.Logf("refused: %v", err)
}
