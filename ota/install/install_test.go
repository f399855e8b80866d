package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const MiB = 1 << 20

// testImage is n deterministic pseudo-random bytes and its target.
func testImage(t *testing.T, n int, url string) ([]byte, Target) {
	t.Helper()
	img := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(img)
	return img, Target{URL: url, Length: int64(n), SHA256: sha256.Sum256(img)}
}

// imageServer serves img with Range support (http.ServeContent) and
// records the Range header of every request. With ignoreRange it answers
// every request with the whole image and 200, as some servers do.
type imageServer struct {
	*httptest.Server
	img         []byte
	ignoreRange bool

	mu     sync.Mutex
	ranges []string
	served int64
}

func newImageServer(t *testing.T, img []byte) *imageServer {
	s := &imageServer{img: img}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		ignore := s.ignoreRange
		s.mu.Unlock()
		if ignore {
			r.Header.Del("Range")
		}
		cw := &countingWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(s.img))
		s.mu.Lock()
		s.served += cw.n
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *imageServer) requests() ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), s.served
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// store stands in for the caller's state file: the last persisted Progress.
// check, when set, runs on every report (to assert what a report promises).
type store struct {
	mu      sync.Mutex
	p       Progress
	history []int64
	check   func(Progress) error
}

func (s *store) persist(p Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.check != nil {
		if err := s.check(p); err != nil {
			return err
		}
	}
	s.p = p
	s.history = append(s.history, p.Written)
	return nil
}

func (s *store) get() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

func newTestInstaller(client *http.Client) *Installer {
	return New(Options{Client: client, SyncEvery: MiB, StallTimeout: 2 * time.Second})
}

// durableCheck asserts, at each report, that the reported bytes are already
// on the medium: progress is reported only after a successful sync.
func durableCheck(dev *fakeDevice, img []byte) func(Progress) error {
	return func(p Progress) error {
		if !bytes.Equal(dev.durable(p.Written), img[:p.Written]) {
			return fmt.Errorf("reported %d bytes that are not durable", p.Written)
		}
		return nil
	}
}

func TestInstallFresh(t *testing.T) {
	img, _ := testImage(t, 3*MiB+123, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(4*MiB, 1)
	st := &store{check: durableCheck(dev, img)}

	if err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, st.persist); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if got := dev.durable(tgt.Length); !bytes.Equal(got, img) {
		t.Fatal("device does not hold the image after Install")
	}
	if p := st.get(); p.Written != tgt.Length || p.SHA256 != tgt.SHA256 {
		t.Errorf("last progress = %d, want %d for the target", p.Written, tgt.Length)
	}
	// One report per MiB and one at the end, increasing.
	if len(st.history) != 4 {
		t.Errorf("progress reports %v, want 4", st.history)
	}
	for i := 1; i < len(st.history); i++ {
		if st.history[i] <= st.history[i-1] {
			t.Errorf("progress went from %d to %d", st.history[i-1], st.history[i])
		}
	}
	if rs, _ := srv.requests(); len(rs) != 1 || rs[0] != "" {
		t.Errorf("requests' Range headers = %q, want one request without Range", rs)
	}
}

func TestResumeRequestsRangeAndRehashesDevice(t *testing.T) {
	img, _ := testImage(t, 4*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(4*MiB, 2)
	// An earlier run left 1.5 MiB + 100 bytes durable.
	written := int64(3*MiB/2 + 100)
	dev.WriteAt(img[:written], 0)
	dev.Sync()
	st := &store{}

	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{SHA256: tgt.SHA256, Written: written}, st.persist)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	if !bytes.Equal(dev.durable(tgt.Length), img) {
		t.Fatal("device does not hold the image")
	}
	aligned := written - written%ResumeAlign
	rs, served := srv.requests()
	if want := fmt.Sprintf("bytes=%d-", aligned); len(rs) != 1 || rs[0] != want {
		t.Errorf("Range headers = %q, want [%q]", rs, want)
	}
	if served != tgt.Length-aligned {
		t.Errorf("server sent %d bytes, want %d", served, tgt.Length-aligned)
	}
}

