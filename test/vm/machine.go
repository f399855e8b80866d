package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// MachineOptions describe an appliance VM: a disk booted through OVMF, as
// in [BootUEFI], with what a whole system needs besides: a display to take
// screenshots of, a network to reach the host, and a monitor to drive.
type MachineOptions struct {
	// Disk is the boot disk (raw or qcow2, by its file name's extension);
	// Vars the machine's UEFI variable store (copied from DefaultOVMFVars
	// when missing); Code the firmware (DefaultOVMFCode when empty).
	Disk, Vars, Code string
	// MemoryMiB and CPUs size the VM: 2048 and 2 when zero.
	MemoryMiB, CPUs int
	// Dir holds the monitor socket; it must exist and have a short path.
	Dir string
	// Console receives the serial console.
	Console *Console
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Machine is one running QEMU: the guest sees a virtio disk, a virtio GPU
// (its screen, for [Machine.Screendump]), and a virtio network card on
// QEMU's user network, where the host's loopback is 10.0.2.2. QEMU exits
// rather than reboot (-no-reboot): a guest's reboot ends the Machine, and
// the test starts the next one on the same disk.
type Machine struct {
	cmd     *exec.Cmd
	qmpPath string
	log     *slog.Logger
	start   time.Time
	done    chan struct{}
	err     error
}

// HostAddr is the host's loopback as the guest reaches it on QEMU's user
// network.
const HostAddr = "10.0.2.2"

// StartMachine starts QEMU; it runs until the guest powers off or
// reboots, [Machine.Kill], or ctx ends.
func StartMachine(ctx context.Context, o MachineOptions) (*Machine, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Code == "" {
		o.Code = DefaultOVMFCode
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 2048
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Disk == "" || o.Vars == "" || o.Dir == "" || o.Console == nil {
		return nil, errors.New("vm: start machine: Disk, Vars, Dir and Console are required")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("%w: qemu-system-x86_64 (Debian package qemu-system-x86)", ErrToolMissing)
	}
	if _, err := os.Stat(o.Code); err != nil {
		return nil, fmt.Errorf("%w: OVMF firmware (Debian package ovmf): %w", ErrToolMissing, err)
	}
	if _, err := os.Stat(o.Vars); errors.Is(err, os.ErrNotExist) {
		if err := copyFile(DefaultOVMFVars, o.Vars, 0o644); err != nil {
			return nil, fmt.Errorf("%w: OVMF variable store (Debian package ovmf): %w", ErrToolMissing, err)
		}
	}
	format := "raw"
	if filepath.Ext(o.Disk) == ".qcow2" {
		format = "qcow2"
	}
	m := &Machine{qmpPath: filepath.Join(o.Dir, "qmp.sock"), log: log, done: make(chan struct{})}
	_ = os.Remove(m.qmpPath)
	args := []string{
		"-accel", "tcg", "-cpu", "max",
		"-smp", fmt.Sprint(o.CPUs), "-m", fmt.Sprint(o.MemoryMiB),
		"-no-reboot", "-no-user-config", "-nodefaults",
		"-display", "none", "-device", "virtio-gpu-pci",
		"-serial", "stdio", "-monitor", "none",
		"-qmp", "unix:" + m.qmpPath + ",server=on,wait=off",
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + o.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + o.Vars,
		// cache=unsafe: the guest's flushes do not reach the host's disk.
		// A power cut here is QEMU killed, not the host, so whatever QEMU
		// wrote survives it either way, and the host's syncs only cost time.
		"-drive", "if=virtio,cache=unsafe,format=" + format + ",file=" + o.Disk,
	}
	m.cmd = exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	m.cmd.Stdout, m.cmd.Stderr = o.Console, o.Console
	m.cmd.WaitDelay = 5 * time.Second
	// A test binary that dies (a panic, go test's timeout) takes its
	// machines with it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.start = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: start machine: %w", err)
	}
	log.Info("vm: machine started", "disk", o.Disk)
	go func() {
		m.err = m.cmd.Wait()
		log.Info("vm: machine stopped", "disk", o.Disk, "after", time.Since(m.start).Round(time.Millisecond), "err", m.err)
		close(m.done)
	}()
	return m, nil
}

// Started is when QEMU started: the machine's power-on.
func (m *Machine) Started() time.Time { return m.start }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Wait waits for QEMU to exit (the guest powered off or rebooted) and
// returns its error, or ctx's.
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		if m.err != nil {
			return fmt.Errorf("vm: machine: qemu: %w", m.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vm: machine still running: %w", ctx.Err())
	}
}

// Kill pulls the power: QEMU is killed, nothing in the guest is flushed
// beyond what it had written to the disk.
func (m *Machine) Kill() {
	if m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-m.done
}

// Powerdown presses the machine's power button (ACPI) and waits until
// the guest has shut down and QEMU exited: a clean power-off, after which
// the disk's file systems are consistent.
func (m *Machine) Powerdown(ctx context.Context) error {
	if _, err := m.qmp(ctx, "system_powerdown", nil); err != nil {
		return fmt.Errorf("vm: power button: %w", err)
	}
	return m.Wait(ctx)
}

// Screendump writes the guest's screen to path as a PNG.
func (m *Machine) Screendump(ctx context.Context, path string) error {
	if _, err := m.qmp(ctx, "screendump", map[string]any{"filename": path, "format": "png"}); err != nil {
		return fmt.Errorf("vm: screendump: %w", err)
	}
	return nil
}

// qmp runs one command on QEMU's monitor, on a connection of its own.
func (m *Machine) qmp(ctx context.Context, command string, args any) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", m.qmpPath)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	r := bufio.NewReader(conn)
	// The greeting, then capabilities negotiation, then the command; events
	// may come between, and are skipped.
	if _, err := r.ReadBytes('\n'); err != nil {
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	call := func(cmd string, args any) (json.RawMessage, error) {
		req := map[string]any{"execute": cmd}
		if args != nil {
			req["arguments"] = args
		}
		b, _ := json.Marshal(req)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, fmt.Errorf("qmp %s: %w", cmd, err)
			}
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Class, Desc string
				} `json:"error"`
				Event string `json:"event"`
			}
			if err := json.Unmarshal(line, &resp); err != nil {
				return nil, fmt.Errorf("qmp %s: %w in %q", cmd, err, line)
			}
			switch {
			case resp.Event != "":
				continue
			case resp.Error != nil:
				return nil, fmt.Errorf("qmp %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
			default:
				return resp.Return, nil
			}
		}
	}
	if _, err := call("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return call(command, args)
}

