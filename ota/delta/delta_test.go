package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// randBytes is deterministic per seed, so a failure reproduces.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func roundTrip(t *testing.T, base, target []byte, opts Options) Stats {
	t.Helper()
	var d bytes.Buffer
	st, err := Make(bytes.NewReader(base), int64(len(base)), bytes.NewReader(target), &d, opts)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	if st.DeltaSize != int64(d.Len()) || st.TargetSize != int64(len(target)) || st.CopiedBytes+st.LiteralBytes != int64(len(target)) {
		t.Fatalf("stats %+v inconsistent with delta %d bytes, target %d", st, d.Len(), len(target))
	}
	var out bytes.Buffer
	if err := Apply(context.Background(), bytes.NewReader(base), bytes.NewReader(d.Bytes()), &out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("Apply produced %d bytes that differ from the %d-byte target", out.Len(), len(target))
	}
	return st
}

func TestRoundTrips(t *testing.T) {
	base := randBytes(1, 1<<20+123)
	cases := []struct {
		name   string
		target []byte
		// maxLiteral bounds the literal bytes a good delta needs.
		maxLiteral int64
	}{
		{"identical", base, 123},
		{"insert shifts the rest", concat(base[:300001], []byte("seventeen new bytes"), base[300001:]), 2 * DefaultBlockSize},
		{"deleted range", concat(base[:200000], base[210007:]), 2 * DefaultBlockSize},
		{"overwritten range", concat(base[:500000], randBytes(2, 1000), base[501000:]), 3 * DefaultBlockSize},
		{"moved blocks", concat(base[700000:], base[:700000]), 2 * DefaultBlockSize},
		{"appended", concat(base, randBytes(3, 50000)), 50000 + DefaultBlockSize},
		{"random", randBytes(4, 300000), 300000},
		{"empty target", nil, 0},
		{"shorter than a block", base[:100], 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := roundTrip(t, base, tc.target, Options{})
			if st.LiteralBytes > tc.maxLiteral {
				t.Errorf("literal bytes %d, want at most %d (%+v)", st.LiteralBytes, tc.maxLiteral, st)
			}
			t.Logf("%+v", st)
		})
	}
	t.Run("empty base", func(t *testing.T) {
		roundTrip(t, nil, randBytes(5, 10000), Options{})
	})
	t.Run("small blocks", func(t *testing.T) {
		target := concat(base[:1000], []byte{1, 2, 3}, base[1000:])
		st := roundTrip(t, base, target, Options{BlockSize: MinBlockSize, Level: 1})
		if st.LiteralBytes > 2*MinBlockSize {
			t.Errorf("literal bytes %d with %d-byte blocks", st.LiteralBytes, MinBlockSize)
		}
	})
	t.Run("repetitive", func(t *testing.T) {
		zeros := make([]byte, 1<<20)
		target := concat(zeros[:5000], []byte("x"), zeros[:900000])
		st := roundTrip(t, zeros, target, Options{})
		if st.DeltaSize > 2000 {
			t.Errorf("delta of zeros is %d bytes", st.DeltaSize)
		}
	})
	t.Run("insert shrinks the delta", func(t *testing.T) {
		target := concat(base[:300001], []byte("seventeen new bytes"), base[300001:])
		st := roundTrip(t, base, target, Options{})
		if st.DeltaSize > 3*DefaultBlockSize {
			t.Errorf("delta of a 19-byte insert into 1 MiB is %d bytes", st.DeltaSize)
		}
	})
}

func makeDelta(t *testing.T, base, target []byte) []byte {
	t.Helper()
	var d bytes.Buffer
	if _, err := Make(bytes.NewReader(base), int64(len(base)), bytes.NewReader(target), &d, Options{}); err != nil {
		t.Fatal(err)
	}
	return d.Bytes()
}

