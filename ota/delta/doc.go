// Package delta makes and applies binary deltas between root-filesystem
// images, so a device downloads only what changed between the image in its
// running slot (the base) and the new one (the target).
//
// Make indexes the base in fixed-size blocks and slides a rolling hash over
// the target one byte at a time, rsync-style: a window whose hash matches a
// base block, and whose bytes really are that block's, becomes a copy from
// the base; everything else becomes literal bytes. Content that a change
// merely shifted (a file that grew moves everything packed after it) still
// matches, at its new offset. The target is read once, as a stream.
//
// A delta is a small fixed header followed by a DEFLATE-compressed stream
// of operations:
//
//	header  "ATRDLT01" | base length (u64 BE) | base SHA-256 | block size (u32 BE)
//	ops     'C' offset length   copy length bytes of the base from offset (uvarints)
//	        'L' length bytes    literal bytes
//	        'E' length SHA-256  end: the target's length (uvarint) and hash
//
// The target's length and hash come last because Make streams the target
// and knows them only at its end. Apply checks the base's length and hash
// before it writes a byte, streams every operation with fixed buffers
// (memory does not grow with the image or with a length a corrupt delta
// claims), and checks the target's length and hash at the end: only a nil
// error from Apply means dst received exactly the target. The base is read
// as its first length bytes, so a slot larger than the image it holds (a
// partition) is a valid base.
package delta
