package delta

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

const (
	magic = "ATRDLT01"
	// headerSize is magic, base length, base SHA-256, block size.
	headerSize = len(magic) + 8 + sha256.Size + 4

	opCopy    = 'C'
	opLiteral = 'L'
	opEnd     = 'E'

	// DefaultBlockSize is the match granularity: small enough that a
	// change costs little more than itself, large enough that the base's
	// index stays small (a 256 MiB base: 65536 blocks).
	DefaultBlockSize = 4096
	// MinBlockSize and MaxBlockSize bound Options.BlockSize and what
	// Apply accepts in a header.
	MinBlockSize = 64
	MaxBlockSize = 1 << 20
)

type header struct {
	baseSize  int64
	baseSum   [sha256.Size]byte
	blockSize int
}

func (h header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.baseSize))
	b = append(b, h.baseSum[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.blockSize))
	return b
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) != headerSize || string(b[:len(magic)]) != magic {
		return h, fmt.Errorf("%w: not a delta (bad magic)", ErrCorrupt)
	}
	b = b[len(magic):]
	size := binary.BigEndian.Uint64(b)
	if size > 1<<62 {
		return h, fmt.Errorf("%w: base length %d out of range", ErrCorrupt, size)
	}
	h.baseSize = int64(size)
	copy(h.baseSum[:], b[8:])
	h.blockSize = int(binary.BigEndian.Uint32(b[8+sha256.Size:]))
	if h.blockSize < MinBlockSize || h.blockSize > MaxBlockSize {
		return h, fmt.Errorf("%w: block size %d out of range", ErrCorrupt, h.blockSize)
	}
	return h, nil
}
