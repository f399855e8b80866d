package nettest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := Store{Path: filepath.Join(dir, "nettest.json")}
	if _, err := s.Load(); !errors.Is(err, ErrNoResult) {
		t.Fatalf("Load on an empty store: %v, want ErrNoResult", err)
	}
	first := Result{
		Time:       time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		DurationMS: 812.5,
		Checks:     []Check{{Kind: KindSTUN, URL: "stun:stun.example.com", Transport: TransportUDP, Host: "stun.example.com", OK: true, RTTMS: 12.34, Reflexive: "203.0.113.7:40000"}},
		Bandwidth:  &Bandwidth{URL: "turn:t", Transport: TransportUDP, TargetKbps: 4000, SentPackets: 350, ReceivedPackets: 349, LossPercent: 0.3, ReceivedKbps: 3980},
		Verdict:    Verdict{LevelOK, "All good: calls can use UDP directly", "udp"},
	}
	second := first
	second.Time = first.Time.Add(time.Hour)
	second.Bandwidth = nil
	for _, want := range []Result{first, second} {
		if err := s.Save(want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load() = %+v\nwant %+v", got, want)
		}
	}
	fi, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// No temporary file is left next to it.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the result", len(entries))
	}
}

func TestStoreErrors(t *testing.T) {
	dir := t.TempDir()
	bad := Store{Path: filepath.Join(dir, "bad.json")}
	if err := os.WriteFile(bad.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Load(); err == nil || errors.Is(err, ErrNoResult) {
		t.Errorf("Load of a corrupt file: %v, want a decode error", err)
	}
	// A file where the directory should be: nothing can be saved.
	underFile := Store{Path: filepath.Join(bad.Path, "r.json")}
	if err := underFile.Save(Result{}); err == nil {
		t.Error("Save under a regular file succeeded")
	}
}
