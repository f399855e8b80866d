package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// RunFunc runs the program name with args, with env added to the
// environment, and returns what it printed (stdout and stderr). It is the
// seam through which the package starts every outside program.
type RunFunc func(ctx context.Context, env []string, name string, args ...string) ([]byte, error)

// ErrToolMissing is returned (wrapped) by [Exec] when a program is not
// installed; the message names the Debian package.
var ErrToolMissing = errors.New("disk: host tool missing")

// toolPackage names the Debian package of each program the package runs.
func toolPackage(name string) string {
	switch name {
	case "sgdisk":
		return "gdisk"
	case "mkfs.vfat":
		return "dosfstools"
	case "mcopy":
		return "mtools"
	case "mkfs.ext4":
		return "e2fsprogs"
	}
	return "?"
}

// Exec is the real [RunFunc]: it starts the program directly (no shell)
// and returns its combined output; a failure carries the command line and
// the output's last lines.
func Exec(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (Debian package %s)", ErrToolMissing, name, toolPackage(name))
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(string(out), 10))
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
