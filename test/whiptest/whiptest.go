// Package whiptest starts a real WHIP server for integration tests of the
// WHIP provider: Debian's simple-whip-server (Meetecho's WHIP endpoint in
// front of a Janus VideoRoom), run by Node.js against a Janus from
// test/janustest.
//
// The Debian package cannot be installed on the image (it depends on
// Debian's nodejs, which conflicts with the NodeSource nodejs the image
// ships), so the harness provisions it without root into
// <repo>/.cache/simple-whip-server/, reused by later runs:
//
//   - apt-get download simple-whip-server, and dpkg -x it into pkg/;
//   - npm ci --ignore-scripts of the Node modules its source requires, at
//     the exact versions of package.json and package-lock.json next to
//     this file (Debian bookworm's versions of the same modules), into
//     npm/.
//
// Each server runs from its own temporary directory holding copies of the
// package's two source files and a generated config.js, with NODE_PATH
// pointing at the cached modules. server.js listens on all interfaces and
// has no setting for the address, so a preloaded script (loopback.js,
// passed with node --require) makes its port-only listen bind 127.0.0.1;
// the package's files are not changed.
//
// Janus needs the test binary in a network namespace of its own
// (test/netns), where there is no network to download from. So a test
// binary calls Provision from TestMain before netns.Main: it fills the
// cache (or finds it filled) outside, and a failure is handed to the
// namespace's process, where Start reports it.
//
// Start fails the test, rather than skipping it, when node, npm, apt-get
// or dpkg is missing or the download fails: a missing server must not look
// like a passing suite.
package whiptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/proc"
)

// Package is the Debian package the harness runs.
const Package = "simple-whip-server"

// Timeouts of the harness.
const (
	// ProvisionTimeout bounds the download and the npm install of a first
	// run.
	ProvisionTimeout = 5 * time.Minute
	// ReadyTimeout bounds the wait for the server to connect to Janus and
	// open its REST API (it opens the port only once Janus answered).
	ReadyTimeout = 20 * time.Second
	// StopTimeout is how long node may take to exit after SIGTERM before
	// it is killed.
	StopTimeout = 5 * time.Second
	// requestTimeout bounds one admin request.
	requestTimeout = 10 * time.Second
)

// Rest is the base path of the WHIP API, config.js's rest.
const Rest = "/whip"

var (
	//go:embed package.json
	packageJSON []byte
	//go:embed package-lock.json
	packageLock []byte
)

// loopbackJS is preloaded into node: server.js calls listen(port, cb),
// which binds every interface; this adds the loopback address to exactly
// that form of call, so that the test server is not reachable from the
// network.
const loopbackJS = `'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function(...args) {
	if(typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function'))
		args.splice(1, 0, '127.0.0.1');
	return listen.apply(this, args);
};
`

// Server is a running simple-whip-server.
type Server struct {
	// URL is the base of the WHIP REST API:
	// http://127.0.0.1:PORT/whip.
	URL string
	// Port is the loopback port of the REST API.
	Port int
	// Dir is the directory the server runs in, with its config.js.
	Dir string

	t    testing.TB
	proc *proc.Process
}

// Start provisions simple-whip-server if needed, starts it against the
// Janus WebSocket API at janusWS (janustest.Server.WSURL) and waits until
// its REST API answers. The server is stopped when the test ends, and its
// output is added to the test log if the test failed.
func Start(t testing.TB, janusWS string) *Server {
	t.Helper()
	node, err := lookTool("node", "Node.js (e.g. from NodeSource, or apt-get install nodejs)")
	if err != nil {
		t.Fatalf("whiptest: %v", err)
	}
	inst, err := ensure()
	if err != nil {
		t.Fatalf("whiptest: %v", err)
	}

	dir := t.TempDir()
	port := freePort(t)
	if err := writeRunDir(dir, inst, janusWS, port); err != nil {
		t.Fatalf("whiptest: %v", err)
	}
	s := &Server{
		URL:  fmt.Sprintf("http://127.0.0.1:%d%s", port, Rest),
		Port: port,
		Dir:  dir,
		t:    t,
	}
	cmd := exec.Command(node, "--require", filepath.Join(dir, "loopback.js"), filepath.Join("src", "server.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+inst.modules,
		"NODE_ENV=production",
		// Its own log, minus the per-message dumps.
		"DEBUG=whip:*,-whip:debug,janus:*,-janus:debug,-janus:vdebug",
		"DEBUG_COLORS=0",
	)
	s.proc = proc.Start(t, "simple-whip-server", cmd, StopTimeout)
	if err := s.waitReady(ReadyTimeout); err != nil {
		t.Fatalf("whiptest: simple-whip-server did not become ready: %v\n%s", err, s.Log())
	}
	return s
}

// Log returns what the server wrote so far.
func (s *Server) Log() string { return s.proc.Log() }

// Endpoint is a WHIP endpoint to create, as the server's POST /whip/create
// takes it.
type Endpoint struct {
	// ID names the endpoint: its URL is URL/endpoint/ID.
	ID string `json:"id"`
	// Room is the Janus VideoRoom to publish into.
	Room int `json:"room"`
	// Label is the publisher's display name in the room; empty means ID
	// (the server's own default would be "WHIP Publisher <room>").
	Label string `json:"label,omitempty"`
	// Token, if set, is the bearer token the endpoint requires.
	Token string `json:"token,omitempty"`
	// PIN is the room's PIN, if it has one.
	PIN string `json:"pin,omitempty"`
	// ICEServers are returned as Link headers on OPTIONS and POST.
	ICEServers []ICEServer `json:"iceServers,omitempty"`
}

// ICEServer is a STUN or TURN server in the server's own format.
type ICEServer struct {
	URI        string `json:"uri"`
	Username   string `json:"username,omitempty"`
	Credential string `json:"credential,omitempty"`
}

// EndpointURL creates an endpoint publishing into room, labelled id, and
// returns its URL. It fails the test if the server refuses.
func (s *Server) EndpointURL(id string, room int) string {
	s.t.Helper()
	u, err := s.CreateEndpoint(context.Background(), Endpoint{ID: id, Room: room})
	if err != nil {
		s.t.Fatalf("whiptest: %v", err)
	}
	return u
}

// CreateEndpoint creates an endpoint and returns its URL.
func (s *Server) CreateEndpoint(ctx context.Context, e Endpoint) (string, error) {
	if e.Label == "" {
		e.Label = e.ID
	}
	body, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("create endpoint %s: %w", e.ID, err)
	}
	if err := s.admin(ctx, http.MethodPost, "/create", body); err != nil {
		return "", fmt.Errorf("create endpoint %s: %w", e.ID, err)
	}
	return s.URL + "/endpoint/" + e.ID, nil
}