func TestWrongBase(t *testing.T) {
	base := randBytes(10, 200000)
	target := concat(base[:1000], []byte("new"), base[1000:])
	d := makeDelta(t, base, target)
	other := bytes.Clone(base)
	other[150000] ^= 1
	for name, b := range map[string][]byte{"one bit flipped": other, "shorter": base[:199999], "empty": nil} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := Apply(context.Background(), bytes.NewReader(b), bytes.NewReader(d), &out)
			if !errors.Is(err, ErrWrongBase) {
				t.Fatalf("Apply on a wrong base: %v, want ErrWrongBase", err)
			}
			if out.Len() != 0 {
				t.Fatalf("Apply wrote %d bytes before refusing the base", out.Len())
			}
		})
	}
	// A base that is longer than the image (a partition) is fine.
	var out bytes.Buffer
	if err := Apply(context.Background(), bytes.NewReader(concat(base, make([]byte, 5000))), bytes.NewReader(d), &out); err != nil || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("Apply on a slot longer than the base: %v", err)
	}
}

// VerifiedByCaller leaves the hashes to the caller: the same target from
// the right base, a different one (and no error) from a base with other
// content, and still a refusal for a base too short or a wrong length.
func TestApplyVerifiedByCaller(t *testing.T) {
	base := randBytes(12, 300000)
	target := concat(base[:5000], []byte("new"), base[5000:])
	d := makeDelta(t, base, target)
	opts := ApplyOptions{VerifiedByCaller: true}
	var out bytes.Buffer
	if err := ApplyWith(t.Context(), bytes.NewReader(base), bytes.NewReader(d), &out, opts); err != nil || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("ApplyWith on the right base: %v", err)
	}
	other := bytes.Clone(base)
	other[200000] ^= 1
	out.Reset()
	if err := ApplyWith(t.Context(), bytes.NewReader(other), bytes.NewReader(d), &out, opts); err != nil || bytes.Equal(out.Bytes(), target) {
		t.Fatalf("ApplyWith on a base with other content: %v, target equal %v; want no error and another output", err, bytes.Equal(out.Bytes(), target))
	}
	out.Reset()
	if err := ApplyWith(t.Context(), bytes.NewReader(base[:299999]), bytes.NewReader(d), &out, opts); !errors.Is(err, ErrWrongBase) || out.Len() != 0 {
		t.Fatalf("ApplyWith on a short base: %v after %d bytes, want ErrWrongBase before any", err, out.Len())
	}
}

func TestCorruptDelta(t *testing.T) {
	base := randBytes(20, 300000)
	target := concat(base[:100000], randBytes(21, 20000), base[100000:])
	d := makeDelta(t, base, target)
	apply := func(d []byte) error {
		return Apply(context.Background(), bytes.NewReader(base), bytes.NewReader(d), io.Discard)
	}
	if err := apply(d); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 5, headerSize, headerSize + 1, len(d) / 2, len(d) - 1} {
		if err := apply(d[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("delta cut at %d of %d: %v, want ErrCorrupt", cut, len(d), err)
		}
	}
	if err := apply(concat(d, []byte{0})); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: %v, want ErrCorrupt", err)
	}
	bad := bytes.Clone(d)
	bad[0] = 'X'
	if err := apply(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad magic: %v", err)
	}
	// Every single flipped bit in the body is caught: as corrupt DEFLATE,
	// a bad operation, or a target that does not hash right.
	r := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		bad := bytes.Clone(d)
		i := headerSize + r.IntN(len(d)-headerSize)
		bad[i] ^= 1 << r.IntN(8)
		err := apply(bad)
		if err == nil || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTargetMismatch)) {
			t.Fatalf("bit flipped at %d: %v", i, err)
		}
	}
}

// rawDelta builds a delta by hand for base with the given operations.
func rawDelta(t *testing.T, base []byte, ops []byte) []byte {
	t.Helper()
	var d bytes.Buffer
	if _, err := Make(bytes.NewReader(base), int64(len(base)), bytes.NewReader(nil), &d, Options{}); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	fw, _ := flateWriter(&body)
	_, _ = fw.Write(ops)
	_ = fw.Close()
	return concat(d.Bytes()[:headerSize], body.Bytes())
}

