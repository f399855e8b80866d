package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Erase deletes the identity in stateDir, file key or TPM blobs, for a
// factory reset: the next Open makes a new identity, which must enroll
// again. The TPM keeps nothing of ours (the key was never made persistent
// in it, and the SRK is re-derived), so deleting the blobs destroys the TPM
// key for good. An absent identity is no error. The caller closes any open
// Identity first.
func Erase(stateDir string) error {
	var errs []error
	for _, name := range []string{FileKeyName, TPMKeyName} {
		if err := os.Remove(filepath.Join(stateDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("identity: erase: %w", err)
	}
	// The deletion must survive a power cut, or the old identity returns.
	if err := syncDir(stateDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("identity: erase: %w", err)
	}
	return nil
}
