package hotplug

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Netlink multicast groups of NETLINK_KOBJECT_UEVENT.
const (
	groupKernel = 1 // the kernel's uevents
	groupUdev   = 2 // udev's re-broadcast, after its rules ran
)

// netlinkBufSize holds any one uevent: the kernel caps a uevent's
// environment at 2 KiB (UEVENT_BUFFER_SIZE) and udev's messages at 8 KiB.
const netlinkBufSize = 16 << 10

// netlinkRcvBuf is the socket receive buffer asked for, so a burst (a USB
// hub with several devices) does not overflow it while the reader is busy.
const netlinkRcvBuf = 1 << 20

// udevMagic is the big-endian magic in a libudev message header.
const udevMagic = 0xfeedcafe

// uevent is one parsed message.
type uevent struct {
	Action    string
	DevPath   string
	Subsystem string
	Udev      bool // from udev's group rather than the kernel's
	Env       map[string]string
}

// errNotUevent is returned by parseUevent for a datagram that is neither a
// kernel nor a udev uevent.
var errNotUevent = errors.New("not a uevent")

// parseUevent parses a kernel uevent ("ACTION@DEVPATH\0KEY=VALUE\0...") or a
// udev one ("libudev\0", a header, then KEY=VALUE\0... at the offset the
// header gives).
func parseUevent(b []byte) (uevent, error) {
	var ev uevent
	var props []byte
	switch {
	case bytes.HasPrefix(b, []byte("libudev\x00")):
		// struct monitor_netlink_header: prefix[8], magic (big endian),
		// header_size, properties_off, properties_len, then filter hashes;
		// all but the magic in host order.
		if len(b) < 24 {
			return ev, fmt.Errorf("%w: udev header truncated (%d bytes)", errNotUevent, len(b))
		}
		if binary.BigEndian.Uint32(b[8:12]) != udevMagic {
			return ev, fmt.Errorf("%w: bad udev magic", errNotUevent)
		}
		off := int(binary.NativeEndian.Uint32(b[16:20]))
		n := int(binary.NativeEndian.Uint32(b[20:24]))
		if off < 24 || n < 0 || off > len(b) || n > len(b)-off {
			return ev, fmt.Errorf("%w: udev properties at %d+%d outside %d bytes", errNotUevent, off, n, len(b))
		}
		ev.Udev = true
		props = b[off : off+n]
	default:
		head, rest, ok := bytes.Cut(b, []byte{0})
		if !ok {
			return ev, fmt.Errorf("%w: no NUL after header", errNotUevent)
		}
		action, path, ok := strings.Cut(string(head), "@")
		if !ok || action == "" || !strings.HasPrefix(path, "/") {
			return ev, fmt.Errorf("%w: header %q is not ACTION@DEVPATH", errNotUevent, head)
		}
		ev.Action, ev.DevPath = action, path
		props = rest
	}
	ev.Env = make(map[string]string)
	for len(props) > 0 {
		var kv []byte
		kv, props, _ = bytes.Cut(props, []byte{0})
		if k, v, ok := strings.Cut(string(kv), "="); ok && k != "" {
			ev.Env[k] = v
		}
	}
	if a := ev.Env["ACTION"]; a != "" {
		ev.Action = a
	}
	if p := ev.Env["DEVPATH"]; p != "" {
		ev.DevPath = p
	}
	ev.Subsystem = ev.Env["SUBSYSTEM"]
	if ev.Action == "" {
		return ev, fmt.Errorf("%w: no ACTION", errNotUevent)
	}
	return ev, nil
}

// netlinkSource reads uevents from a netlink socket.
type netlinkSource struct {
	c   conn
	m   *Monitor
	buf []byte
}

func (s *netlinkSource) next() error {
	for {
		n, err := s.c.Read(s.buf)
		if errors.Is(err, unix.ENOBUFS) {
			// The socket overflowed and events were lost: whatever they
			// said, the devices may have changed.
			s.m.log.Warn("hotplug: uevent socket overflowed; events lost")
			return nil
		}
		if err != nil {
			return fmt.Errorf("hotplug: read uevent: %w", err)
		}
		ev, err := parseUevent(s.buf[:n])
		if err != nil {
			s.m.log.Debug("hotplug: ignoring datagram", "err", err)
			continue
		}
		if !s.m.relevantSubsystem(ev.Subsystem) {
			continue
		}
		s.m.log.Debug("hotplug: uevent", "action", ev.Action, "devpath", ev.DevPath, "subsystem", ev.Subsystem, "udev", ev.Udev)
		return nil
	}
}

func (s *netlinkSource) close() error { return s.c.Close() }

// dialNetlink opens a NETLINK_KOBJECT_UEVENT socket joined to the kernel's
// and udev's groups. The socket is non-blocking and handed to an os.File,
// so reads wait in Go's poller and Close unblocks them.
func dialNetlink() (conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("hotplug: open uevent socket: %w", err)
	}
	// SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it, ask within the
	// system's limit.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, netlinkRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, netlinkRcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groupKernel | groupUdev}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("hotplug: bind uevent socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "uevent"), nil
}
