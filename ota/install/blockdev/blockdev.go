// Package blockdev opens the inactive slot — a block device such as
// /dev/mmcblk0p3, or a partition image file in development — as the
// device an install writes to (install.Device).
//
// Its Sync both flushes and drops the slot's pages from the kernel's page
// cache, so that the installer's read-back verify reads what the medium
// holds rather than the copy the kernel still has in memory.
package blockdev

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is an open slot. Its methods are safe for concurrent use, as
// *os.File's positional reads and writes are.
type File struct {
	f *os.File
}

// Open opens path for reading and writing. It neither creates nor
// truncates: a slot is a device that exists, and a partition image file
// has the slot's size already.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open slot: %w", err)
	}
	return &File{f: f}, nil
}

// Name is the path the slot was opened from.
func (d *File) Name() string { return d.f.Name() }

// ReadAt reads len(p) bytes at off.
func (d *File) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt writes p at off.
func (d *File) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

// Size is the slot's capacity: seeking to the end works for block devices,
// whose stat size is 0, as well as for files.
func (d *File) Size() (int64, error) {
	n, err := d.f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of slot %s: %w", d.f.Name(), err)
	}
	return n, nil
}

// Sync makes every write durable (fsync, which on a block device also
// flushes the drive's cache), then drops the now clean pages from the page
// cache so that later reads come from the medium.
func (d *File) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync slot %s: %w", d.f.Name(), err)
	}
	if err := unix.Fadvise(int(d.f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop page cache of slot %s: %w", d.f.Name(), err)
	}
	return nil
}

// Close closes the slot.
func (d *File) Close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close slot %s: %w", d.f.Name(), err)
	}
	return nil
}
