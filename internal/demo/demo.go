// Package demo runs the "Demo meeting" of `make run`: Debian's Janus on this
// machine with one VideoRoom, a simulated far-end guest in it, and a sample
// calendar that invites the room to it. Nothing talks to a server outside
// the machine.
//
// The guest is roomd's own Janus provider and media layer (pion) sending the
// simulated camera and microphone (hal/sim) through the software encoders
// (hal/swcodec): no browser is needed.
//
// Janus's API listens on 127.0.0.1, but its media cannot: libnice never
// gathers ICE candidates on loopback. Media therefore uses the machine's own
// address (see ICEAddr), which the kernel keeps on the machine.
//
// This is a development tool, not part of the appliance: it lives under
// internal/ so that nothing outside the module depends on it, and only
// cmd/atrium-demo and tests use it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/hal/sim"
)

// Room is the demo's VideoRoom id.
const Room = 4242

// Timeouts of the demo's steps.
const (
	ReadyTimeout = 20 * time.Second // Janus answering its API
	JoinTimeout  = 20 * time.Second // the guest joining
	StopTimeout  = 10 * time.Second // Janus exiting after SIGTERM
	LeaveTimeout = 3 * time.Second
	// RejoinDelay is the pause before the guest joins again after its
	// session ended by itself.
	RejoinDelay = 2 * time.Second
)

// CalendarFile is the sample calendar's name inside Config.Dir.
const CalendarFile = "calendar.ics"

// Errors that say why the demo cannot start on this machine.
var (
	// ErrNoJanus: Debian's janus package is not installed.
	ErrNoJanus = errors.New("janus is not installed (apt-get install janus)")
	// ErrNoAddress: the machine has no address other than loopback for
	// Janus's media.
	ErrNoAddress = errors.New("no non-loopback IPv4 address for media")
)

// Config configures Run.
type Config struct {
	// Dir receives Janus's configuration and log and the calendar.
	Dir string
	// ICEAddr is the address Janus and the guest use for media; nil picks
	// it with ICEAddr from /proc/net/route.
	ICEAddr net.IP
	// JanusBinary is the janus program; empty looks up "janus" in PATH.
	JanusBinary string
	// Guest configures the guest's simulated devices; zero fields take
	// hal/sim's defaults, and a zero size 640x360 at 15 fps.
	Guest sim.Config
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// Now is the clock of the calendar; nil means time.Now.
	Now func() time.Time
}

// Info describes the running demo.
type Info struct {
	// MeetingURL is the Demo meeting's link, as the calendar has it.
	MeetingURL string
	// CalendarPath is the sample calendar (roomd's [calendar] file).
	CalendarPath string
	// ICEAddr is the address media uses.
	ICEAddr net.IP
	// JanusLog is the file Janus writes its log to.
	JanusLog string
}

