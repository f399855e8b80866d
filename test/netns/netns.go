// Package netns runs a test binary inside a network namespace of its own.
//
// Media servers such as Janus (through libnice) refuse loopback for ICE, so
// a test that wants real WebRTC between local processes needs a non-loopback
// address. Rather than use the machine's own interface address (traffic that
// tests must never send), the test binary re-executes itself under
// `unshare --net`: inside, there is only loopback and one veth pair, one end
// of which has a private address. Every process the test starts (Janus, coturn,
// Chromium, roomd) inherits the namespace, and no packet can leave it.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Interface and Addr are the non-loopback interface every isolated test sees.
const (
	Interface = "atrium0"
	Addr      = "10.231.0.1"
	prefix    = "/24"
)

// envInside marks the re-executed child, so it does not re-execute again.
const envInside = "ATRIUM_TEST_NETNS"

// Main is a TestMain body: it re-runs the test binary in a new network
// namespace and exits with its status. Inside that namespace it sets up the
// interfaces, runs the tests and, when they pass, fails the run if any
// goroutine is left behind. It fails loudly (exit 1) when the namespace
// cannot be made: the tests that need it must not silently run elsewhere.
func Main(m *testing.M) {
	if os.Getenv(envInside) == "1" {
		if err := setup(); err != nil {
			fmt.Fprintln(os.Stderr, "netns: set up interfaces:", err)
			os.Exit(1)
		}
		code := m.Run()
		// Main owns m.Run, so it also does what goleak.VerifyTestMain would.
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "netns: goroutines left running after the tests:", err)
				code = 1
			}
		}
		os.Exit(code)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		fmt.Fprintln(os.Stderr, "netns: unshare (Debian package util-linux) is needed:", err)
		os.Exit(1)
	}
	cmd := exec.Command(unshare, append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "netns: run tests in a new network namespace (needs root):", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Inside reports whether this process runs in the isolated namespace.
func Inside() bool { return os.Getenv(envInside) == "1" }

func setup() error {
	steps := [][]string{
		{"link", "set", "lo", "up"},
		// A veth pair whose both ends stay here: the kernel has no dummy
		// driver on every machine, veth it has. The peer must be up for the
		// interface to be.
		{"link", "add", Interface, "type", "veth", "peer", "name", Interface + "p"},
		{"addr", "add", Addr + prefix, "dev", Interface},
		{"link", "set", Interface + "p", "up"},
		{"link", "set", Interface, "up"},
	}
	// No IPv6 in the namespace: nothing under test uses it (Janus runs with
	// IPv6 off), and link-local addresses appearing after duplicate address
	// detection would change the interfaces under a program that starts
	// at once.
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("disable IPv6: %w", err)
		}
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", s, err, out)
		}
	}
	// Return only once the link is up (carrier on both ends), so the first
	// test sees the interfaces as they will stay.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-o", "link", "show", Interface).CombinedOutput()
		if err == nil && strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up within 5s: %s %v", Interface, out, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
