package bootctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// FileControl is a boot loader in a JSON file: it keeps the state a loader
// would and, through [FileControl.Boot], does what the loader does on each
// start. The crash-point sweep and VM-less tests drive it; on a development
// machine it stands in for the real loader.
type FileControl struct {
	path    string
	initial Slot
	log     *slog.Logger

	mu sync.RWMutex // orders this value's read-modify-write cycles
}

// fileState is the file's content. Field names are the file format.
type fileState struct {
	Default   Slot `json:"default"`
	Try       Slot `json:"try,omitempty"`
	TriesLeft int  `json:"tries_left"`
	TriesDone int  `json:"tries_done"`
	Bad       Slot `json:"bad,omitempty"`
	Booted    Slot `json:"booted,omitempty"`
}

// NewFileControl keeps its state at path. Until the file exists the device
// counts as freshly installed: initial is the default and the booted slot.
func NewFileControl(path string, initial Slot, log *slog.Logger) (*FileControl, error) {
	if _, err := ParseSlot(string(initial)); err != nil {
		return nil, fmt.Errorf("new file boot control: initial %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FileControl{path: path, initial: initial, log: log}, nil
}

func (c *FileControl) load() (loaderState, Slot, error) {
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return loaderState{Default: c.initial}, c.initial, nil
	}
	if err != nil {
		return loaderState{}, "", err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileState
	if err := dec.Decode(&f); err != nil {
		return loaderState{}, "", fmt.Errorf("%s: %w: %w", c.path, ErrCorrupt, err)
	}
	s := loaderState{Default: f.Default, Try: f.Try, TriesLeft: f.TriesLeft, TriesDone: f.TriesDone, Bad: f.Bad}
	if err := s.check(); err != nil {
		return loaderState{}, "", fmt.Errorf("%s: %w: %w", c.path, ErrCorrupt, err)
	}
	if f.Booted != "" {
		if _, err := ParseSlot(string(f.Booted)); err != nil {
			return loaderState{}, "", fmt.Errorf("%s: %w: booted: %w", c.path, ErrCorrupt, err)
		}
	}
	return s, f.Booted, nil
}

func (c *FileControl) store(s loaderState, booted Slot) error {
	data, err := json.MarshalIndent(fileState{
		Default: s.Default, Try: s.Try, TriesLeft: s.TriesLeft, TriesDone: s.TriesDone, Bad: s.Bad, Booted: booted,
	}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(c.path, append(data, '\n'), 0o600)
}

// Status reports the state in the file.
func (c *FileControl) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, booted, err := c.load()
	if err != nil {
		return Status{}, fmt.Errorf("boot status: %w", err)
	}
	return s.status(booted), nil
}

// update runs one read-modify-write cycle under the lock.
func (c *FileControl) update(ctx context.Context, op string, f func(s loaderState, booted Slot) (loaderState, Slot, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, booted, err := c.load()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ns, nb, err := f(s, booted)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := c.store(ns, nb); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.log.Debug("boot control updated", "op", op, "default", ns.Default, "try", ns.Try,
		"tries_left", ns.TriesLeft, "bad", ns.Bad, "booted", nb)
	return nil
}

// TryNext implements [Control].
func (c *FileControl) TryNext(ctx context.Context, s Slot, tries int) error {
	return c.update(ctx, "try slot next", func(st loaderState, booted Slot) (loaderState, Slot, error) {
		ns, err := st.tryNext(s, tries)
		return ns, booted, err
	})
}

// Bless implements [Control].
func (c *FileControl) Bless(ctx context.Context, s Slot) error {
	return c.update(ctx, "bless slot", func(st loaderState, booted Slot) (loaderState, Slot, error) {
		ns, err := st.bless(s, booted)
		return ns, booted, err
	})
}

// Reject implements [Control].
func (c *FileControl) Reject(ctx context.Context, s Slot) error {
	return c.update(ctx, "reject slot", func(st loaderState, booted Slot) (loaderState, Slot, error) {
		ns, err := st.reject(s)
		return ns, booted, err
	})
}

// Boot simulates a (re)boot: the loader takes a try from the slot on trial
// and boots it, or, with no tries left, marks it bad and boots the default.
// It returns the slot now running.
func (c *FileControl) Boot(ctx context.Context) (Slot, error) {
	var got Slot
	err := c.update(ctx, "simulate boot", func(st loaderState, _ Slot) (loaderState, Slot, error) {
		ns, booted := st.boot()
		got = booted
		return ns, booted, nil
	})
	if err != nil {
		return "", err
	}
	return got, nil
}
