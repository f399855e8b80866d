package delta

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Options tunes Make. The zero value is the default.
type Options struct {
	// BlockSize is the match granularity in bytes (0: DefaultBlockSize;
	// MinBlockSize to MaxBlockSize).
	BlockSize int
	// Level is the DEFLATE level for the operation stream, 1 (fastest) to
	// 9 (smallest); 0 means 6.
	Level int
}

// Stats describes a delta Make wrote.
type Stats struct {
	BaseSize, TargetSize int64
	// CopiedBytes of the target come from the base, LiteralBytes from the
	// delta itself (before compression).
	CopiedBytes, LiteralBytes int64
	CopyOps, LiteralOps       int
	// DeltaSize is the number of bytes written to w.
	DeltaSize int64
}

// rolling hash: h = sum x[i]*prime^(n-1-i) mod 2^32 (Rabin-Karp). Its low
// bits are weak (bit 0 is the parity of the window), so the filter uses
// the high bits and every hit is confirmed against the base's bytes.
const prime = 16777619

func hashWindow(b []byte) uint32 {
	var h uint32
	for _, c := range b {
		h = h*prime + uint32(c)
	}
	return h
}

// filterBits sizes the presence filter: a 2 MiB bitset that rejects most
// window positions before the map lookup.
const filterBits = 24

type index struct {
	base      io.ReaderAt
	blockSize int
	hashes    []uint32           // per full block of the base
	blocks    map[uint32][]int32 // hash → first blocks with it
	filter    []uint64
	scratch   []byte
}

// maxCandidates caps the blocks kept per hash: an image full of
// identical blocks (zeros) needs only one of them to match.
const maxCandidates = 4

func buildIndex(base io.ReaderAt, size int64, bs int) (*index, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	n := size / int64(bs)
	if n > 1<<31-1 {
		return nil, sum, fmt.Errorf("base of %d bytes has too many blocks of %d", size, bs)
	}
	idx := &index{
		base: base, blockSize: bs,
		hashes:  make([]uint32, 0, n),
		blocks:  make(map[uint32][]int32, n),
		filter:  make([]uint64, 1<<filterBits/64),
		scratch: make([]byte, bs),
	}
	chunk := max(bs, 1<<20/bs*bs)
	buf := make([]byte, chunk)
	h := sha256.New()
	for off := int64(0); off < size; {
		want := min(int64(chunk), size-off)
		got, err := base.ReadAt(buf[:want], off)
		if int64(got) < want {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, sum, fmt.Errorf("%w: read %d of %d bytes", ErrBaseTooShort, off+int64(got), size)
			}
			return nil, sum, fmt.Errorf("read base at %d: %w", off, err)
		}
		h.Write(buf[:want])
		for i := 0; i+bs <= int(want); i += bs {
			wh := hashWindow(buf[i : i+bs])
			blk := int32(len(idx.hashes))
			idx.hashes = append(idx.hashes, wh)
			if c := idx.blocks[wh]; len(c) < maxCandidates {
				idx.blocks[wh] = append(c, blk)
			}
			idx.filter[(wh>>(32-filterBits))/64] |= 1 << ((wh >> (32 - filterBits)) % 64)
		}
		off += want
	}
	copy(sum[:], h.Sum(nil))
	return idx, sum, nil
}

func (x *index) mayHave(h uint32) bool {
	k := h >> (32 - filterBits)
	return x.filter[k/64]&(1<<(k%64)) != 0
}

// same reports whether base block blk holds exactly window.
func (x *index) same(blk int32, window []byte) (bool, error) {
	if _, err := x.base.ReadAt(x.scratch, int64(blk)*int64(x.blockSize)); err != nil {
		return false, fmt.Errorf("read base block %d: %w", blk, err)
	}
	return bytes.Equal(x.scratch, window), nil
}

// find returns the base block holding window, trying next first (the
// block after the previous match, where unchanged data continues).
func (x *index) find(h uint32, window []byte, next int32) (int32, bool, error) {
	if next >= 0 && int(next) < len(x.hashes) && x.hashes[next] == h {
		ok, err := x.same(next, window)
		if err != nil || ok {
			return next, ok, err
		}
	}
	if !x.mayHave(h) {
		return 0, false, nil
	}
	for _, blk := range x.blocks[h] {
		if blk == next {
			continue
		}
		ok, err := x.same(blk, window)
		if err != nil || ok {
			return blk, ok, err
		}
	}
	return 0, false, nil
}

// countWriter counts what reaches w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// opWriter encodes operations, merging adjacent copies into one.
type opWriter struct {
	w            *bufio.Writer
	st           *Stats
	cOff, cLen   int64
	varint       [binary.MaxVarintLen64 + 1]byte
	writeFailure error
}

func (o *opWriter) op(code byte, a int64) {
	b := append(o.varint[:0], code)
	b = binary.AppendUvarint(b, uint64(a))
	o.write(b)
}

func (o *opWriter) write(b []byte) {
	if o.writeFailure == nil {
		_, o.writeFailure = o.w.Write(b)
	}
}

func (o *opWriter) flushCopy() {
	if o.cLen == 0 {
		return
	}
	o.op(opCopy, o.cOff)
	o.write(binary.AppendUvarint(o.varint[:0], uint64(o.cLen)))
	o.st.CopyOps++
	o.cLen = 0
}