func TestResumeWithCorruptPrefixIsRejectedThenConverges(t *testing.T) {
	img, _ := testImage(t, 2*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB, 3)
	dev.WriteAt(img[:MiB], 0)
	dev.Sync()
	dev.corrupt(1000) // the device lost a byte the progress vouches for
	st := &store{p: Progress{SHA256: tgt.SHA256, Written: MiB}}
	in := newTestInstaller(srv.Client())

	err := in.Install(t.Context(), dev, tgt, st.get(), st.persist)
	var mm *HashMismatchError
	if !errors.As(err, &mm) || !errors.Is(err, ErrHashMismatch) || mm.Stage != "download" {
		t.Fatalf("Install over a corrupt prefix = %v, want a download hash mismatch", err)
	}
	if st.get().Written != 0 {
		t.Fatalf("progress after a mismatch = %d, want reset to 0", st.get().Written)
	}
	if err := in.Install(t.Context(), dev, tgt, st.get(), st.persist); err != nil {
		t.Fatalf("Install from 0 after the reset: %v", err)
	}
	if !bytes.Equal(dev.durable(tgt.Length), img) {
		t.Fatal("device does not hold the image")
	}
}

func TestProgressOfAnotherTargetStartsOver(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(MiB, 4)
	st := &store{}
	other := Progress{SHA256: [32]byte{1}, Written: MiB / 2}
	if err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, other, st.persist); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if rs, _ := srv.requests(); len(rs) != 1 || rs[0] != "" {
		t.Errorf("Range headers = %q, want a full download", rs)
	}
}

func TestServerIgnoringRangeRestartsFromZero(t *testing.T) {
	img, _ := testImage(t, 3*MiB, "")
	srv := newImageServer(t, img)
	srv.ignoreRange = true
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(3*MiB, 5)
	dev.WriteAt(img[:2*MiB], 0)
	dev.Sync()
	st := &store{}

	if err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{SHA256: tgt.SHA256, Written: 2 * MiB}, st.persist); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if !bytes.Equal(dev.durable(tgt.Length), img) {
		t.Fatal("device does not hold the image")
	}
	if len(st.history) == 0 || st.history[0] != 0 {
		t.Errorf("progress reports %v, want a reset to 0 before rewriting", st.history)
	}
	if rs, _ := srv.requests(); len(rs) != 1 || rs[0] != "bytes=2097152-" {
		t.Errorf("Range headers = %q", rs)
	}
}

// misbehaving serves a handler and fails on nothing; tests check the error.
func misbehaving(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestWrongContentRangeIsRefused(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	for name, cr := range map[string]string{
		"wrong start":  fmt.Sprintf("bytes 0-%d/%d", len(img)-1, len(img)),
		"wrong total":  fmt.Sprintf("bytes 4096-%d/%d", len(img)-1, len(img)+1),
		"wrong end":    fmt.Sprintf("bytes 4096-%d/%d", len(img)-2, len(img)),
		"missing":      "",
		"not bytes":    fmt.Sprintf("items 4096-%d/%d", len(img)-1, len(img)),
		"not a number": fmt.Sprintf("bytes x-%d/%d", len(img)-1, len(img)),
	} {
		t.Run(name, func(t *testing.T) {
			srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
				if cr != "" {
					w.Header().Set("Content-Range", cr)
				}
				w.WriteHeader(http.StatusPartialContent)
				w.Write(img[4096:])
			})
			_, tgt := testImage(t, len(img), srv.URL)
			dev := newFakeDevice(MiB, 6)
			dev.WriteAt(img[:4096], 0)
			dev.Sync()
			writes := dev.writes
			st := &store{}
			err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{SHA256: tgt.SHA256, Written: 4096}, st.persist)
			if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "Content-Range") {
				t.Fatalf("Install = %v, want ErrBadResponse naming Content-Range", err)
			}
			if dev.writes != writes || len(st.history) != 0 {
				t.Errorf("wrote %d times and reported %v after a bad Content-Range", dev.writes-writes, st.history)
			}
		})
	}
}