// DestroyEndpoint removes an endpoint, and its publisher if one is live.
func (s *Server) DestroyEndpoint(ctx context.Context, id string) error {
	if err := s.admin(ctx, http.MethodDelete, "/endpoint/"+id, nil); err != nil {
		return fmt.Errorf("destroy endpoint %s: %w", id, err)
	}
	return nil
}

// EndpointState is an endpoint as GET /whip/endpoints lists it.
type EndpointState struct {
	ID      string `json:"id"`
	Room    int    `json:"room"`
	Label   string `json:"label"`
	Enabled bool   `json:"enabled"`
	// Resource is the session's path while a publisher is live.
	Resource string `json:"resource"`
}

// Endpoints lists the server's endpoints.
func (s *Server) Endpoints(ctx context.Context) ([]EndpointState, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/endpoints", nil)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer resp.Body.Close()
	var list []EndpointState
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("list endpoints: %s: %w", resp.Status, err)
	}
	return list, nil
}

func (s *Server) admin(ctx context.Context, method, path string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(text))
	}
	return nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := s.proc.Exited(); err != nil {
			return fmt.Errorf("at start: %w", err)
		}
		last = s.healthy()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no healthcheck answer within %s: %v", timeout, last)
}

func (s *Server) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthcheck", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s", resp.Status)
	}
	return nil
}

// install is a provisioned simple-whip-server.
type install struct {
	src     string // the package's src/ directory
	web     string // the package's web/ directory
	modules string // node_modules for NODE_PATH
}

// envProvisionErr hands Provision's failure to the test binary's process
// in the network namespace, which inherits the environment.
const envProvisionErr = "ATRIUM_WHIPTEST_PROVISION_ERROR"

// Provision downloads and installs simple-whip-server and its Node
// modules into <repo>/.cache/simple-whip-server/ unless they are there
// already. Call it from TestMain before netns.Main, which moves the tests
// where there is no network. It also records its error, if any, for
// Start to report inside the namespace; so TestMain may ignore it and let
// the tests that need the server fail.
func Provision() error {
	_, err := provision()
	if err != nil {
		os.Setenv(envProvisionErr, err.Error())
	}
	return err
}

// ensure returns the installation, provisioning it if needed and
// possible.
func ensure() (install, error) {
	inst, cached, err := cachedInstall()
	if err != nil {
		return install{}, err
	}
	if cached {
		return inst, nil
	}
	if msg := os.Getenv(envProvisionErr); msg != "" {
		return install{}, errors.New(msg)
	}
	if netns.Inside() {
		return install{}, fmt.Errorf("%s is not in %s, and this test runs in a network namespace without network: "+
			"call whiptest.Provision() from TestMain before netns.Main", Package, cacheDir(inst))
	}
	return provision()
}

