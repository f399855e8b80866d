package turntest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/netns"
)

// The room's network: a veth pair from the room's namespace (eth0, RoomAddr)
// to LinkName in the test namespace, where a bridge (Bridge) joins it to
// netns.Interface's peer, so the room shares netns.Addr's subnet.
const (
	LinkName = "atrium-room"
	Bridge   = "atrium-br"
	RoomAddr = "10.231.0.100"
	// Table is the nftables table of the firewall, in the test namespace.
	Table = "atrium_room_firewall"
)

// Room is a network namespace for the room (roomd) behind a firewall, as in
// a building that lets meeting rooms out over TCP only.
//
// The room's namespace has loopback and one interface, eth0 with RoomAddr,
// on the same Ethernet segment as netns.Interface: a bridge in the test
// namespace joins the room's link to that interface's veth peer. The room
// must share the segment, not reach it through a router: Janus sends its
// media out of its ICE interface whatever the routes say (a routed peer
// stays an unanswered ARP request on netns.Interface).
// Everything the test namespace hosts on netns.Addr (Janus, the TURN server,
// browsers) is thus reachable from the room, but the firewall, nftables
// rules on the bridge port LinkName, drops every UDP packet that enters
// from the room or leaves towards it: media between the room and a media
// server can only flow through a TURN server reached over TCP or TLS, which
// then relays over UDP inside the test namespace. Traffic inside the test
// namespace (a browser and Janus) is not filtered.
//
// Processes run in the room through Wrap or Command. The namespace, bridge,
// link and rules are removed when the test ends (netns.Interface's peer
// leaves the bridge); all of them also end with the test binary's own
// namespace. Tests that use a Room must not run in parallel with each other.
type Room struct {
	// Addr is the room's address (RoomAddr).
	Addr string
	// NetNS is the room's network namespace, as a path for nsenter --net.
	NetNS string

	holder    *exec.Cmd
	holderErr chan error
}