// Console collects a serial console's output (and copies it to a file),
// and lets a test wait for lines on it.
type Console struct {
	mu      sync.Mutex
	buf     []byte
	changed chan struct{}
	file    *os.File
}

// NewConsole returns a Console that also appends to file when it is not
// empty.
func NewConsole(file string) (*Console, error) {
	c := &Console{changed: make(chan struct{})}
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("vm: console file: %w", err)
		}
		c.file = f
	}
	return c, nil
}

// Write implements io.Writer.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	if c.file != nil {
		_, _ = c.file.Write(p)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return len(p), nil
}

// Close closes the file copy.
func (c *Console) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file == nil {
		return nil
	}
	err := c.file.Close()
	c.file = nil
	return err
}

// Mark is the current end of the output: later waits can start there.
func (c *Console) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// Text returns the output since mark.
func (c *Console) Text(mark int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf[min(mark, len(c.buf)):])
}

// WaitFor waits until re matches the output after mark, and returns the
// match and the offset just after it (the next mark).
func (c *Console) WaitFor(ctx context.Context, mark int, re *regexp.Regexp) ([]string, int, error) {
	for {
		c.mu.Lock()
		from := min(mark, len(c.buf))
		loc := re.FindSubmatchIndex(c.buf[from:])
		var match []string
		if loc != nil {
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					match = append(match, "")
					continue
				}
				match = append(match, string(c.buf[from+loc[i]:from+loc[i+1]]))
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if loc != nil {
			return match, from + loc[1], nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, mark, fmt.Errorf("console: waiting for %q: %w", re, ctx.Err())
		}
	}
}