func TestErrorStatusIsRefused(t *testing.T) {
	srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	_, tgt := testImage(t, MiB, srv.URL)
	err := newTestInstaller(srv.Client()).Install(t.Context(), newFakeDevice(MiB, 7), tgt, Progress{}, (&store{}).persist)
	if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Install = %v, want ErrBadResponse naming 404", err)
	}
}

func TestUnrequestedPartialContentIsRefused(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(img)-1, len(img)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(img)
	})
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(MiB, 21)
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, (&store{}).persist)
	if !errors.Is(err, ErrBadResponse) || dev.writes != 0 {
		t.Fatalf("Install = %v after %d writes, want ErrBadResponse before writing", err, dev.writes)
	}
}

func TestCancelSyncsWhatArrived(t *testing.T) {
	img, _ := testImage(t, 4*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(4*MiB, 22)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dev.afterWrite = func(end int64) {
		if end >= MiB+MiB/2 {
			cancel()
		}
	}
	st := &store{check: durableCheck(dev, img)}
	err := newTestInstaller(srv.Client()).Install(ctx, dev, tgt, Progress{}, st.persist)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Install = %v, want context.Canceled", err)
	}
	if p := st.get().Written; p < MiB+MiB/2 {
		t.Errorf("progress %d after cancel, want what was written (≥ %d) synced", p, MiB+MiB/2)
	}
}

func TestImageLargerThanSlotIsRefusedBeforeWriting(t *testing.T) {
	img, _ := testImage(t, 2*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB-1, 8)
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, (&store{}).persist)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "2097152") || !strings.Contains(err.Error(), "2097151") {
		t.Fatalf("Install = %v, want ErrTooLarge naming both sizes", err)
	}
	if rs, _ := srv.requests(); dev.writes != 0 || len(rs) != 0 {
		t.Errorf("%d writes and %d requests for an image too large", dev.writes, len(rs))
	}
}

func TestInvalidTarget(t *testing.T) {
	in := New(Options{})
	for _, tgt := range []Target{{URL: "", Length: 1}, {URL: "http://x", Length: 0}, {URL: "http://x", Length: -1}} {
		if err := in.Install(t.Context(), newFakeDevice(4096, 9), tgt, Progress{}, (&store{}).persist); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("Install(%+v) = %v, want ErrInvalidTarget", tgt, err)
		}
	}
}

func TestEndlessDataStopsAtLengthPlusOne(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	var sent int64
	var mu sync.Mutex
	srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length (chunked): the image, then garbage forever.
		w.Write(img)
		junk := make([]byte, 64<<10)
		for r.Context().Err() == nil {
			n, err := w.Write(junk)
			mu.Lock()
			sent += int64(n)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB, 10)
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, (&store{}).persist)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("Install = %v, want ErrTooLong", err)
	}
	if extra := dev.durable(2 * MiB)[MiB:]; !bytes.Equal(extra, make([]byte, MiB)) {
		t.Error("bytes past the target's length reached the device")
	}
}

func TestAnnouncedTooLongIsRefusedBeforeWriting(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	big := append(append([]byte(nil), img...), 1, 2, 3)
	srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	})
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB, 11)
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, (&store{}).persist)
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "Content-Length") {
		t.Fatalf("Install = %v, want ErrTooLong naming Content-Length", err)
	}
	if dev.writes != 0 {
		t.Errorf("%d writes", dev.writes)
	}
}

// cutServer sends the first cut bytes of whatever range is asked, then
// closes the connection, while announcing the full length.
func cutServer(t *testing.T, img []byte, cut *atomic.Int64) *httptest.Server {
	return misbehaving(t, cutHandler(img, cut))
}

// cutHandler is cutServer's handler.
func cutHandler(img []byte, cut *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := int64(0)
		if rg := r.Header.Get("Range"); rg != "" {
			fmt.Sscanf(rg, "bytes=%d-", &start)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(img)-1, len(img)))
			w.Header().Set("Content-Length", fmt.Sprint(int64(len(img))-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(img)))
		}
		end := min(int64(len(img)), start+cut.Load())
		w.Write(img[start:end])
		if end < int64(len(img)) {
			// Close the connection mid-body.
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}
}

