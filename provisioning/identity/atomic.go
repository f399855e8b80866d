package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// createAtomic writes a new file at path with mode 0600, all or nothing: the
// data goes to a temporary file in the same directory, is synced, and is
// then hard-linked to path. A link, unlike a rename, fails when path already
// exists, so an identity is never overwritten, even by a racing process; the
// caller gets an error wrapping fs.ErrExist and loads the winner's key. The
// directory is synced last so that the new name survives a power cut.
func createAtomic(path string, data []byte) (err error) {
	dir, name := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	// The temporary name is never left behind, whatever happens.
	defer func() {
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil {
			err = fmt.Errorf("remove temporary file: %w", rmErr)
		}
	}()
	// CreateTemp makes 0600 files already; Chmod states it against umask
	// surprises and documents the intent.
	if err := tmp.Chmod(0o600); err != nil {
		return errors.Join(fmt.Errorf("chmod temporary file: %w", err), tmp.Close())
	}
	if _, err := tmp.Write(data); err != nil {
		return errors.Join(fmt.Errorf("write temporary file: %w", err), tmp.Close())
	}
	if err := tmp.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync temporary file: %w", err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("link %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync directory %s: %w", dir, err), d.Close())
	}
	return d.Close()
}
