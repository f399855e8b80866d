package devctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// storeVersion is written into the file so a later roomd can migrate it.
const storeVersion = 1

// Store keeps presets in one JSON file, rewritten whole on every change
// (write a temporary file, fsync, rename), so a power cut leaves either the
// old or the new file, never half of one.
type Store struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	presets map[string][]Preset // by device ID, sorted by name
}

type storeFile struct {
	Version int                 `json:"version"`
	Devices map[string][]Preset `json:"devices"`
}

// OpenStore loads path. A missing file is an empty store. A file that does
// not parse is moved aside to path.corrupt-<time> (kept for the admin, with
// the reason logged) and the store starts empty, because a room must come up
// even when its state is damaged.
func OpenStore(path string, now func() time.Time, log *slog.Logger) (*Store, error) {
	s := &Store{path: path, now: now, presets: map[string][]Preset{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read presets: %w", err)
	}
	var f storeFile
	err = json.Unmarshal(data, &f)
	if err == nil && f.Version != storeVersion {
		err = fmt.Errorf("version %d, want %d", f.Version, storeVersion)
	}
	if err == nil {
		for dev, ps := range f.Devices {
			for _, p := range ps {
				if verr := validName(p.Name); verr != nil {
					err = fmt.Errorf("device %q: %w", dev, verr)
				}
			}
		}
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%s", path, now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("presets file %s is damaged (%v) and could not be moved aside: %w", path, err, rerr)
		}
		log.Error("presets file is damaged; moved aside, starting without presets", "path", path, "kept", aside, "err", err)
		return s, nil
	}
	for dev, ps := range f.Devices {
		s.presets[dev] = sortPresets(ps)
	}
	return s, nil
}

func sortPresets(ps []Preset) []Preset {
	slices.SortFunc(ps, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// List returns devID's presets, sorted by name.
func (s *Store) List(devID string) []Preset {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.presets[devID])
}

// Get returns one preset.
func (s *Store) Get(devID, name string) (Preset, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.presets[devID], func(p Preset) bool { return p.Name == name })
	if i < 0 {
		return Preset{}, false
	}
	return s.presets[devID][i], true
}

// Put adds or replaces a preset and saves the file; on a failed save the
// store keeps its previous contents.
func (s *Store) Put(devID string, p Preset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := slices.Clone(s.presets[devID])
	if i := slices.IndexFunc(ps, func(q Preset) bool { return q.Name == p.Name }); i >= 0 {
		ps[i] = p
	} else if len(ps) >= MaxPresets {
		return fmt.Errorf("%w: device %q already has %d presets; delete one first", ErrInvalidPreset, devID, MaxPresets)
	} else {
		ps = append(ps, p)
	}
	return s.commit(devID, sortPresets(ps))
}

// Delete removes a preset and saves the file.
func (s *Store) Delete(devID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.presets[devID]
	i := slices.IndexFunc(ps, func(p Preset) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("device %q: preset %q: %w", devID, name, ErrNoPreset)
	}
	return s.commit(devID, slices.Delete(slices.Clone(ps), i, i+1))
}

// commit writes the store with devID's presets replaced; s.mu is held.
func (s *Store) commit(devID string, ps []Preset) error {
	next := make(map[string][]Preset, len(s.presets)+1)
	for k, v := range s.presets {
		next[k] = v
	}
	if len(ps) == 0 {
		delete(next, devID)
	} else {
		next[devID] = ps
	}
	data, err := json.MarshalIndent(storeFile{Version: storeVersion, Devices: next}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode presets: %w", err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("save presets: %w", err)
	}
	s.presets = next
	return nil
}