func TestTruncatedBodyIsResumable(t *testing.T) {
	img, _ := testImage(t, 3*MiB, "")
	var cut atomic.Int64
	cut.Store(MiB + MiB/2)
	srv := cutServer(t, img, &cut)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(3*MiB, 12)
	st := &store{check: durableCheck(dev, img)}
	in := newTestInstaller(srv.Client())

	err := in.Install(t.Context(), dev, tgt, Progress{}, st.persist)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Install = %v, want ErrTruncated", err)
	}
	if got := st.get().Written; got != cut.Load() {
		t.Fatalf("progress after the cut = %d, want %d (what arrived, synced)", got, cut.Load())
	}
	cut.Store(4 * MiB)
	if err := in.Install(t.Context(), dev, tgt, st.get(), st.persist); err != nil {
		t.Fatalf("resumed Install: %v", err)
	}
	if !bytes.Equal(dev.durable(tgt.Length), img) {
		t.Fatal("device does not hold the image")
	}
}

func TestWrongImageIsNeverAccepted(t *testing.T) {
	img, _ := testImage(t, 2*MiB, "")
	evil := append([]byte(nil), img...)
	evil[MiB] ^= 1
	srv := newImageServer(t, evil)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB, 13)
	st := &store{}
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, st.persist)
	var mm *HashMismatchError
	if !errors.As(err, &mm) || mm.Stage != "download" || mm.Want != tgt.SHA256 || mm.Got != sha256.Sum256(evil) {
		t.Fatalf("Install = %v, want a download hash mismatch with both hashes", err)
	}
	if st.get().Written != 0 {
		t.Errorf("progress after a mismatch = %d, want 0", st.get().Written)
	}
}

func TestReadBackCatchesDeviceThatLoses(t *testing.T) {
	img, _ := testImage(t, 2*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(2*MiB, 14)
	dev.lie = true
	st := &store{}
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, st.persist)
	var mm *HashMismatchError
	if !errors.As(err, &mm) || mm.Stage != "read-back" {
		t.Fatalf("Install on a device that drops synced writes = %v, want a read-back mismatch", err)
	}
	if st.get().Written != 0 {
		t.Errorf("progress after a read-back mismatch = %d, want 0", st.get().Written)
	}
}

func TestStalledServer(t *testing.T) {
	img, _ := testImage(t, 2*MiB, "")
	for name, sendFirst := range map[string]int{"mid-body": MiB, "before headers": -1} {
		t.Run(name, func(t *testing.T) {
			srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
				if sendFirst >= 0 {
					w.Header().Set("Content-Length", fmt.Sprint(len(img)))
					w.Write(img[:sendFirst])
					w.(http.Flusher).Flush()
				}
				<-r.Context().Done() // then nothing, until the client gives up
			})
			_, tgt := testImage(t, len(img), srv.URL)
			dev := newFakeDevice(2*MiB, 15)
			st := &store{check: durableCheck(dev, img)}
			in := New(Options{Client: srv.Client(), SyncEvery: 4 * MiB, StallTimeout: 150 * time.Millisecond})
			began := time.Now()
			err := in.Install(t.Context(), dev, tgt, Progress{}, st.persist)
			if !errors.Is(err, ErrStalled) {
				t.Fatalf("Install = %v, want ErrStalled", err)
			}
			if d := time.Since(began); d > 2*time.Second {
				t.Errorf("gave up after %v, want about the 150ms stall timeout", d)
			}
			if want := max(int64(sendFirst), 0); st.get().Written != want {
				t.Errorf("progress = %d, want %d (what arrived, synced)", st.get().Written, want)
			}
		})
	}
}

