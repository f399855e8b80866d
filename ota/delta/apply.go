package delta

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// copyChunk bounds each read and write, and how much is copied between
// two looks at the context.
const copyChunk = 256 << 10

// Header is what a delta says about itself before any operation.
type Header struct {
	BaseSize  int64
	BaseSHA   [sha256.Size]byte
	BlockSize int
}

// ReadHeader reads and checks a delta's header from r (and nothing
// more), e.g. to tell which base a delta file is for.
func ReadHeader(r io.Reader) (Header, error) {
	b := make([]byte, headerSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return Header{}, fmt.Errorf("read delta header: %w: %w", ErrCorrupt, err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return Header{}, fmt.Errorf("read delta header: %w", err)
	}
	return Header{BaseSize: h.baseSize, BaseSHA: h.baseSum, BlockSize: h.blockSize}, nil
}

// Apply writes to dst the target that delta makes from base. It first
// checks that base's first BaseSize bytes have the SHA-256 the delta was
// made for (ErrWrongBase, nothing written), then streams the operations
// with fixed buffers (about 300 KiB plus DEFLATE's window), checking ctx
// between chunks, and finally checks the target's length and SHA-256
// (ErrTargetMismatch). A malformed or truncated delta is ErrCorrupt. On
// any error dst may hold a partial target and must be discarded.
func Apply(ctx context.Context, base io.ReaderAt, delta io.Reader, dst io.Writer) error {
	return ApplyWith(ctx, base, delta, dst, ApplyOptions{})
}

// ApplyOptions change what Apply checks.
type ApplyOptions struct {
	// VerifiedByCaller skips Apply's two whole-image hash passes, the
	// base's before the first write and the target's as it is written,
	// for a caller that compares dst with a hash it trusts afterwards in
	// any case (package install reads the slot back). Where SHA-256 is
	// slow (an emulated CPU) each pass costs as much as the write itself.
	// A base with other content then shows up as a wrong target in the
	// caller's check: Apply returns ErrWrongBase only for a base shorter
	// than the delta's, and ErrTargetMismatch only for a wrong length.
	VerifiedByCaller bool
}

// ApplyWith is Apply with options.
func ApplyWith(ctx context.Context, base io.ReaderAt, delta io.Reader, dst io.Writer, opts ApplyOptions) error {
	br := bufio.NewReaderSize(delta, 64<<10)
	h, err := ReadHeader(br)
	if err != nil {
		return fmt.Errorf("apply delta: %w", err)
	}
	buf := make([]byte, copyChunk)
	check := checkBase
	if opts.VerifiedByCaller {
		check = checkBaseLength
	}
	if err := check(ctx, base, h, buf); err != nil {
		return fmt.Errorf("apply delta: %w", err)
	}
	// br is an io.ByteReader, so flate reads no further than its stream's
	// end and trailing data stays detectable.
	fr := flate.NewReader(br)
	defer func() { _ = fr.Close() }()
	ops := bufio.NewReaderSize(fr, 32<<10)
	var th hash.Hash
	if !opts.VerifiedByCaller {
		th = sha256.New()
	}
	out := &trackWriter{w: dst, h: th}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("apply delta: %w", err)
		}
		code, err := ops.ReadByte()
		if err != nil {
			return fmt.Errorf("apply delta: %w: operation at target offset %d: %w", ErrCorrupt, out.n, eofUnexpected(err))
		}
		switch code {
		case opCopy:
			off, err1 := binary.ReadUvarint(ops)
			n, err2 := binary.ReadUvarint(ops)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("apply delta: %w: copy at target offset %d: %w", ErrCorrupt, out.n, eofUnexpected(err))
			}
			if n == 0 || off > uint64(h.BaseSize) || n > uint64(h.BaseSize)-off {
				return fmt.Errorf("apply delta: %w: copy of %d bytes from %d is outside the base's %d", ErrCorrupt, n, off, h.BaseSize)
			}
			if err := copyFrom(ctx, out, io.NewSectionReader(base, int64(off), int64(n)), int64(n), buf); err != nil {
				return fmt.Errorf("apply delta: copy %d bytes from base offset %d: %w", n, off, err)
			}
		case opLiteral:
			n, err := binary.ReadUvarint(ops)
			if err != nil {
				return fmt.Errorf("apply delta: %w: literal at target offset %d: %w", ErrCorrupt, out.n, eofUnexpected(err))
			}
			if n == 0 || n > 1<<62 {
				return fmt.Errorf("apply delta: %w: literal length %d", ErrCorrupt, n)
			}
			if err := copyFrom(ctx, out, ops, int64(n), buf); err != nil {
				if out.err == nil {
					err = fmt.Errorf("%w: %w", ErrCorrupt, eofUnexpected(err))
				}
				return fmt.Errorf("apply delta: literal of %d bytes at target offset %d: %w", n, out.n, err)
			}
		case opEnd:
			return finish(ops, br, out, th)
		default:
			return fmt.Errorf("apply delta: %w: unknown operation %#x at target offset %d", ErrCorrupt, code, out.n)
		}
	}
}

