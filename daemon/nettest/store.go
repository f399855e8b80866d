package nettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/atriumroom/atrium/internal/atomicfile"
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
	if err := atomicfile.Write(s.Path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("nettest: save result: %w", err)
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
