// Package pipewiretest starts a private, real PipeWire (Debian's pipewire,
// pipewire-pulse and wireplumber) for tests of the sound-server audio path:
// hal/pulse and the audio self-test.
//
// The instance is the test's alone: its own runtime directory (socket
// paths), configuration, state and home, no D-Bus, and no hardware:
// WirePlumber's ALSA, V4L2 and libcamera monitors are off, so it never
// touches the machine's sound cards. It runs as whoever runs the test;
// PipeWire 0.3.65 needs no special settings as root (CI), and as root its
// audio threads get real-time priority (module-rt, without RTKit), which
// keeps the echo path free of gaps on a machine busy with other tests.
// Elsewhere that request fails quietly.
//
// Its graph is a "room" (conf/pipewire.conf): a null sink, RoomSink, is the
// room's speaker, and its monitor, RoomMonitor, is the room's microphone: a
// perfect acoustic echo path. On top of that it loads the repository's
// rootfs/pipewire/pipewire.conf.d/*.conf, the image's echo canceller, whose
// output WirePlumber sends to the room's speaker and whose input Start
// moves to the room's monitor (no session manager picks a monitor for a
// microphone). Tests play into ECSink and record from ECSource to hear the
// canceller at work, or use the room's nodes directly for the raw echo.
//
// Start fails the test, rather than skipping it, when a program is missing:
// a missing server must not look like a passing suite. CI installs
// pipewire, pipewire-pulse, wireplumber and pulseaudio-utils (pactl).
package pipewiretest

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/proc"
)

// Node names of the test room (conf/pipewire.conf).
const (
	// RoomSink is the room's speaker, a null sink.
	RoomSink = "atrium-test-room"
	// RoomMonitor is the room's microphone, RoomSink's monitor source: what
	// RoomSink plays, unchanged, in the same graph cycle.
	RoomMonitor = RoomSink + ".monitor"
)

// Node names of the echo canceller, as rootfs/pipewire names them (hal/pulse
// has the same constants, and a test of its own that they match the file).
const (
	ECSink     = "atrium-ec-sink"
	ECSource   = "atrium-ec-source"
	ECCapture  = "atrium-ec-capture"
	ECPlayback = "atrium-ec-playback"
)

// ReadyTimeout bounds the wait for the graph to be complete: servers up,
// the canceller attached to the room.
const ReadyTimeout = 30 * time.Second

// StopTimeout is how long each program may take to exit after SIGTERM.
const StopTimeout = 10 * time.Second

//go:embed conf
var confFS embed.FS

// programs the harness runs, and the Debian package of each.
var programs = map[string]string{
	"pipewire":       "pipewire-bin",
	"pipewire-pulse": "pipewire-pulse",
	"wireplumber":    "wireplumber",
	"pw-link":        "pipewire-bin",
	"pactl":          "pulseaudio-utils",
}

// Server is a running private PipeWire.
type Server struct {
	// Dir holds everything of the instance: configuration, state, home.
	Dir string
	// RuntimeDir is its XDG_RUNTIME_DIR, where the sockets are: PipeWire's
	// pipewire-0 and the pulse server's pulse/native.
	RuntimeDir string
	// PulseServer is the pulse-protocol server string for clients (such as
	// hal/pulse's Options.Server): "unix:RUNTIMEDIR/pulse/native".
	PulseServer string
	// Env is the environment for client programs of this instance (pactl,
	// pw-link, pw-cat): the test's own, with the instance's directories and
	// PULSE_SERVER.
	Env []string

	bins  map[string]string
	procs []*proc.Process
}