// Run starts Janus and the guest, writes the calendar, calls ready once all
// three are in place, and keeps them running until ctx ends; then the
// guest leaves, Janus stops and the calendar is removed. The guest joins
// again when its session ends by itself. Run returns an error when a step
// fails or Janus exits; it always cleans up what it started.
func Run(ctx context.Context, cfg Config, ready func(Info)) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	guest := cfg.Guest
	if guest.CameraWidth == 0 {
		guest.CameraWidth, guest.CameraHeight, guest.CameraFPS = 640, 360, 15
	}
	if guest.ToneHz == 0 {
		// Not the room's own tone (hal/sim's default), so the two are told
		// apart by ear.
		guest.ToneHz = 660
	}
	guest.Logger = log.With("guest", "devices")

	calPath := filepath.Join(cfg.Dir, CalendarFile)
	// A calendar left by a demo that was killed would invite roomd to a
	// Janus that is gone.
	if err := os.Remove(calPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("demo: remove the old calendar: %w", err)
	}
	bin := cfg.JanusBinary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("janus"); err != nil {
			return fmt.Errorf("%w: %v", ErrNoJanus, err)
		}
	}
	modules, err := janusModuleDirs(filepath.Glob, os.Stat)
	if err != nil {
		return err
	}
	iceAddr := cfg.ICEAddr
	if iceAddr == nil {
		routes, err := os.Open("/proc/net/route")
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoAddress, err)
		}
		iceAddr, err = ICEAddr(routes, InterfaceAddrs)
		routes.Close()
		if err != nil {
			return err
		}
	}

	janusDir := filepath.Join(cfg.Dir, "janus")
	if err := os.MkdirAll(janusDir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	logPath := filepath.Join(cfg.Dir, "janus.log")
	janusLog, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("demo: janus log: %w", err)
	}
	defer janusLog.Close()

	var (
		jp    *janusProcess
		wsURL string
	)
	// Janus 1.1.2 has been seen to crash, rarely, while it reads its
	// configuration; a second start has always worked.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		if err := writeJanusConfig(janusVars{
			Dir:           janusDir,
			PluginsDir:    filepath.Join(modules, "plugins"),
			TransportsDir: filepath.Join(modules, "transports"),
			EventsDir:     filepath.Join(modules, "events"),
			LoggersDir:    filepath.Join(modules, "loggers"),
			ICEAddr:       iceAddr.String(),
			WSPort:        port,
			Room:          Room,
		}); err != nil {
			return err
		}
		if jp, err = startJanus(bin, janusDir, janusLog); err != nil {
			return err
		}
		wsURL = fmt.Sprintf("ws://127.0.0.1:%d/", port)
		rctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
		err = jp.waitReady(rctx, wsURL)
		cancel()
		if err == nil {
			break
		}
		_ = jp.stop(StopTimeout)
		if attempt == 2 || ctx.Err() != nil {
			return fmt.Errorf("%w (janus log: %s)", err, logPath)
		}
		log.Warn("janus did not start; trying again", "err", err)
	}
	defer func() {
		if err := jp.stop(StopTimeout); err != nil {
			log.Warn("stop janus", "err", err)
		}
	}()
	log.Info("janus ready", "api", wsURL, "media", iceAddr.String(), "log", logPath)

	meetingURL := fmt.Sprintf("janus+ws://127.0.0.1:%s/?room=%d", portOf(wsURL), Room)
	join := func() (meeting.Session, error) {
		jctx, cancel := context.WithTimeout(ctx, JoinTimeout)
		defer cancel()
		return joinGuest(jctx, meetingURL+"&display="+urlEscape(GuestName), iceAddr, guest, log.With("guest", GuestName))
	}
	sess, err := join()
	if err != nil {
		return err
	}
	defer func() {
		if sess == nil {
			return
		}
		lctx, cancel := context.WithTimeout(context.Background(), LeaveTimeout)
		defer cancel()
		if err := sess.Leave(lctx); err != nil {
			log.Warn("guest leave", "err", err)
		}
	}()
	log.Info("guest joined", "meeting", meetingURL)

	if err := writeFileAtomic(calPath, Calendar(now(), meetingURL)); err != nil {
		return err
	}
	defer os.Remove(calPath)
	if ready != nil {
		ready(Info{MeetingURL: meetingURL, CalendarPath: calPath, ICEAddr: iceAddr, JanusLog: logPath})
	}

	for {
		var ended <-chan struct{}
		if sess != nil {
			ended = sess.Done()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-jp.done:
			return fmt.Errorf("demo: janus exited: %v (log: %s)", jp.err, logPath)
		case <-ended:
			log.Warn("guest session ended; joining again", "err", sess.Err(), "in", RejoinDelay)
			sess = nil
		case <-time.After(RejoinDelay):
			if sess != nil {
				continue
			}
			if sess, err = join(); err != nil {
				log.Warn("guest join", "err", err)
				sess = nil
			}
		}
	}
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a reader (roomd watching the calendar) never sees half.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("demo: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("demo: write %s: %w", path, err)
	}
	return nil
}

func portOf(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	return u.Port()
}

func urlEscape(s string) string { return url.QueryEscape(s) }