func finish(ops *bufio.Reader, br *bufio.Reader, out *trackWriter, th hash.Hash) error {
	size, err := binary.ReadUvarint(ops)
	if err != nil {
		return fmt.Errorf("apply delta: %w: end: %w", ErrCorrupt, eofUnexpected(err))
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(ops, sum[:]); err != nil {
		return fmt.Errorf("apply delta: %w: end: %w", ErrCorrupt, eofUnexpected(err))
	}
	// The compressed stream must end here, and the delta with it.
	if _, err := ops.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("apply delta: %w: data after the end operation (%v)", ErrCorrupt, err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("apply delta: %w: data after the compressed stream (%v)", ErrCorrupt, err)
	}
	if uint64(out.n) != size {
		return fmt.Errorf("apply delta: %w: wrote %d bytes, the target has %d", ErrTargetMismatch, out.n, size)
	}
	if th == nil {
		return nil
	}
	if got := th.Sum(nil); !bytes.Equal(got, sum[:]) {
		return fmt.Errorf("apply delta: %w: sha256 %x, the target's is %x", ErrTargetMismatch, got, sum)
	}
	return nil
}

// checkBase hashes the base's first BaseSize bytes.
func checkBase(ctx context.Context, base io.ReaderAt, h Header, buf []byte) error {
	bh := sha256.New()
	for off := int64(0); off < h.BaseSize; {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := min(int64(len(buf)), h.BaseSize-off)
		got, err := base.ReadAt(buf[:want], off)
		bh.Write(buf[:got])
		if int64(got) < want {
			if err == nil || errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: base has %d bytes, the delta's has %d", ErrWrongBase, off+int64(got), h.BaseSize)
			}
			return fmt.Errorf("read base at %d: %w", off, err)
		}
		off += want
	}
	if got := bh.Sum(nil); !bytes.Equal(got, h.BaseSHA[:]) {
		return fmt.Errorf("%w: base sha256 %x, the delta's is %x", ErrWrongBase, got, h.BaseSHA)
	}
	return nil
}

// checkBaseLength checks only that the base has the delta's length: its
// last byte can be read.
func checkBaseLength(_ context.Context, base io.ReaderAt, h Header, buf []byte) error {
	if h.BaseSize == 0 {
		return nil
	}
	got, err := base.ReadAt(buf[:1], h.BaseSize-1)
	if got == 1 {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: base is shorter than the delta's %d bytes", ErrWrongBase, h.BaseSize)
	}
	return fmt.Errorf("read base at %d: %w", h.BaseSize-1, err)
}

// trackWriter writes to w and the target's hash (when there is one), counting bytes and
// remembering a write failure so it is not mistaken for a bad delta.
type trackWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	err error
}

func (t *trackWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if t.h != nil {
		t.h.Write(p[:n])
	}
	t.n += int64(n)
	if err != nil {
		t.err = fmt.Errorf("write target at %d: %w", t.n, err)
		return n, t.err
	}
	return n, nil
}

// copyFrom copies exactly n bytes from src to out in chunks of buf,
// checking ctx between them.
func copyFrom(ctx context.Context, out *trackWriter, src io.Reader, n int64, buf []byte) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		got, err := io.ReadFull(src, buf[:min(int64(len(buf)), n)])
		if got > 0 {
			if _, werr := out.Write(buf[:got]); werr != nil {
				return werr
			}
			n -= int64(got)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eofUnexpected turns a clean EOF in the middle of a delta into
// io.ErrUnexpectedEOF: there the delta is truncated.
func eofUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