// Start starts PipeWire, its pulse server and WirePlumber, and waits until
// the echo canceller is attached to the room. Everything is stopped, and
// the files removed, when the test ends; the programs' output is added to
// a failed test's log.
func Start(t testing.TB) *Server {
	t.Helper()
	bins := findPrograms(t)
	root := repoRoot(t)
	ecConfs, err := filepath.Glob(filepath.Join(root, "rootfs", "pipewire", "pipewire.conf.d", "*.conf"))
	if err != nil || len(ecConfs) == 0 {
		t.Fatalf("pipewiretest: no rootfs/pipewire/pipewire.conf.d/*.conf under %s (%v)", root, err)
	}

	// Unix socket paths must stay under 108 bytes, which a t.TempDir named
	// after a long test can exceed: the instance lives in a short one.
	dir, err := os.MkdirTemp("", "atrium-pw-")
	if err != nil {
		t.Fatalf("pipewiretest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{Dir: dir, RuntimeDir: filepath.Join(dir, "run"), bins: bins}
	s.PulseServer = "unix:" + filepath.Join(s.RuntimeDir, "pulse", "native")
	if err := s.writeConfig(ecConfs); err != nil {
		t.Fatalf("pipewiretest: %v", err)
	}
	s.Env = s.environment()

	s.start(t, "pipewire")
	if err := s.waitFor(10*time.Second, "PipeWire's socket", func() error {
		_, err := os.Stat(filepath.Join(s.RuntimeDir, "pipewire-0"))
		return err
	}); err != nil {
		t.Fatalf("pipewiretest: %v", err)
	}
	s.start(t, "pipewire-pulse")
	s.start(t, "wireplumber")
	var moved time.Time
	if err := s.waitFor(ReadyTimeout, "the echo canceller attached to the room", func() error {
		err := s.ready()
		// A move made before the session manager runs its policy is
		// lost; make it again if the link has not followed in a second.
		if err != nil && time.Since(moved) > time.Second {
			if merr := s.attachCanceller(); merr != nil {
				return errors.Join(err, merr)
			}
			moved = time.Now()
		}
		return err
	}); err != nil {
		links, _ := s.run(context.Background(), "pw-link", "-l")
		t.Fatalf("pipewiretest: %v\n--- links ---\n%s", err, links)
	}
	return s
}

func findPrograms(t testing.TB) map[string]string {
	t.Helper()
	bins := map[string]string{}
	var missing []string
	for name, pkg := range programs {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", name, pkg))
			continue
		}
		bins[name] = p
	}
	if len(missing) > 0 {
		t.Fatalf("pipewiretest: missing programs: %s; install them with: apt-get install pipewire pipewire-pulse wireplumber pulseaudio-utils", strings.Join(missing, ", "))
	}
	return bins
}

// repoRoot finds the repository from the test's working directory (go
// test runs in the package's directory): the nearest go.mod above.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("pipewiretest: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("pipewiretest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// writeConfig lays out the instance's files:
//
//	config/pipewire/pipewire.conf         conf/pipewire.conf
//	config/pipewire/pipewire.conf.d/      the repository's rootfs/pipewire ones
//	config/pipewire/pipewire-pulse.conf   conf/pipewire-pulse.conf
//	config/pipewire/client{,-rt}.conf     conf/client.conf
//	config/wireplumber/wireplumber.conf   conf/wireplumber.conf
//	config/wireplumber/main.lua.d/60-atrium-test.lua
func (s *Server) writeConfig(ecConfs []string) error {
	cfg := filepath.Join(s.Dir, "config")
	for _, d := range []string{
		filepath.Join(cfg, "pipewire", "pipewire.conf.d"),
		filepath.Join(cfg, "wireplumber", "main.lua.d"),
		filepath.Join(s.Dir, "state"),
		filepath.Join(s.Dir, "home"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// PipeWire refuses a runtime directory others can enter.
	if err := os.Mkdir(s.RuntimeDir, 0o700); err != nil {
		return err
	}
	files := []struct{ src, dst string }{
		{"conf/pipewire.conf", filepath.Join(cfg, "pipewire", "pipewire.conf")},
		{"conf/pipewire-pulse.conf", filepath.Join(cfg, "pipewire", "pipewire-pulse.conf")},
		{"conf/client.conf", filepath.Join(cfg, "pipewire", "client.conf")},
		{"conf/client.conf", filepath.Join(cfg, "pipewire", "client-rt.conf")},
		{"conf/wireplumber.conf", filepath.Join(cfg, "wireplumber", "wireplumber.conf")},
		{"conf/60-atrium-test.lua", filepath.Join(cfg, "wireplumber", "main.lua.d", "60-atrium-test.lua")},
	}
	for _, f := range files {
		b, err := confFS.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.dst, b, 0o644); err != nil {
			return err
		}
	}
	for _, src := range ecConfs {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfg, "pipewire", "pipewire.conf.d", filepath.Base(src)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// environment is the test's environment without anything that would lead
// a program to another server, a session bus or a display, plus the
// instance's directories.
func (s *Server) environment() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "PIPEWIRE_"), strings.HasPrefix(k, "PULSE_"),
			strings.HasPrefix(k, "WIREPLUMBER_"), strings.HasPrefix(k, "DBUS_"),
			k == "HOME", k == "DISPLAY", k == "WAYLAND_DISPLAY":
			continue
		}
		env = append(env, kv)
	}
	cfg := filepath.Join(s.Dir, "config")
	return append(env,
		"HOME="+filepath.Join(s.Dir, "home"),
		"XDG_RUNTIME_DIR="+s.RuntimeDir,
		"XDG_CONFIG_HOME="+cfg,
		"XDG_STATE_HOME="+filepath.Join(s.Dir, "state"),
		// Only this instance's configuration: not the host's
		// /etc/pipewire, nor Debian's defaults.
		"PIPEWIRE_CONFIG_DIR="+filepath.Join(cfg, "pipewire"),
		"PIPEWIRE_RUNTIME_DIR="+s.RuntimeDir,
		"PULSE_RUNTIME_PATH="+filepath.Join(s.RuntimeDir, "pulse"),
		"PULSE_SERVER="+s.PulseServer,
		// Logs go to stderr (the captured log), not to a journal.
		"PIPEWIRE_LOG_SYSTEMD=false",
		"DBUS_SESSION_BUS_ADDRESS=disabled:",
	)
}

