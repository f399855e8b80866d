package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// BlockSize is the data and hash block size our images use.
const BlockSize = 4096

// ErrNoTree means the image is a squashfs with nothing after it: an image
// built before the root was checked, which boots from its partition
// directly.
var ErrNoTree = errors.New("no dm-verity hash tree after the file system")

// ErrBadImage means the bytes are not a squashfs or its hash tree is not
// one we can use.
var ErrBadImage = errors.New("not an Atrium root image")

// Tree is what the initramfs needs to open a slot with dm-verity.
type Tree struct {
	// RootHash is the hex SHA-256 root of the tree.
	RootHash string
	// HashOffset is where the superblock starts, in bytes: the squashfs's
	// size, rounded up to a block.
	HashOffset int64
	// DataBlocks is how many blocks the tree covers.
	DataBlocks uint64
}

// Layout of the squashfs superblock: the magic at 0 and, at 40, the
// number of bytes the file system uses (mksquashfs pads the file to 4 KiB
// after them).
const (
	squashfsMagic     = 0x73717368
	squashfsBytesUsed = 40
)

// The dm-verity superblock (format version 1) as veritysetup writes it.
const (
	sbSize       = 512
	sbSignature  = "verity\x00\x00"
	sbVersion    = 8
	sbHashType   = 12
	sbAlgorithm  = 32
	sbDataBlock  = 64
	sbHashBlock  = 68
	sbDataBlocks = 72
	sbSaltSize   = 80
	sbSalt       = 88
	maxSalt      = 256
)

// Read finds the tree after the squashfs in img (a slot's block device or
// an image file) and derives its root hash. A squashfs with no verity
// superblock after it is [ErrNoTree]; a superblock or tree we cannot use,
// or bytes that are no squashfs, is [ErrBadImage], saying which field is
// wrong.
func Read(img io.ReaderAt) (*Tree, error) {
	var sq [squashfsBytesUsed + 8]byte
	if _, err := img.ReadAt(sq[:], 0); err != nil {
		return nil, fmt.Errorf("read squashfs superblock: %w", err)
	}
	if binary.LittleEndian.Uint32(sq[:4]) != squashfsMagic {
		return nil, fmt.Errorf("%w: no squashfs magic at byte 0", ErrBadImage)
	}
	used := binary.LittleEndian.Uint64(sq[squashfsBytesUsed:])
	if used == 0 || used > 1<<50 {
		return nil, fmt.Errorf("%w: squashfs bytes_used %d", ErrBadImage, used)
	}
	off := int64((used + BlockSize - 1) / BlockSize * BlockSize)
	var sb [sbSize]byte
	if _, err := img.ReadAt(sb[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNoTree
		}
		return nil, fmt.Errorf("read verity superblock at byte %d: %w", off, err)
	}
	if string(sb[:8]) != sbSignature {
		// In a partition, what follows an image without a tree is
		// whatever the partition held: zeros, or a longer image's
		// leftovers. The image itself was checked against TUF, so it
		// is an image without a tree, not a damaged one.
		return nil, ErrNoTree
	}
	le := binary.LittleEndian
	field := func(name string, got, want uint64) error {
		if got != want {
			return fmt.Errorf("%w: verity superblock at byte %d: %s is %d, want %d", ErrBadImage, off, name, got, want)
		}
		return nil
	}
	t := &Tree{HashOffset: off, DataBlocks: le.Uint64(sb[sbDataBlocks:])}
	for _, err := range []error{
		field("version", uint64(le.Uint32(sb[sbVersion:])), 1),
		field("hash type", uint64(le.Uint32(sb[sbHashType:])), 1),
		field("data block size", uint64(le.Uint32(sb[sbDataBlock:])), BlockSize),
		field("hash block size", uint64(le.Uint32(sb[sbHashBlock:])), BlockSize),
		// The tree must cover exactly the file system's blocks: fewer
		// would leave blocks unchecked.
		field("data blocks", t.DataBlocks, uint64(off/BlockSize)),
	} {
		if err != nil {
			return nil, err
		}
	}
	if alg := string(bytes.TrimRight(sb[sbAlgorithm:sbAlgorithm+32], "\x00")); alg != "sha256" {
		return nil, fmt.Errorf("%w: verity superblock at byte %d: hash algorithm %q, want sha256", ErrBadImage, off, alg)
	}
	saltSize := int(le.Uint16(sb[sbSaltSize:]))
	if saltSize > maxSalt {
		return nil, fmt.Errorf("%w: verity superblock at byte %d: salt of %d bytes, at most %d", ErrBadImage, off, saltSize, maxSalt)
	}
	salt := sb[sbSalt : sbSalt+saltSize]

	// The tree starts in the block after the superblock, top level
	// first; with a single data block there is no tree and the root is
	// that block's hash.
	top := off + BlockSize
	if t.DataBlocks == 1 {
		top = 0
	}
	block := make([]byte, BlockSize)
	if _, err := img.ReadAt(block, top); err != nil {
		return nil, fmt.Errorf("%w: read the tree's top block at byte %d: %w", ErrBadImage, top, err)
	}
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	t.RootHash = hex.EncodeToString(h.Sum(nil))
	return t, nil
}

// Kernel command line of the contract with the initramfs script
// (rootfs/overlay/etc/initramfs-tools/scripts/local-top/atrium-verity).
const (
	// MappedRoot is the device the script creates.
	MappedRoot = "/dev/mapper/atrium-root"
	// Param carries "ROOTHASH,HASHOFFSET".
	Param = "atrium.verity"
)

// RootArgs returns the kernel arguments that say which root slot boots:
// with a tree, the checked device the initramfs creates and the tree's
// root hash and offset; without one (t nil), the slot's partition.
func RootArgs(slot string, t *Tree) []string {
	if t == nil {
		return []string{"root=PARTLABEL=root-" + slot}
	}
	return []string{"root=" + MappedRoot, Param + "=" + t.RootHash + "," + strconv.FormatInt(t.HashOffset, 10)}
}

// WithRootArgs returns the options of a boot entry with its root= and
// atrium.verity= arguments replaced by root (from [RootArgs]), in the
// place of the first root= argument; every other argument is kept.
func WithRootArgs(options []string, root []string) []string {
	var out []string
	placed := false
	for _, o := range options {
		if strings.HasPrefix(o, "root=") || strings.HasPrefix(o, Param+"=") {
			if !placed {
				out = append(out, root...)
				placed = true
			}
			continue
		}
		out = append(out, o)
	}
	if !placed {
		out = slices.Concat(root, out)
	}
	return out
}
