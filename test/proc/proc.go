// Package proc runs a server program for a test: its output captured, its
// death noticed, and a clean stop at the end of the test. The Janus, WHIP
// and TURN harnesses share it.
package proc

import (
	"errors"
	"fmt"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/syncbuf"
)

// Process is a running server.
type Process struct {
	name      string
	cmd       *exec.Cmd
	log       syncbuf.Buffer
	waitErr   chan error // the result of Wait, put back after each read
	abandoned atomic.Bool
}

// Start starts cmd, which must not have its output set. At cleanup it sends
// SIGTERM, kills the process after stopTimeout, and fails the test if the
// process had died early or did not stop cleanly (exit 0, or death by the
// SIGTERM for programs that do not catch it); a failed test gets the
// process's output in its log.
func Start(t testing.TB, name string, cmd *exec.Cmd, stopTimeout time.Duration) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, waitErr: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.waitErr <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := p.stop(stopTimeout); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, p.Log())
		}
	})
	return p
}

// Log returns what the process wrote so far.
func (p *Process) Log() string { return p.log.String() }

// Exited returns an error saying how the process ended, or nil while it
// runs.
func (p *Process) Exited() error {
	select {
	case err := <-p.waitErr:
		p.waitErr <- err
		return fmt.Errorf("%s exited (%v)", p.name, err)
	default:
		return nil
	}
}

// Crashed reports whether the process has died of a signal it did not ask
// for (a segfault, an abort), as opposed to exiting.
func (p *Process) Crashed() bool {
	select {
	case err := <-p.waitErr:
		p.waitErr <- err
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			ws, ok := exit.Sys().(syscall.WaitStatus)
			return ok && ws.Signaled()
		}
		return false
	default:
		return false
	}
}

// Abandon tells the cleanup that the caller has dealt with this process's
// death (and started another): it is not reported again.
func (p *Process) Abandon() { p.abandoned.Store(true) }

// Stop stops the process now as the cleanup would (SIGTERM, then a kill
// after timeout) and tells the cleanup it is done.
func (p *Process) Stop(timeout time.Duration) error {
	err := p.stop(timeout)
	p.Abandon()
	return err
}

// Kill ends the process with SIGKILL, as a crash or a power cut would, and
// waits for it; the cleanup then leaves it alone.
func (p *Process) Kill() {
	p.Abandon()
	_ = p.cmd.Process.Kill()
	err := <-p.waitErr
	p.waitErr <- err
}

func (p *Process) stop(timeout time.Duration) error {
	if p.abandoned.Load() {
		return nil
	}
	if err := p.Exited(); err != nil {
		return fmt.Errorf("%w before the test ended", err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case err := <-p.waitErr:
		p.waitErr <- err
		var exit *exec.ExitError
		if err == nil || errors.As(err, &exit) && killedBy(exit, syscall.SIGTERM) {
			return nil
		}
		return fmt.Errorf("%s exited with %v after SIGTERM", p.name, err)
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.waitErr
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

func killedBy(exit *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
