package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// fakeRunner records commands and runs a hook instead of the program.
type fakeRunner struct {
	mu   sync.Mutex
	cmds []string
	hook func(c Cmd) ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, c Cmd) ([]byte, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, c.String())
	f.mu.Unlock()
	if f.hook != nil {
		return f.hook(c)
	}
	return nil, nil
}

// String is the recorded commands, one a line.
func (f *fakeRunner) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.cmds {
		fmt.Fprintln(&b, c)
	}
	return b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func slogToTest(t interface{ Output() io.Writer }) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