// cachedInstall says where the installation is and whether it is
// complete, without changing anything.
func cachedInstall() (inst install, complete bool, err error) {
	root, err := repoRoot()
	if err != nil {
		return install{}, false, err
	}
	cache := filepath.Join(root, ".cache", Package)
	share := filepath.Join(cache, "pkg", "usr", "share", Package)
	inst = install{
		src:     filepath.Join(share, "src"),
		web:     filepath.Join(share, "web"),
		modules: filepath.Join(cache, "npm", "node_modules"),
	}
	if _, err := os.Stat(filepath.Join(inst.src, "server.js")); err != nil {
		return inst, false, nil
	}
	got, err := os.ReadFile(filepath.Join(inst.modules, stampName))
	return inst, err == nil && strings.TrimSpace(string(got)) == lockSum(), nil
}

func cacheDir(inst install) string { return filepath.Dir(filepath.Dir(inst.modules)) }

// stampName marks node_modules as installed from the embedded lock file.
const stampName = ".atrium-lock-sha256"

func lockSum() string {
	sum := sha256.Sum256(append(append([]byte(nil), packageJSON...), packageLock...))
	return hex.EncodeToString(sum[:])
}

// provision fills the cache; concurrent test binaries serialize on a lock
// file, and the second finds the work done.
func provision() (install, error) {
	inst, _, err := cachedInstall()
	if err != nil {
		return install{}, err
	}
	cache := cacheDir(inst)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return install{}, err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return install{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return install{}, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	ctx, cancel := context.WithTimeout(context.Background(), ProvisionTimeout)
	defer cancel()
	if _, err := os.Stat(filepath.Join(inst.src, "server.js")); err != nil {
		if err := fetchPackage(ctx, cache, filepath.Join(cache, "pkg")); err != nil {
			return install{}, err
		}
	}
	if err := installModules(ctx, filepath.Dir(inst.modules)); err != nil {
		return install{}, err
	}
	return inst, nil
}

// fetchPackage downloads the .deb and unpacks it into pkg, through a
// temporary directory so that an interrupted run leaves no half tree.
func fetchPackage(ctx context.Context, cache, pkg string) error {
	aptGet, err := lookTool("apt-get", "apt (this harness needs a Debian system with bookworm's main archive in its apt sources)")
	if err != nil {
		return err
	}
	dpkg, err := lookTool("dpkg", "dpkg (Debian)")
	if err != nil {
		return err
	}
	debDir := filepath.Join(cache, "deb")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(debDir, Package+"_*.deb"))
	if len(debs) == 0 {
		cmd := exec.CommandContext(ctx, aptGet, "download", Package)
		cmd.Dir = debDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get download %s failed (%v): it needs network access and an apt source with the package "+
				"(Debian bookworm or later, main; run apt-get update first):\n%s", Package, err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(debDir, Package+"_*.deb"))
		if len(debs) == 0 {
			return fmt.Errorf("apt-get download %s left no .deb in %s", Package, debDir)
		}
	}
	deb := debs[len(debs)-1]
	tmp, err := os.MkdirTemp(cache, "pkg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, dpkg, "-x", deb, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg -x %s: %w\n%s", deb, err, out)
	}
	if err := os.RemoveAll(pkg); err != nil {
		return err
	}
	return os.Rename(tmp, pkg)
}

// installModules runs npm ci for the embedded lock file, unless the
// modules installed from that very lock file are there already.
func installModules(ctx context.Context, dir string) error {
	want := lockSum()
	stamp := filepath.Join(dir, "node_modules", stampName)
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		return nil
	}
	npm, err := lookTool("npm", "npm (it comes with Node.js)")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"package.json": packageJSON, "package-lock.json": packageLock} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	// --ignore-scripts: none of these modules needs its install script
	// (websocket's native helpers have JavaScript fallbacks), and a test
	// run should not execute them.
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s failed (%v): it needs access to the npm registry:\n%s", dir, err, out)
	}
	return os.WriteFile(stamp, []byte(want+"\n"), 0o644)
}

// writeRunDir lays out one server's working directory: server.js requires
// ./config.js next to itself, and node resolves that through symbolic
// links to the real file, so the sources are copied rather than linked.
func writeRunDir(dir string, inst install, janusWS string, port int) error {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"server.js", "whip-janus.js"} {
		data, err := os.ReadFile(filepath.Join(inst.src, name))
		if err != nil {
			return fmt.Errorf("read the package's %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			return err
		}
	}
	// The demo page, served from the working directory's web/.
	if err := os.Symlink(inst.web, filepath.Join(dir, "web")); err != nil {
		return err
	}
	cfg := map[string]any{
		"janus":        map[string]any{"address": janusWS},
		"port":         port,
		"rest":         Rest,
		"allowTrickle": true,
		// Strict, as RFC 9725 asks, so that a client's If-Match is checked.
		"strictETags": true,
		"iceServers":  []any{},
	}
	js, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	config := "// Written by test/whiptest.\nmodule.exports = " + string(js) + ";\n"
	if err := os.WriteFile(filepath.Join(src, "config.js"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "loopback.js"), []byte(loopbackJS), 0o644)
}

func lookTool(name, install string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed, and simple-whip-server needs it: install %s", name, install)
	}
	return p, nil
}

// repoRoot finds the module root (where go.mod is) from the working
// directory, which go test sets to the package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("whiptest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
