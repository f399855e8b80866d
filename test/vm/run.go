package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RunOptions describe one boot of the guest.
type RunOptions struct {
	// Kernel is what Prepare returned.
	Kernel *Kernel
	// Tests run in this order, one after the other.
	Tests []Test
	// Args are appended to every test binary's arguments, after -test.v
	// and -test.timeout (e.g. "-test.run=^$", "-test.bench=.").
	Args []string
	// TestTimeout is each binary's -test.timeout; 3m when zero. The
	// binary is killed 30 s after it. The VM as a whole is bounded by
	// ctx: give it a deadline.
	TestTimeout time.Duration
	// Modules are loaded at boot; DefaultModules when nil.
	Modules []Module
	// KernelArgs are appended to the kernel command line (e.g.
	// "loglevel=8" to see every kernel message).
	KernelArgs []string
	// MemoryMiB and CPUs size the VM: 2048 and 2 when zero.
	MemoryMiB, CPUs int
	// Console, when set, receives everything the serial console prints.
	Console io.Writer
	// TempDir holds the initramfs while the VM runs; os.TempDir when
	// empty. Run removes what it wrote there.
	TempDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Result is what one test binary did in the guest.
type Result struct {
	Name string
	// Started and Finished say whether its BEGIN and END markers came.
	Started, Finished bool
	// ExitCode is the binary's exit status (137 when killed by the hard
	// timeout); meaningful when Finished.
	ExitCode int
	// Output is everything the console printed between the markers.
	Output string
	// Duration is the wall time between the markers, as the host saw them.
	Duration time.Duration
}

// Passed reports whether the binary finished with exit status 0.
func (r Result) Passed() bool { return r.Finished && r.ExitCode == 0 }

// Sentinel errors of Run, wrapped with detail.
var (
	// ErrIncomplete: the guest stopped, or was stopped when ctx ended,
	// before /init said it was done. Results say which tests finished.
	ErrIncomplete = errors.New("vm: guest did not finish")
	// ErrSetup: a module failed to load at boot.
	ErrSetup = errors.New("vm: guest setup failed")
)

// Run boots the guest once with opts.Tests in its initramfs, waits until it
// powers off, and returns a result per test, in order. The error is
// ErrIncomplete or ErrSetup (wrapped) when the run went wrong, with the
// results of what did run; a test that failed is only a Result.
func Run(ctx context.Context, opts RunOptions) ([]Result, error) {
	if opts.Kernel == nil {
		return nil, errors.New("vm: RunOptions.Kernel is nil")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.TestTimeout == 0 {
		opts.TestTimeout = 3 * time.Minute
	}
	if opts.Modules == nil {
		opts.Modules = DefaultModules()
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 2048
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	for _, t := range opts.Tests {
		if t.Name == "" || strings.ContainsAny(t.Name, " \t\n'\"$`\\") {
			return nil, fmt.Errorf("vm: test name %q must be non-empty, without spaces or quotes", t.Name)
		}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("%w: qemu-system-x86_64 (Debian package qemu-system-x86)", ErrToolMissing)
	}
	tmp, err := os.MkdirTemp(opts.TempDir, "atrium-vm-")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(tmp)

	applets, err := run(ctx, "", opts.Kernel.Busybox, "--list-full")
	if err != nil {
		return nil, err
	}
	im := &image{
		kernel:  opts.Kernel,
		modules: opts.Modules,
		tests:   opts.Tests,
		args:    opts.Args,
		timeout: opts.TestTimeout,
		nonce:   newNonce(),
		applets: strings.Fields(applets),
	}
	initrd := filepath.Join(tmp, "initramfs.cpio")
	start := time.Now()
	if err := im.write(ctx, initrd, tmp); err != nil {
		return nil, err
	}
	if st, err := os.Stat(initrd); err == nil {
		log.Info("vm: initramfs written", "bytes", st.Size(), "took", time.Since(start).Round(time.Millisecond))
	}

	con := newConsole(im.nonce, opts.Tests, time.Now)
	out := io.Writer(con)
	if opts.Console != nil {
		out = io.MultiWriter(con, opts.Console)
	}
	cmd := exec.CommandContext(ctx, qemu, qemuArgs(opts, initrd)...)
	// One writer for both: exec then copies through a single goroutine,
	// so opts.Console need not be safe for concurrent use, and QEMU's own
	// complaints land in the console tail that errors quote.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	log.Info("vm: booting", "tests", len(opts.Tests), "cpus", opts.CPUs, "memory_mib", opts.MemoryMiB)
	start = time.Now()
	runErr := cmd.Run()
	results, done, setup := con.finish()
	log.Info("vm: powered off", "took", time.Since(start).Round(time.Millisecond), "done", done)

	switch {
	case ctx.Err() != nil:
		return results, fmt.Errorf("%w: %w (after %s)\nconsole tail:\n%s", ErrIncomplete, ctx.Err(), time.Since(start).Round(time.Second), con.tail())
	case runErr != nil:
		return results, fmt.Errorf("%w: qemu: %w\nconsole tail:\n%s", ErrIncomplete, runErr, con.tail())
	case !done:
		return results, fmt.Errorf("%w: powered off without the DONE marker\nconsole tail:\n%s", ErrIncomplete, con.tail())
	case len(setup) > 0:
		return results, fmt.Errorf("%w:\n%s", ErrSetup, strings.Join(setup, "\n"))
	}
	return results, nil
}

func qemuArgs(opts RunOptions, initrd string) []string {
	return []string{
		"-accel", "tcg", "-cpu", "max",
		"-smp", fmt.Sprint(opts.CPUs), "-m", fmt.Sprint(opts.MemoryMiB),
		"-nographic", "-no-reboot", "-no-user-config", "-nic", "none",
		"-kernel", opts.Kernel.Image, "-initrd", initrd,
		// panic=-1 reboots at once on a panic, which -no-reboot turns
		// into QEMU's exit. loglevel=5 keeps boot chatter off the
		// console but lets warnings (a driver's WARN_ON) through.
		// tsc=reliable: under TCG every vCPU's TSC is the same host
		// clock, but the kernel's boot-time sync check misreads
		// emulation delays as warps and falls back to the HPET, whose
		// every read traps into QEMU: time.Now was 8 times slower and
		// goroutine handoffs 40% slower. guestcheck's TestClock checks
		// that time never runs backwards across CPUs.
		"-append", strings.Join(append([]string{"console=ttyS0 panic=-1 loglevel=5 mitigations=off tsc=reliable"}, opts.KernelArgs...), " "),
	}
}

func newNonce() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on Linux
	return hex.EncodeToString(b)
}

// console parses the serial console as QEMU writes it: lines ending in
// "\r\n", markers from /init among them. It is written to by exec's copying
// goroutine and read after Wait, hence the mutex.
type console struct {
	mu        sync.Mutex
	prefix    string // "@@ATRIUM-VM <nonce> "
	now       func() time.Time
	results   []Result
	index     map[string]int
	cur       int // index into results of the running test, or -1
	began     time.Time
	partial   []byte // an unfinished line
	lastLines []string
	setup     []string
	done      bool
	out       []strings.Builder
}

const consoleTailLines = 60

func newConsole(nonce string, tests []Test, now func() time.Time) *console {
	c := &console{prefix: marker + " " + nonce + " ", now: now, index: map[string]int{}, cur: -1}
	for i, t := range tests {
		c.results = append(c.results, Result{Name: t.Name, ExitCode: -1})
		c.index[t.Name] = i
	}
	c.out = make([]strings.Builder, len(tests))
	return c
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.line(strings.TrimRight(string(data[:i]), "\r"))
		data = data[i+1:]
	}
	c.partial = append(c.partial[:0:0], data...)
	return len(p), nil
}

func (c *console) line(l string) {
	c.lastLines = append(c.lastLines, l)
	if len(c.lastLines) > consoleTailLines {
		c.lastLines = c.lastLines[1:]
	}
	i := strings.Index(l, c.prefix)
	if i < 0 {
		if c.cur >= 0 {
			c.out[c.cur].WriteString(l)
			c.out[c.cur].WriteByte('\n')
		}
		return
	}
	// Text before the marker (a kernel message cut into the line) still
	// belongs to the output.
	if before := l[:i]; before != "" && c.cur >= 0 {
		c.out[c.cur].WriteString(before)
		c.out[c.cur].WriteByte('\n')
	}
	verb, rest, _ := strings.Cut(l[i+len(c.prefix):], " ")
	switch verb {
	case "BEGIN":
		if n, ok := c.index[strings.TrimSpace(rest)]; ok {
			c.cur = n
			c.results[n].Started = true
			c.began = c.now()
		}
	case "END":
		name, code, _ := strings.Cut(rest, " exit=")
		if n, ok := c.index[name]; ok {
			r := &c.results[n]
			r.Finished = true
			if _, err := fmt.Sscan(code, &r.ExitCode); err != nil {
				r.ExitCode = -1
			}
			r.Duration = c.now().Sub(c.began)
		}
		c.cur = -1
	case "SETUP":
		c.setup = append(c.setup, rest)
	case "DONE":
		c.done = true
	}
}

// finish flushes an unfinished line and returns the results, whether the
// DONE marker came, and the SETUP failures.
func (c *console) finish() ([]Result, bool, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.line(strings.TrimRight(string(c.partial), "\r"))
		c.partial = nil
	}
	out := make([]Result, len(c.results))
	for i, r := range c.results {
		r.Output = c.out[i].String()
		out[i] = r
	}
	return out, c.done, c.setup
}

func (c *console) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lastLines, "\n")
}