func (o *opWriter) copyOp(off, n int64) {
	if o.cLen > 0 && o.cOff+o.cLen == off {
		o.cLen += n
	} else {
		o.flushCopy()
		o.cOff, o.cLen = off, n
	}
	o.st.CopiedBytes += n
}

func (o *opWriter) literal(b []byte) {
	if len(b) == 0 {
		return
	}
	o.flushCopy()
	o.op(opLiteral, int64(len(b)))
	o.write(b)
	o.st.LiteralOps++
	o.st.LiteralBytes += int64(len(b))
}

// Make writes to w a delta that turns the first baseSize bytes of base
// into target. It reads the base twice (once to index and hash it, then
// the blocks that match) and the target once, as a stream. Memory grows
// with the number of blocks in the base (the index, tens of bytes per
// block, plus a fixed 2 MiB filter) and not with the target, which passes
// through one buffer of max(1 MiB, 8 blocks): a 64 MiB base and target
// allocate about 7 MB in all (TestMemoryBound).
func Make(base io.ReaderAt, baseSize int64, target io.Reader, w io.Writer, opts Options) (Stats, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < MinBlockSize || bs > MaxBlockSize {
		return Stats{}, fmt.Errorf("make delta: block size %d outside %d..%d", bs, MinBlockSize, MaxBlockSize)
	}
	level := opts.Level
	if level == 0 {
		level = 6
	}
	if level < 1 || level > 9 {
		return Stats{}, fmt.Errorf("make delta: level %d outside 1..9", level)
	}
	if baseSize < 0 {
		return Stats{}, fmt.Errorf("make delta: base size %d is negative", baseSize)
	}
	idx, baseSum, err := buildIndex(base, baseSize, bs)
	if err != nil {
		return Stats{}, fmt.Errorf("make delta: index base: %w", err)
	}
	st := Stats{BaseSize: baseSize}
	cw := &countWriter{w: w}
	if _, err := cw.Write(header{baseSize: baseSize, baseSum: baseSum, blockSize: bs}.marshal()); err != nil {
		return Stats{}, fmt.Errorf("make delta: write header: %w", err)
	}
	fw, err := flate.NewWriter(cw, level)
	if err != nil {
		return Stats{}, fmt.Errorf("make delta: %w", err)
	}
	ops := &opWriter{w: bufio.NewWriterSize(fw, 64<<10), st: &st}
	th := sha256.New()
	if err := scan(idx, io.TeeReader(target, th), ops, &st); err != nil {
		return Stats{}, fmt.Errorf("make delta: %w", err)
	}
	ops.flushCopy()
	ops.op(opEnd, st.TargetSize)
	ops.write(th.Sum(nil))
	if ops.writeFailure == nil {
		ops.writeFailure = ops.w.Flush()
	}
	if ops.writeFailure == nil {
		ops.writeFailure = fw.Close()
	}
	if ops.writeFailure != nil {
		return Stats{}, fmt.Errorf("make delta: write: %w", ops.writeFailure)
	}
	st.DeltaSize = cw.n
	return st, nil
}

// scan slides the window over the target. buf[lit:p] is the pending
// literal, buf[p:p+bs] the window; when fewer than bs bytes remain past p
// the pending literal is written and the rest moved to the front before
// reading more, so the buffer never grows.
func scan(idx *index, target io.Reader, ops *opWriter, st *Stats) error {
	bs := idx.blockSize
	buf := make([]byte, 0, max(1<<20, 8*bs))
	p, lit := 0, 0
	eof := false
	valid := false
	var h uint32
	next := int32(-1)
	// pow is prime^(bs-1): the weight of the byte leaving the window.
	pow := uint32(1)
	for range bs - 1 {
		pow *= prime
	}
	for {
		if len(buf)-p < bs {
			if eof {
				break
			}
			ops.literal(buf[lit:p])
			n := copy(buf[:cap(buf)], buf[p:])
			buf = buf[:n]
			p, lit = 0, 0
			got, err := io.ReadFull(target, buf[n:cap(buf)])
			buf = buf[:n+got]
			st.TargetSize += int64(got)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				eof = true
			} else if err != nil {
				return fmt.Errorf("read target: %w", err)
			}
			if ops.writeFailure != nil {
				return fmt.Errorf("write: %w", ops.writeFailure)
			}
			continue
		}
		if !valid {
			h = hashWindow(buf[p : p+bs])
			valid = true
		}
		if (next >= 0 && int(next) < len(idx.hashes) && idx.hashes[next] == h) || idx.mayHave(h) {
			blk, ok, err := idx.find(h, buf[p:p+bs], next)
			if err != nil {
				return err
			}
			if ok {
				ops.literal(buf[lit:p])
				ops.copyOp(int64(blk)*int64(bs), int64(bs))
				p += bs
				lit = p
				valid = false
				next = blk + 1
				continue
			}
		}
		if p+bs < len(buf) {
			h = (h-uint32(buf[p])*pow)*prime + uint32(buf[p+bs])
		} else {
			valid = false
		}
		p++
	}
	ops.literal(buf[lit:])
	return nil
}