// Firewalled creates the room's namespace and link and blocks UDP through
// the link. It needs nft (Debian's nftables package) and nsenter and unshare
// (util-linux), and fails the test when they are missing.
func Firewalled(t testing.TB) *Room {
	t.Helper()
	if !netns.Inside() {
		t.Fatalf("turntest: the test binary must run in its own network namespace: call netns.Main(m) from TestMain")
	}
	for _, tool := range []string{"nft", "nsenter", "unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("turntest: %s is missing (nft: Debian package nftables; nsenter, unshare: util-linux; ip: iproute2): %v", tool, err)
		}
	}
	r := &Room{Addr: RoomAddr, holderErr: make(chan error, 1)}

	// A process that only holds the namespace open: nsenter joins it by
	// its /proc entry, and killing it (with the room's processes gone)
	// ends the namespace.
	r.holder = exec.Command("unshare", "--net", "--", "sleep", "infinity")
	if err := r.holder.Start(); err != nil {
		t.Fatalf("turntest: start the room's namespace: %v", err)
	}
	go func() { r.holderErr <- r.holder.Wait() }()
	t.Cleanup(func() {
		_ = r.holder.Process.Kill()
		<-r.holderErr
	})
	r.NetNS = fmt.Sprintf("/proc/%d/ns/net", r.holder.Process.Pid)
	if err := r.waitNamespace(5 * time.Second); err != nil {
		t.Fatalf("turntest: %v", err)
	}

	t.Cleanup(func() {
		// Deleting the bridge releases its ports; deleting one end of a
		// veth pair deletes both.
		for _, link := range []string{Bridge, LinkName} {
			if out, err := exec.Command("ip", "link", "del", link).CombinedOutput(); err != nil {
				t.Errorf("turntest: remove %s: %v: %s", link, err, out)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid := fmt.Sprint(r.holder.Process.Pid)
	steps := []struct {
		inRoom bool
		args   []string
	}{
		{false, []string{"link", "add", LinkName, "type", "veth", "peer", "name", "eth0", "netns", pid}},
		{false, []string{"link", "add", Bridge, "type", "bridge"}},
		{false, []string{"link", "set", netns.Interface + "p", "master", Bridge}},
		{false, []string{"link", "set", LinkName, "master", Bridge}},
		{false, []string{"link", "set", LinkName, "up"}},
		{false, []string{"link", "set", Bridge, "up"}},
		{true, []string{"link", "set", "lo", "up"}},
		{true, []string{"addr", "add", RoomAddr + "/24", "dev", "eth0"}},
		{true, []string{"link", "set", "eth0", "up"}},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, "ip", s.args...)
		if s.inRoom {
			cmd = r.Command(ctx, "ip", s.args...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("turntest: set up the room's link: %s: %v: %s", strings.Join(cmd.Args, " "), err, out)
		}
	}

	// Bridge hooks: prerouting sees every frame the room sends, whether
	// bridged on to netns.Interface or delivered to the bridge itself;
	// postrouting every frame towards the room.
	ruleset := fmt.Sprintf(`table bridge %[1]s {
	counter dropped {}
	chain from_room { type filter hook prerouting priority filter; policy accept; }
	chain to_room { type filter hook postrouting priority filter; policy accept; }
}
`, Table)
	if err := nft(ruleset); err != nil {
		t.Fatalf("turntest: create the room's firewall: %v", err)
	}
	t.Cleanup(func() {
		if err := nft("delete table bridge " + Table + "\n"); err != nil {
			t.Errorf("turntest: remove the room's firewall: %v", err)
		}
	})
	r.BlockUDP(t)
	return r
}

// waitNamespace waits until the holder has left the test's namespace.
func (r *Room) waitNamespace(timeout time.Duration) error {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.holderErr:
			r.holderErr <- err
			return fmt.Errorf("unshare --net exited (%v)", err)
		default:
		}
		if ns, err := os.Readlink(r.NetNS); err == nil && ns != self {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no network namespace for the room within %s", timeout)
}

// BlockUDP makes the firewall drop UDP to and from the room; Firewalled
// starts with it blocked.
func (r *Room) BlockUDP(t testing.TB) {
	t.Helper()
	r.AllowUDP(t) // the rules once, however often this is called
	rules := fmt.Sprintf(`add rule bridge %[1]s from_room iifname %[2]q meta l4proto udp counter name dropped drop
add rule bridge %[1]s to_room oifname %[2]q meta l4proto udp counter name dropped drop
`, Table, LinkName)
	if err := nft(rules); err != nil {
		t.Fatalf("turntest: block UDP: %v", err)
	}
}

// AllowUDP removes the firewall's rules: the room is then as well connected
// as any other host in the test namespace. The drop count is kept.
func (r *Room) AllowUDP(t testing.TB) {
	t.Helper()
	if err := nft(fmt.Sprintf("flush chain bridge %[1]s from_room\nflush chain bridge %[1]s to_room\n", Table)); err != nil {
		t.Fatalf("turntest: allow UDP: %v", err)
	}
}

// DroppedUDP returns how many UDP packets the firewall has dropped.
func (r *Room) DroppedUDP(t testing.TB) int {
	t.Helper()
	out, err := exec.Command("nft", "-j", "list", "counter", "bridge", Table, "dropped").Output()
	if err != nil {
		t.Fatalf("turntest: read the firewall's counter: %v", err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Packets int `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("turntest: read the firewall's counter: %v: %s", err, out)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets
		}
	}
	t.Fatalf("turntest: no counter in %s", out)
	return 0
}

// Rules returns the firewall's ruleset as nft lists it, for failure
// messages.
func (r *Room) Rules() string {
	out, err := exec.Command("nft", "list", "table", "bridge", Table).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("nft list: %v: %s", err, out)
	}
	return string(out)
}

// Command returns a command that runs in the room's namespace and is
// killed when ctx ends.
func (r *Room) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + r.NetNS, "--", name}, args...)...)
}

// Wrap returns the path of a script that runs binary, with the script's
// arguments, in the room's namespace. nsenter executes binary in place, so
// the script's process is binary's process: signals reach it directly.
func (r *Room) Wrap(t testing.TB, binary string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in-room-"+filepath.Base(binary))
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=%s -- %s \"$@\"\n", shellQuote(r.NetNS), shellQuote(binary))
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatalf("turntest: %v", err)
	}
	return path
}

// Forward makes target (host:port, e.g. a server that listens on loopback
// only) reachable from the room over TCP: it listens on netns.Addr and
// returns that address. The listener and every connection end with the test.
func (r *Room) Forward(t testing.TB, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(netns.Addr, "0"))
	if err != nil {
		t.Fatalf("turntest: listen for the room: %v", err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]bool{}}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return ln.Addr().String()
}

// forwarder relays TCP connections to target.
type forwarder struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]bool
}

func (f *forwarder) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() { f.relay(c) })
	}
}

// track registers c for close; it returns false (and closes c) once the
// forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		_ = c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) relay(down net.Conn) {
	defer down.Close()
	if !f.track(down) {
		return
	}
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !f.track(up) {
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Pass the end of one direction on; the other may go on.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Go(func() { pipe(up, down) })
	wg.Go(func() { pipe(down, up) })
	wg.Wait()
}

func (f *forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.Join(err, fmt.Errorf("nft: %s\n%s", strings.TrimSpace(string(out)), script))
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
