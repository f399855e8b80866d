package nettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoResult is returned by Store.Load when no test has been saved yet.
var ErrNoResult = errors.New("nettest: no saved result")

// Store keeps the last Result in a JSON file, for the fleet console.
//
// The file holds no secrets (a Result never has credentials), but it does
// hold the site's public address (Check.Reflexive): it is written 0600 and
// served through roomd's API rather than read by others directly.
type Store struct {
	Path string
}

// Save replaces the stored result atomically: a reader sees the old result
// or the new one, never a part, even across a power cut.
func (s Store) Save(r Result) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("nettest: encode result: %w", err)
	}
	dir := filepath.Dir(s.Path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(s.Path)+".*")
	if err != nil {
		return fmt.Errorf("nettest: save result: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op failing with ENOENT
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path)
	}
	if err != nil {
		return fmt.Errorf("nettest: save result to %s: %w", s.Path, err)
	}
	// The rename is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Load returns the stored result, or ErrNoResult when there is none.
func (s Store) Load() (Result, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, ErrNoResult
	}
	if err != nil {
		return Result{}, fmt.Errorf("nettest: load result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("nettest: load result from %s: %w", s.Path, err)
	}
	return r, nil
}