func TestMaliciousOperations(t *testing.T) {
	base := randBytes(30, 10000)
	cases := map[string][]byte{
		"copy beyond base": {opCopy, 0x90, 0x4e, 0x10},                                           // offset 10000, 16 bytes
		"copy overflows":   {opCopy, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // huge length
		"unknown op":       {'Z'},
		"huge literal":     {opLiteral, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 'a', 'b'},
		"no end":           {opLiteral, 2, 'a', 'b'},
		"zero-length copy": {opCopy, 0, 0},
		"truncated varint": {opCopy, 0x80},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := Apply(context.Background(), bytes.NewReader(base), bytes.NewReader(rawDelta(t, base, ops)), io.Discard)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
				t.Errorf("Apply allocated %d bytes on a malicious delta", grew)
			}
		})
	}
	t.Run("end with wrong hash", func(t *testing.T) {
		ops := concat([]byte{opLiteral, 2, 'a', 'b', opEnd, 2}, make([]byte, 32))
		err := Apply(context.Background(), bytes.NewReader(base), bytes.NewReader(rawDelta(t, base, ops)), io.Discard)
		if !errors.Is(err, ErrTargetMismatch) {
			t.Fatalf("%v, want ErrTargetMismatch", err)
		}
	})
}

// TestMemoryBound applies a 64 MiB target (half copied, half literal)
// and checks Apply's allocations stay a small constant, and Make's stay
// near its documented index size.
func TestMemoryBound(t *testing.T) {
	const size = 64 << 20
	base := randBytes(40, size)
	target := concat(base[:size/2], randBytes(41, size/2))
	f, err := os.Create(filepath.Join(t.TempDir(), "delta"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := Make(bytes.NewReader(base), size, bytes.NewReader(target), f, Options{Level: 1})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	makeAlloc := after.TotalAlloc - before.TotalAlloc
	if makeAlloc > 16<<20 {
		t.Errorf("Make allocated %d bytes, budget 16 MiB", makeAlloc)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := &hashSink{}
	if err := Apply(context.Background(), bytes.NewReader(base), f, h); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	applyAlloc := after.TotalAlloc - before.TotalAlloc
	if applyAlloc > 2<<20 {
		t.Errorf("Apply of a %d-byte target allocated %d bytes, want under 2 MiB", size, applyAlloc)
	}
	if h.n != size {
		t.Errorf("Apply wrote %d bytes", h.n)
	}
	t.Logf("Make allocated %d bytes (delta %d), Apply %d", makeAlloc, st.DeltaSize, applyAlloc)
}

type hashSink struct{ n int64 }

func (h *hashSink) Write(p []byte) (int, error) { h.n += int64(len(p)); return len(p), nil }

func TestApplyCancelled(t *testing.T) {
	base := randBytes(50, 1<<20)
	d := makeDelta(t, base, randBytes(51, 1<<20))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Apply(ctx, bytes.NewReader(base), bytes.NewReader(d), io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
}

func TestWriteErrorIsNotCorrupt(t *testing.T) {
	base := randBytes(60, 100000)
	d := makeDelta(t, base, randBytes(61, 100000))
	boom := errors.New("disk full")
	err := Apply(context.Background(), bytes.NewReader(base), bytes.NewReader(d), failWriter{boom})
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("%v, want the write error and not ErrCorrupt", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestMakeRefuses(t *testing.T) {
	base := randBytes(70, 1000)
	if _, err := Make(bytes.NewReader(base), 2000, bytes.NewReader(nil), io.Discard, Options{}); !errors.Is(err, ErrBaseTooShort) {
		t.Errorf("base shorter than stated: %v", err)
	}
	for _, o := range []Options{{BlockSize: 8}, {BlockSize: MaxBlockSize + 1}, {Level: 10}} {
		if _, err := Make(bytes.NewReader(base), 1000, bytes.NewReader(nil), io.Discard, o); err == nil {
			t.Errorf("Make accepted %+v", o)
		}
	}
}

func TestReadHeader(t *testing.T) {
	base := randBytes(80, 5000)
	d := makeDelta(t, base, base)
	h, err := ReadHeader(bytes.NewReader(d))
	if err != nil || h.BaseSize != 5000 || h.BlockSize != DefaultBlockSize {
		t.Fatalf("%+v %v", h, err)
	}
}
