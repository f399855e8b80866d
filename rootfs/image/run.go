package image

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Cmd is one run of an outside program: no shell, arguments as given.
type Cmd struct {
	Name string
	Args []string
	// Env is added to the build's own environment.
	Env []string
}

// String is the command as a shell would show it, for logs and fakes.
func (c Cmd) String() string {
	var b strings.Builder
	for _, e := range c.Env {
		b.WriteString(e)
		b.WriteByte(' ')
	}
	b.WriteString(c.Name)
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// Runner runs outside programs. It returns what the program wrote to
// standard output; a failure's error carries its standard error.
type Runner interface {
	Run(ctx context.Context, c Cmd) ([]byte, error)
}

// ExecRunner runs programs with os/exec.
type ExecRunner struct {
	// Env is the base environment; nil is the build's own.
	Env []string
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	if r.Env != nil || len(c.Env) > 0 {
		cmd.Env = append(append(cmd.Environ(), r.Env...), c.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4000 {
			msg = "…" + msg[len(msg)-4000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", c.Name, err, msg)
	}
	return stdout.Bytes(), nil
}
