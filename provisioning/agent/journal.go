package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
)

// Journal states of a command.
const (
	// cmdStarted is written (and synced) before a command runs: found
	// after a restart, the command must not run again.
	cmdStarted = "started"
	// cmdDone: its result is in the outbox.
	cmdDone = "done"
	// cmdAcked: the server stored its result. Kept until the server stops
	// listing the command, so a late listing cannot run it again.
	cmdAcked = "acked"
)

// jentry is one command's journal file.
type jentry struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	State string    `json:"state"`
	At    time.Time `json:"at"`
	// Wipe marks an accepted factory reset: once its result is acked,
	// the device is wiped. A rejected one never has it.
	Wipe bool `json:"wipe,omitempty"`
}

// journal is the command journal: one small file per command ID.
type journal struct {
	dir string
	log *slog.Logger
}

func openJournal(dir string, log *slog.Logger) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("command journal: %w", err)
	}
	return &journal{dir: dir, log: log}, nil
}

// fileName is a digest of the ID: IDs come from the server and must not
// name paths.
func (j *journal) fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(j.dir, hex.EncodeToString(sum[:16])+".json")
}

// errDamagedEntry marks a journal file that exists but cannot be read: the
// command was seen, and is treated as started.
var errDamagedEntry = errors.New("command journal entry damaged")

// get returns id's entry; found false when there is none.
func (j *journal) get(id string) (jentry, bool, error) {
	data, err := readSmall(j.fileName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return jentry{}, false, nil
	}
	var e jentry
	if err == nil {
		err = json.Unmarshal(data, &e)
	}
	if err == nil && e.ID != id {
		err = fmt.Errorf("holds command %q", e.ID)
	}
	if err != nil {
		return jentry{ID: id}, true, fmt.Errorf("%s: %w: %v", j.fileName(id), errDamagedEntry, err)
	}
	return e, true, nil
}

func (j *journal) put(e jentry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(j.fileName(e.ID), data, 0o600); err != nil {
		return fmt.Errorf("command journal: %w", err)
	}
	return nil
}

// all lists the readable entries; a damaged file is logged and left for
// get to find when its command is listed again.
func (j *journal) all() []jentry {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		j.log.Error("fleet agent: cannot list the command journal", "err", err)
		return nil
	}
	var out []jentry
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".json") || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		path := filepath.Join(j.dir, de.Name())
		data, err := readSmall(path)
		var e jentry
		if err == nil {
			err = json.Unmarshal(data, &e)
		}
		if err == nil && j.fileName(e.ID) != path {
			err = errors.New("entry does not match its file name")
		}
		if err != nil {
			j.log.Error("fleet agent: command journal entry unreadable", "file", path, "err", err)
			continue
		}
		out = append(out, e)
	}
	return out
}

// prune forgets acknowledged commands the server no longer lists.
func (j *journal) prune(listed map[string]bool) {
	for _, e := range j.all() {
		if e.State == cmdAcked && !listed[e.ID] {
			if err := os.Remove(j.fileName(e.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				j.log.Error("fleet agent: cannot prune the command journal", "err", err)
			}
		}
	}
}

// resultKey is the outbox key of a command's result: one per command, so
// the server stores one result however often it is sent.
func resultKey(commandID string) string { return "result:" + commandID }

// journalAcked marks commands whose results the server acknowledged.
func (a *Agent) journalAcked(acked map[string]bool) {
	for key := range acked {
		id, ok := strings.CutPrefix(key, "result:")
		if !ok {
			continue
		}
		e, found, err := a.journal.get(id)
		if !found || err != nil || e.State != cmdDone {
			continue
		}
		e.State = cmdAcked
		if err := a.journal.put(e); err != nil {
			a.log.Error("fleet agent: journal", "command", id, "err", err)
		}
	}
}
