package demo

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/coder/websocket"
)

//go:embed *.jcfg.tmpl
var confFS embed.FS

// janusVars fill in the embedded configuration templates.
type janusVars struct {
	Dir                                              string
	PluginsDir, TransportsDir, EventsDir, LoggersDir string
	ICEAddr                                          string
	WSPort                                           int
	Room                                             uint64
}

// writeJanusConfig writes the Janus configuration into v.Dir.
func writeJanusConfig(v janusVars) error {
	entries, err := confFS.ReadDir(".")
	if err != nil {
		return fmt.Errorf("demo: read embedded janus configuration: %w", err)
	}
	for _, e := range entries {
		raw, err := confFS.ReadFile(e.Name())
		if err != nil {
			return fmt.Errorf("demo: read %s: %w", e.Name(), err)
		}
		tmpl, err := template.New(e.Name()).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return fmt.Errorf("demo: parse %s: %w", e.Name(), err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, v); err != nil {
			return fmt.Errorf("demo: fill in %s: %w", e.Name(), err)
		}
		name := strings.TrimSuffix(e.Name(), ".tmpl")
		if err := os.WriteFile(filepath.Join(v.Dir, name), b.Bytes(), 0o600); err != nil {
			return fmt.Errorf("demo: write janus configuration: %w", err)
		}
	}
	return nil
}

// janusModuleDirs finds the folder holding Janus's plugins, transports,
// events and loggers: Debian puts it under the multiarch library directory,
// a source build under /usr/local or /opt.
func janusModuleDirs(glob func(string) ([]string, error), stat func(string) (os.FileInfo, error)) (string, error) {
	patterns := []string{"/usr/lib/*/janus", "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus"}
	for _, p := range patterns {
		matches, _ := glob(p)
		for _, m := range matches {
			if _, err := stat(filepath.Join(m, "plugins", "libjanus_videoroom.so")); err == nil {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no VideoRoom plugin (libjanus_videoroom.so) under %s", ErrNoJanus, strings.Join(patterns, ", "))
}

// janusProcess is a running Janus.
type janusProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's result, set before done closes
}

// startJanus starts bin with the configuration in dir, its output going to
// log. Janus gets SIGTERM when the demo dies, even by SIGKILL, so that no
// orphan keeps the port.
func startJanus(bin, dir string, log io.Writer) (*janusProcess, error) {
	cmd := exec.Command(bin, "-F", dir, "-C", filepath.Join(dir, "janus.jcfg"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start %s: %w", bin, err)
	}
	p := &janusProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to timeout before killing Janus.
func (p *janusProcess) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("demo: janus did not stop within %s after SIGTERM; killed", timeout)
	}
}

// waitReady polls Janus's WebSocket API with info requests until one is
// answered, Janus exits or ctx ends.
func (p *janusProcess) waitReady(ctx context.Context, wsURL string) error {
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("demo: janus exited at start (%v); last answer: %v", p.err, last)
		default:
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		last = janusInfo(rctx, wsURL)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: janus did not answer on %s: %w (last: %v)", wsURL, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// janusInfo sends one info request over the WebSocket API.
func janusInfo(ctx context.Context, wsURL string) error {
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"janus":"info","transaction":"atrium-demo"}`)); err != nil {
		return fmt.Errorf("send info: %w", err)
	}
	_, data, err := conn.Read(ctx)
	if err != nil {
		return fmt.Errorf("read info reply: %w", err)
	}
	var reply struct {
		Janus string `json:"janus"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return fmt.Errorf("decode info reply: %w", err)
	}
	if reply.Janus != "server_info" {
		return errors.New("info answered with " + reply.Janus)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("demo: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
