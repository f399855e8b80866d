// Package atomicfile replaces small state files so that a power cut leaves
// either the old content or the new, never a mix: roomd's settings, PIN
// state, camera presets and network-test results all live in such files.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, readable as perm: a temporary file in the
// same directory is written and synced, renamed over path, and the
// directory synced so that the rename itself is durable. A missing
// directory is created private (0700). On failure path is untouched and no
// temporary file remains.
func Write(path string, data []byte, perm os.FileMode) error {
	if err := write(path, data, &perm); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// WriteKeepMode is Write without setting a mode, for file systems whose
// modes come from their mount options: on FAT (the ESP) chmod by anyone but
// the mount's owner fails, and would mean nothing anyway.
func WriteKeepMode(path string, data []byte) error {
	if err := write(path, data, nil); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

func write(path string, data []byte, perm *os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // finds nothing after the rename
	// Mode first: the data is never readable with the default mode.
	if perm != nil {
		if err := f.Chmod(*perm); err != nil {
			_ = f.Close()
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the renames and creations in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
