// Package janustest starts a real Janus WebRTC server (Debian's janus
// package) for integration tests of the Janus provider.
//
// The configuration lives in conf/ next to this file and is embedded: only
// the VideoRoom plugin and the WebSocket and HTTP transports are loaded,
// both transports listen on free loopback ports, the admin API is off, and
// ICE uses one address with no STUN or TURN. The rooms are Room (open),
// PINRoom (needs PIN), H264Room and SimulcastRoom.
//
// Janus (through libnice) never gathers ICE candidates on loopback, so a
// test binary that uses this package runs in a network namespace of its
// own: its TestMain calls netns.Main, and Janus and the test's peers meet
// on netns.Addr.
//
// Start fails the test, rather than skipping it, when janus is not
// installed: a missing server must not look like a passing suite.
package janustest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/proc"
)

// Rooms configured in conf/janus.plugin.videoroom.jcfg.
const (
	// Room is an open VideoRoom.
	Room = 1234
	// PINRoom is a VideoRoom that needs PIN to join.
	PINRoom = 5678
	// PIN is PINRoom's PIN.
	PIN = "secret"
	// H264Room is a VideoRoom whose only video codec is H.264.
	H264Room = 2640
	// SimulcastRoom is a VP8 VideoRoom for up to 9 publishers with no
	// bitrate cap and no periodic keyframe requests (fir_freq 0): a
	// keyframe after a subscriber resumes or switches layers answers that
	// request alone.
	SimulcastRoom = 4321
	// AdminSecret is every room's secret, for requests such as "destroy".
	AdminSecret = "adminpwd"
)

// ReadyTimeout bounds the wait for Janus to answer its first info request.
const ReadyTimeout = 20 * time.Second

// StopTimeout is how long Janus may take to exit after SIGTERM before it is
// killed.
const StopTimeout = 10 * time.Second

// BinaryEnv names an environment variable that overrides the janus binary.
const BinaryEnv = "ATRIUM_JANUS"

//go:embed conf/*.jcfg
var confFS embed.FS

// Server is a running Janus.
type Server struct {
	// WSURL is the Janus API over WebSocket: ws://127.0.0.1:PORT/.
	WSURL string
	// ICEAddr is the one address Janus gathers ICE candidates on: the
	// test namespace's private address (netns.Addr), since Janus never
	// uses loopback. Test peers must gather on it too.
	ICEAddr net.IP
	// HTTPURL is the Janus API over HTTP: http://127.0.0.1:PORT/janus.
	HTTPURL string
	// Dir holds the configuration written for this server.
	Dir string

	proc *proc.Process
}

// Options adjust the server.
type Options struct {
	// DebugLevel is Janus's log level, 0-7; 0 means 4 (info).
	DebugLevel int
}

// Start starts Janus with the embedded configuration and waits until its
// WebSocket API answers an info request. Janus is stopped when the test
// ends, and its output is added to the test log if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := findBinary(t)
	dirs := findModuleDirs(t)

	if !netns.Inside() {
		t.Fatalf("janustest: the test binary must run in its own network namespace: call netns.Main(m) from TestMain (Janus refuses loopback for ICE, and tests must not use this machine's addresses)")
	}
	iceAddr := net.ParseIP(netns.Addr)
	dir := t.TempDir()
	wsPort, httpPort := freePort(t), freePort(t)
	// Janus binds RTP ports only when a PeerConnection is set up; a random
	// narrow range keeps concurrent test binaries apart.
	rtpMin := 20000 + 200*rand.IntN(150)
	level := opts.DebugLevel
	if level == 0 {
		level = 4
	}
	vars := map[string]any{
		"ConfDir":       dir,
		"ICEAddr":       iceAddr.String(),
		"PluginsDir":    dirs["plugins"],
		"TransportsDir": dirs["transports"],
		"EventsDir":     dirs["events"],
		"LoggersDir":    dirs["loggers"],
		"DebugLevel":    level,
		"RTPPortMin":    rtpMin,
		"RTPPortMax":    rtpMin + 199,
		"WSPort":        wsPort,
		"HTTPPort":      httpPort,
	}
	if err := writeConfig(dir, vars); err != nil {
		t.Fatalf("janustest: %v", err)
	}

	s := &Server{
		WSURL:   fmt.Sprintf("ws://127.0.0.1:%d/", wsPort),
		HTTPURL: fmt.Sprintf("http://127.0.0.1:%d/janus", httpPort),
		ICEAddr: iceAddr,
		Dir:     dir,
	}
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(bin, "-F", dir, "-C", filepath.Join(dir, "janus.jcfg"))
		cmd.Dir = dir
		s.proc = proc.Start(t, "janus", cmd, StopTimeout)
		err := s.waitReady(ReadyTimeout)
		if err == nil {
			return s
		}
		// Janus 1.1.2 has been seen to segfault, rarely, while it reads
		// its configuration at start; a second start has always worked.
		// The crash stays in the test's log.
		if attempt == 1 && s.proc.Crashed() {
			t.Logf("janustest: janus crashed at start (%v); starting it again\n--- its log ---\n%s", err, s.proc.Log())
			s.proc.Abandon()
			continue
		}
		t.Fatalf("janustest: janus did not become ready: %v", err)
	}
}

