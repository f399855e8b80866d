package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// MaxRecordSize bounds one queued record (JSON), so that MaxOutbox records
// of ordinary size fit one check-in body.
const MaxRecordSize = 16 << 10

// outbox is the durable queue: one file per record, named by a sequence
// number so that the directory's sorted order is the queue's order. One
// file per record makes removing an acknowledged record one unlink, and a
// torn or corrupt file damages only itself.
type outbox struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	next  uint64 // sequence number of the next record
	count int
}

// queued is one record and the file it came from.
type queued struct {
	name string
	rec  fleetapi.Record
}

const seqWidth = 20

func openOutbox(dir string, log *slog.Logger) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &outbox{dir: dir, log: log}
	names, err := o.names()
	if err != nil {
		return nil, err
	}
	o.count = len(names)
	if len(names) > 0 {
		last, _ := strconv.ParseUint(strings.TrimSuffix(names[len(names)-1], ".json"), 10, 64)
		o.next = last + 1
	}
	return o, nil
}

// names lists the record files, oldest first.
func (o *outbox) names() ([]string, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		seq, ok := strings.CutSuffix(n, ".json")
		if !ok || len(seq) != seqWidth || !e.Type().IsRegular() {
			continue // temporary files of atomicfile, set-aside *.bad files
		}
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// add queues r durably: when add returns nil the record survives a power
// cut.
func (o *outbox) add(r fleetapi.Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("outbox: encode %s: %w", r.Key, err)
	}
	if len(data) > MaxRecordSize {
		return fmt.Errorf("outbox: record %s is %d bytes, at most %d: %w", r.Key, len(data), MaxRecordSize, ErrRecordTooLarge)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	name := fmt.Sprintf("%0*d.json", seqWidth, o.next)
	if err := atomicfile.Write(filepath.Join(o.dir, name), data, 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	o.next++
	o.count++
	return nil
}

// peek returns up to n records, oldest first. A file that cannot be read
// or decoded is renamed to *.bad and skipped, so it never blocks the queue.
func (o *outbox) peek(n int) ([]queued, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	names, err := o.names()
	if err != nil {
		return nil, err
	}
	o.count = len(names) // resynchronised with the directory on every read
	var out []queued
	for _, name := range names {
		if len(out) == n {
			break
		}
		path := filepath.Join(o.dir, name)
		data, err := readSmall(path)
		var rec fleetapi.Record
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err == nil && rec.Key == "" {
			err = errors.New("record has no key")
		}
		if err != nil {
			o.log.Error("fleet agent: outbox record unreadable; set aside", "file", path, "err", err)
			if rerr := os.Rename(path, path+".bad"); rerr != nil {
				o.log.Error("fleet agent: cannot set aside outbox record", "file", path, "err", rerr)
			}
			o.count--
			continue
		}
		out = append(out, queued{name, rec})
	}
	return out, nil
}

// remove deletes the records among sent whose keys are in acked.
func (o *outbox) remove(sent []queued, acked map[string]bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	removed := false
	var errs []error
	for _, q := range sent {
		if !acked[q.rec.Key] {
			continue
		}
		if err := os.Remove(filepath.Join(o.dir, q.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		o.count--
		removed = true
	}
	if removed {
		// Make the removals durable; if they are lost, the records are
		// sent again with their keys and the server ignores them.
		if d, err := os.Open(o.dir); err == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox: remove acknowledged: %w", err)
	}
	return nil
}

// has reports whether a record with key is queued.
func (o *outbox) has(key string) bool {
	recs, err := o.peek(-1)
	if err != nil {
		return false
	}
	for _, q := range recs {
		if q.rec.Key == key {
			return true
		}
	}
	return false
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count
}

// clear drops every record (factory reset).
func (o *outbox) clear() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	o.next, o.count = 0, 0
	return os.MkdirAll(o.dir, 0o700)
}
