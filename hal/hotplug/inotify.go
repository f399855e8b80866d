package hotplug

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// inotify is an inotify instance: reads return struct inotify_event records.
type inotify interface {
	conn
	AddWatch(path string, mask uint32) (wd int, err error)
}

// inotifyMask is what changes a device node: created, removed, renamed into
// or out of place, or its owner or mode changed (udev at work).
const inotifyMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB

// inotifyHeader is sizeof(struct inotify_event) without its name.
const inotifyHeader = 16

// inotifySource follows device nodes in DevDir and the subdirectories the
// prefixes name.
type inotifySource struct {
	m   *Monitor
	in  inotify
	buf []byte
	// subdirs are the subdirectories of DevDir to watch, relative ("snd").
	subdirs map[string]bool
	// dirs maps watch descriptors to the directory, relative to DevDir, they
	// watch ("" for DevDir itself).
	dirs map[int]string
}

func (m *Monitor) newInotifySource() (*inotifySource, error) {
	in, err := m.openInotify()
	if err != nil {
		return nil, err
	}
	s := &inotifySource{
		m:       m,
		in:      in,
		buf:     make([]byte, 64*(inotifyHeader+unix.NAME_MAX+1)),
		subdirs: make(map[string]bool),
		dirs:    make(map[int]string),
	}
	for _, p := range m.prefixes {
		// The directory part of the prefix: "snd/" and "snd/pcm" give
		// "snd", "video" gives "." (DevDir itself, watched anyway).
		if d := path.Dir(p + "x"); d != "." {
			s.subdirs[d] = true
		}
	}
	if err := s.watch(""); err != nil {
		_ = in.Close()
		return nil, err
	}
	for d := range s.subdirs {
		// A subdirectory that does not exist yet (no sound card) is
		// watched when it appears.
		if err := s.watch(d); err != nil && !errors.Is(err, unix.ENOENT) {
			_ = in.Close()
			return nil, err
		}
	}
	return s, nil
}

// watch adds a watch on the directory rel (relative to DevDir).
func (s *inotifySource) watch(rel string) error {
	dir := filepath.Join(s.m.devDir, rel)
	wd, err := s.in.AddWatch(dir, inotifyMask)
	if err != nil {
		return fmt.Errorf("hotplug: inotify watch %s: %w", dir, err)
	}
	s.dirs[wd] = rel
	return nil
}

// relevant reports whether a change to the node rel (relative to DevDir)
// matters: it matches a prefix, or it is a directory a prefix lies in.
func (s *inotifySource) relevant(rel string) bool {
	if len(s.m.prefixes) == 0 {
		return true
	}
	for _, p := range s.m.prefixes {
		if strings.HasPrefix(rel, p) || strings.HasPrefix(p, rel+"/") {
			return true
		}
	}
	return false
}

func (s *inotifySource) next() error {
	for {
		n, err := s.in.Read(s.buf)
		if err != nil {
			return fmt.Errorf("hotplug: read inotify: %w", err)
		}
		relevant, err := s.handle(s.buf[:n])
		if err != nil {
			return err
		}
		if relevant {
			return nil
		}
	}
}

// handle processes one read's worth of events and says whether any matters.
func (s *inotifySource) handle(b []byte) (bool, error) {
	relevant := false
	for len(b) > 0 {
		if len(b) < inotifyHeader {
			return relevant, fmt.Errorf("hotplug: inotify event truncated (%d bytes)", len(b))
		}
		wd := int(int32(binary.NativeEndian.Uint32(b[0:4])))
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		if nameLen > len(b)-inotifyHeader {
			return relevant, fmt.Errorf("hotplug: inotify name truncated (%d of %d bytes)", len(b)-inotifyHeader, nameLen)
		}
		name := strings.TrimRight(string(b[inotifyHeader:inotifyHeader+nameLen]), "\x00")
		b = b[inotifyHeader+nameLen:]

		if mask&unix.IN_Q_OVERFLOW != 0 {
			s.m.log.Warn("hotplug: inotify queue overflowed; events lost")
			relevant = true
			continue
		}
		dir, ok := s.dirs[wd]
		if !ok {
			continue
		}
		if mask&unix.IN_IGNORED != 0 {
			// The directory went away (snd/ when the last card goes); its
			// watch is gone. It is watched again when it comes back.
			delete(s.dirs, wd)
			continue
		}
		rel := path.Join(dir, name)
		if dir == "" && s.subdirs[name] && mask&unix.IN_ISDIR != 0 && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
			// Nodes created in it before the watch was added are covered:
			// the directory's own creation counts as relevant below.
			if err := s.watch(name); err != nil && !errors.Is(err, unix.ENOENT) {
				return relevant, err
			}
		}
		if s.relevant(rel) {
			s.m.log.Debug("hotplug: device node changed", "node", rel, "mask", fmt.Sprintf("%#x", mask))
			relevant = true
		}
	}
	return relevant, nil
}

func (s *inotifySource) close() error { return s.in.Close() }

// sysInotify is a real inotify instance, non-blocking and read through Go's
// poller so that Close unblocks a Read.
type sysInotify struct {
	*os.File
}

func openInotify() (inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hotplug: inotify init: %w", err)
	}
	return sysInotify{os.NewFile(uintptr(fd), "inotify")}, nil
}

func (in sysInotify) AddWatch(path string, mask uint32) (int, error) {
	rc, err := in.SyscallConn()
	if err != nil {
		return 0, err
	}
	var wd int
	var werr error
	if err := rc.Control(func(fd uintptr) { wd, werr = unix.InotifyAddWatch(int(fd), path, mask) }); err != nil {
		return 0, err
	}
	return wd, werr
}