// Log returns what Janus wrote so far.
func (s *Server) Log() string { return s.proc.Log() }

// Info sends an info request over WebSocket and returns the reply.
func (s *Server) Info(ctx context.Context) (map[string]any, error) {
	conn, _, err := websocket.Dial(ctx, s.WSURL, &websocket.DialOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.WSURL, err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"janus":"info","transaction":"janustest-info"}`)); err != nil {
		return nil, fmt.Errorf("send info: %w", err)
	}
	_, data, err := conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read info reply: %w", err)
	}
	var reply map[string]any
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, fmt.Errorf("decode info reply: %w", err)
	}
	if reply["janus"] != "server_info" {
		return nil, fmt.Errorf("info answered with %q", data)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	return reply, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := s.proc.Exited(); err != nil {
			return fmt.Errorf("at start: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, last = s.Info(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer to info within %s: %v", timeout, last)
}

func findBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("janustest: the janus binary %s (from %s) is missing: %v", bin, BinaryEnv, err)
		}
		return bin
	}
	if bin, err := exec.LookPath("janus"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/janus"); err == nil {
		return "/usr/bin/janus"
	}
	t.Fatalf("janustest: the janus binary is missing: install Debian's janus package (apt-get install janus) or set %s", BinaryEnv)
	return ""
}

// findModuleDirs locates Janus's plugin folders: Debian puts them under the
// multiarch library directory, a source build under /usr/local or /opt.
func findModuleDirs(t testing.TB) map[string]string {
	t.Helper()
	patterns := []string{
		"/usr/lib/*/janus",
		"/usr/lib/janus",
		"/usr/local/lib/janus",
		"/opt/janus/lib/janus",
	}
	for _, p := range patterns {
		matches, _ := filepath.Glob(p)
		for _, m := range matches {
			if _, err := os.Stat(filepath.Join(m, "plugins", "libjanus_videoroom.so")); err != nil {
				continue
			}
			return map[string]string{
				"plugins":    filepath.Join(m, "plugins"),
				"transports": filepath.Join(m, "transports"),
				"events":     filepath.Join(m, "events"),
				"loggers":    filepath.Join(m, "loggers"),
			}
		}
	}
	t.Fatalf("janustest: no Janus VideoRoom plugin (libjanus_videoroom.so) under %s", strings.Join(patterns, ", "))
	return nil
}

func writeConfig(dir string, vars map[string]any) error {
	entries, err := confFS.ReadDir("conf")
	if err != nil {
		return fmt.Errorf("read embedded configuration: %w", err)
	}
	for _, e := range entries {
		raw, err := confFS.ReadFile("conf/" + e.Name())
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Name(), err)
		}
		tmpl, err := template.New(e.Name()).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return fmt.Errorf("parse %s: %w", e.Name(), err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, vars); err != nil {
			return fmt.Errorf("fill in %s: %w", e.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b.Bytes(), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", e.Name(), err)
		}
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("janustest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