func TestSlowButMovingServerIsNotStalled(t *testing.T) {
	img, _ := testImage(t, 64<<10, "")
	srv := misbehaving(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(img)))
		for i := 0; i < len(img); i += 8 << 10 {
			w.Write(img[i : i+8<<10])
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond) // 8 pieces: 320ms in all, more than the timeout
		}
	})
	_, tgt := testImage(t, len(img), srv.URL)
	in := New(Options{Client: srv.Client(), StallTimeout: 150 * time.Millisecond})
	if err := in.Install(t.Context(), newFakeDevice(MiB, 16), tgt, Progress{}, (&store{}).persist); err != nil {
		t.Fatalf("Install from a slow server that keeps sending: %v", err)
	}
}

func TestDiskFull(t *testing.T) {
	img, _ := testImage(t, 3*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(3*MiB, 17)
	dev.failWrite = func(off int64, n int) error {
		if off+int64(n) > 2*MiB {
			return syscall.ENOSPC
		}
		return nil
	}
	st := &store{}
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, st.persist)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "write slot at offset") {
		t.Fatalf("Install = %v, want ENOSPC naming the write and offset", err)
	}
	if p := st.get().Written; p > 2*MiB {
		t.Errorf("progress %d past the failed write", p)
	}
}

func TestFailedSyncIsNotReported(t *testing.T) {
	img, _ := testImage(t, 3*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(3*MiB, 18)
	errIO := errors.New("injected EIO")
	dev.failSync = func(n int) error {
		if n == 2 {
			return errIO
		}
		return nil
	}
	st := &store{}
	err := newTestInstaller(srv.Client()).Install(t.Context(), dev, tgt, Progress{}, st.persist)
	if !errors.Is(err, errIO) || !strings.Contains(err.Error(), "sync slot") {
		t.Fatalf("Install = %v, want the sync error", err)
	}
	if len(st.history) != 1 || st.history[0] != MiB {
		t.Errorf("progress reports %v, want only the first sync's %d", st.history, MiB)
	}
}

func TestPersistFailureStops(t *testing.T) {
	img, _ := testImage(t, 3*MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	errDisk := errors.New("state file unwritable")
	err := newTestInstaller(srv.Client()).Install(t.Context(), newFakeDevice(3*MiB, 19), tgt, Progress{},
		func(Progress) error { return errDisk })
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "persist progress") {
		t.Fatalf("Install = %v, want the persist error", err)
	}
}

func TestCompleteProgressOnlyVerifies(t *testing.T) {
	img, _ := testImage(t, MiB, "")
	srv := newImageServer(t, img)
	_, tgt := testImage(t, len(img), srv.URL)
	dev := newFakeDevice(MiB, 20)
	dev.WriteAt(img, 0)
	dev.Sync()
	in := newTestInstaller(srv.Client())
	if err := in.Install(t.Context(), dev, tgt, Progress{SHA256: tgt.SHA256, Written: tgt.Length}, (&store{}).persist); err != nil {
		t.Fatalf("Install of an image already on the device: %v", err)
	}
	if rs, _ := srv.requests(); len(rs) != 0 {
		t.Errorf("requests %q for a complete image", rs)
	}
	dev.corrupt(MiB - 1)
	err := in.Install(t.Context(), dev, tgt, Progress{SHA256: tgt.SHA256, Written: tgt.Length}, (&store{}).persist)
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Install over a corrupted complete image = %v, want ErrHashMismatch", err)
	}
}

func TestCheckContentRange(t *testing.T) {
	if err := checkContentRange("bytes 10-99/100", 10, 100); err != nil {
		t.Errorf("exact range: %v", err)
	}
	if err := checkContentRange("bytes 10-99/*", 10, 100); err != nil {
		t.Errorf("unknown total: %v", err)
	}
	for _, v := range []string{"bytes 10-99/101", "bytes 11-99/100", "bytes 10-98/100", "bytes 10-99", "bytes */100", "bytes 10-99/100x"} {
		if err := checkContentRange(v, 10, 100); !errors.Is(err, ErrBadResponse) {
			t.Errorf("checkContentRange(%q) = %v, want ErrBadResponse", v, err)
		}
	}
}

var _ io.ReaderAt = (*fakeDevice)(nil)