func (s *Server) start(t testing.TB, name string) {
	t.Helper()
	cmd := exec.Command(s.bins[name])
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	s.procs = append(s.procs, proc.Start(t, name, cmd, StopTimeout))
}

// Exited returns an error naming each program that has stopped, or nil
// while all run.
func (s *Server) Exited() error {
	var errs []error
	for _, p := range s.procs {
		if err := p.Exited(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Log returns what the programs wrote so far, one section each.
func (s *Server) Log() string {
	var b strings.Builder
	for _, p := range s.procs {
		b.WriteString(p.Log())
	}
	return b.String()
}

func (s *Server) waitFor(timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := s.Exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %w", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attachCanceller moves the canceller's capture stream to the room's
// monitor, as a person would with pavucontrol: through the pulse server,
// which tells the session manager (a target.object) to link it there. It
// waits for the session manager to have chosen the defaults, the sign
// that its policy runs.
func (s *Server) attachCanceller() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Pactl(ctx, "info")
	if err != nil {
		return err
	}
	if !strings.Contains(info, "Default Source: "+ECSource) {
		return errors.New("the session manager has not chosen the default source yet")
	}
	out, err := s.Pactl(ctx, "list", "source-outputs")
	if err != nil {
		return err
	}
	idx, ok := sourceOutput(out, ECCapture)
	if !ok {
		return fmt.Errorf("no source output %s yet", ECCapture)
	}
	_, err = s.Pactl(ctx, "move-source-output", idx, RoomMonitor)
	return err
}

// sourceOutput finds the index of the source output whose node.name is
// name in pactl list source-outputs' output.
func sourceOutput(out, name string) (string, bool) {
	var idx string
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(trimmed, "Source Output #"); ok {
			idx = n
		}
		if trimmed == `node.name = "`+name+`"` && idx != "" {
			return idx, true
		}
	}
	return "", false
}

// ready checks that the pulse server answers and the room's microphone is
// linked to the canceller and the canceller to the room's speaker.
func (s *Server) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Pactl(ctx, "info"); err != nil {
		return err
	}
	links, err := s.run(ctx, "pw-link", "-l")
	if err != nil {
		return err
	}
	for _, l := range [][2]string{{RoomSink, ECCapture}, {ECPlayback, RoomSink}} {
		if !linked(links, l[0], l[1]) {
			return fmt.Errorf("%s is not linked to %s yet", l[0], l[1])
		}
	}
	return nil
}

// linked reports whether pw-link -l's output shows a link from a port of
// node from to a port of node to.
func linked(out, from, to string) bool {
	var port string
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "|->"):
			if strings.HasPrefix(port, from+":") && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(trimmed, "|->")), to+":") {
				return true
			}
		case strings.HasPrefix(trimmed, "|<-"):
		default:
			port = trimmed
		}
	}
	return false
}

// Pactl runs pactl against this instance and returns its output.
func (s *Server) Pactl(ctx context.Context, args ...string) (string, error) {
	return s.run(ctx, "pactl", args...)
}

// Links returns pw-link -l's listing of the instance's links.
func (s *Server) Links(ctx context.Context) (string, error) {
	return s.run(ctx, "pw-link", "-l")
}

func (s *Server) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bins[name], args...)
	cmd.Env = s.Env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
