package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "settings.json")
	for _, content := range []string{"first\n", "second, longer than the first\n"} {
		if err := Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("created directory: %v, %v; want mode 0700", di.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v); want only the file", entries, err)
	}
}

func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "presets.json")
	if err := Write(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be: the rename fails.
	bad := filepath.Join(dir, "taken")
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(bad, []byte("new"), 0o600); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("other file changed: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("a temporary file was left: %v", entries)
	}
}

// TestWriteKeepModeSetsNoMode: the content is replaced and no mode is
// asked for (the file keeps what creating it gave, 0600 under any umask);
// on the ESP's FAT that is what lets a non-owner replace loader.conf.
func TestWriteKeepModeSetsNoMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loader.conf")
	if err := os.WriteFile(path, []byte("default atrium-a.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeepMode(path, []byte("default atrium-*\n")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "default atrium-*\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want CreateTemp's 0600", fi.Mode().Perm(), err)
	}
}
