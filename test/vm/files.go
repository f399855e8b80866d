package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/atriumroom/atrium/internal/filelock"
)

// unpackDeb runs dpkg-deb -x into dst through a temporary sibling renamed
// at the end.
func unpackDeb(ctx context.Context, deb, dst string, more ...string) error {
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	for _, d := range append([]string{deb}, more...) {
		if _, err := run(ctx, "", "dpkg-deb", "-x", d, tmp); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait; the returned function releases it.
func lockFile(ctx context.Context, path string, log *slog.Logger) (func(), error) {
	unlock, err := filelock.Lock(ctx, path, 200*time.Millisecond, func() {
		log.Info("vm: waiting for another process preparing the cache", "lock", path)
	})
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	return unlock, nil
}

// run runs a command and returns its standard output; the error carries
// the command and the tail of its standard error.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	return runEnv(ctx, dir, nil, name, args...)
}

// runEnv is run with variables added to the environment.
func runEnv(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrToolMissing, err)
		}
		return stdout.String(), fmt.Errorf("vm: %s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return stdout.String(), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("vm: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	return nil
}

// readLines returns the lines of a file.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
