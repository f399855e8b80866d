package netwatch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// groups are the rtnetlink multicast groups a NetlinkSource listens to.
const groups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// NetlinkSource is the real Source: an AF_NETLINK/NETLINK_ROUTE socket
// subscribed to link, address and route notifications. It reports changes
// relative to what it has seen: at creation it reads the current links,
// addresses and default routes (so an address the kernel merely refreshes
// is not news), and afterwards only differences become events.
type NetlinkSource struct {
	f       *os.File // the non-blocking socket, so the runtime poller waits on it
	st      *state
	pending []Event
	buf     []byte
}

// NewNetlinkSource opens the socket and reads the current network state.
func NewNetlinkSource() (*NetlinkSource, error) {
	f, err := openNetlink(groups)
	if err != nil {
		return nil, err
	}
	s := &NetlinkSource{
		f:   f,
		st:  newState(nameByIndex),
		buf: make([]byte, 1<<16),
	}
	// Subscribe first, then read the state. A change made in the moment
	// between the two is in the dump already and so is not reported; this
	// is start-up, before any meeting, where that costs nothing.
	for _, req := range []uint16{unix.RTM_GETLINK, unix.RTM_GETADDR, unix.RTM_GETROUTE} {
		if err := dump(req, s.st); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

// nameByIndex is the fallback for an interface the dump did not name.
func nameByIndex(index int32) string {
	ifi, err := net.InterfaceByIndex(int(index))
	if err != nil {
		return ""
	}
	return ifi.Name
}

// openNetlink opens a non-blocking NETLINK_ROUTE socket bound to groups.
func openNetlink(groups uint32) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netwatch: open netlink socket: %w", err)
	}
	// A roam can produce a burst of dozens of messages; a larger buffer
	// makes overflow (ENOBUFS) rarer. Failure only leaves the default.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netwatch: bind netlink socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "netlink"), nil
}

// dump asks the kernel for all objects of one kind on a socket of its own
// and applies them to st, discarding the events: they describe the present,
// not a change.
func dump(req uint16, st *state) error {
	f, err := openNetlink(0)
	if err != nil {
		return err
	}
	defer f.Close()
	// The body is the request's header struct, zeroed: AF_UNSPEC asks for
	// every family.
	size := map[uint16]int{
		unix.RTM_GETLINK:  unix.SizeofIfInfomsg,
		unix.RTM_GETADDR:  unix.SizeofIfAddrmsg,
		unix.RTM_GETROUTE: unix.SizeofRtMsg,
	}[req]
	body := make([]byte, size)
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + len(body)),
		Type:  req,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
		Seq:   1,
	}
	msg, _ := binary.Append(nil, binary.NativeEndian, hdr)
	msg = append(msg, body...)
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("netwatch: request netlink dump: %w", serr)
	}
	// The kernel answers at once; the deadline only guards against a hang.
	_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	for {
		n, err := recv(raw, buf)
		if err != nil {
			return fmt.Errorf("netwatch: read netlink dump: %w", err)
		}
		done, err := dumpPart(buf[:n])
		if err != nil {
			return err
		}
		if _, err := st.parse(buf[:n]); err != nil {
			return fmt.Errorf("netwatch: parse netlink dump: %w", err)
		}
		if done {
			return nil
		}
	}
}

// dumpPart reports whether b ends a dump, and the kernel's error if any.
func dumpPart(b []byte) (done bool, err error) {
	for len(b) >= unix.SizeofNlMsghdr {
		var h unix.NlMsghdr
		_, _ = binary.Decode(b, binary.NativeEndian, &h)
		if h.Len < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
			return false, fmt.Errorf("netwatch: %w in dump", errMalformed)
		}
		switch h.Type {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if h.Len >= unix.SizeofNlMsghdr+4 {
				if code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); code != 0 {
					return true, fmt.Errorf("netwatch: netlink dump: %w", unix.Errno(-code))
				}
			}
			return true, nil
		}
		b = b[min(align(int(h.Len)), len(b)):]
	}
	return false, nil
}

// recv reads one datagram sent by the kernel, waiting in the runtime
// poller so that a read deadline or Close ends the wait.
func recv(raw interface {
	Read(func(uintptr) bool) error
}, buf []byte) (int, error) {
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		if err := raw.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return 0, err
		}
		if rerr != nil {
			return 0, rerr
		}
		// Only the kernel (port 0) speaks for the network's state.
		if nl, ok := from.(*unix.SockaddrNetlink); ok && nl.Pid == 0 {
			return n, nil
		}
	}
}

// Next returns the next change. It returns ctx's error when ctx ends and
// os.ErrClosed after Close.
func (s *NetlinkSource) Next(ctx context.Context) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	if err := s.f.SetReadDeadline(time.Time{}); err != nil {
		return Event{}, fmt.Errorf("netwatch: %w", err)
	}
	// A past deadline wakes the read when ctx ends. stop, or waiting for
	// the func to finish, keeps it from touching the next call's deadline.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.f.SetReadDeadline(time.Unix(1, 0))
		close(woken)
	})
	defer func() {
		if !stop() {
			<-woken
		}
	}()
	raw, err := s.f.SyscallConn()
	if err != nil {
		return Event{}, fmt.Errorf("netwatch: %w", err)
	}
	for len(s.pending) == 0 {
		n, err := recv(raw, s.buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return Event{}, ctx.Err()
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped notifications; the state is stale in
			// unknown ways, so say so rather than guess.
			return Event{Kind: KindOverflow}, nil
		case err != nil:
			return Event{}, fmt.Errorf("netwatch: read netlink socket: %w", err)
		}
		evs, err := s.st.parse(s.buf[:n])
		s.pending = append(s.pending, evs...)
		if err != nil {
			return Event{}, fmt.Errorf("netwatch: %w", err)
		}
	}
	e := s.pending[0]
	s.pending = s.pending[1:]
	return e, nil
}

// Close closes the socket; a pending Next returns os.ErrClosed.
func (s *NetlinkSource) Close() error { return s.f.Close() }
