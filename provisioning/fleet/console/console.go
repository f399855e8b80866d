// Package console is fleetd's web console: the pages people use to run a
// fleet (web/, plain HTML, CSS and JavaScript embedded in the binary) and
// the JSON API under /api/v1/ those pages call, documented in
// docs/fleetd-console-openapi.json.
//
// Who may do what:
//   - Every API path but POST /api/v1/login needs a session: a random token
//     in an HttpOnly, SameSite=Strict cookie (Secure when served over
//     HTTPS) whose SHA-256 is what the store keeps, so a database leak hands
//     out no session. A session ends after SessionIdle without a request,
//     after MaxSessionAge in any case, at logout, and when its account is
//     disabled.
//   - Every request that changes something (any method but GET and HEAD)
//     must carry the session's CSRF token in the X-CSRF-Token header and,
//     when the browser sends an Origin, come from this origin; otherwise it
//     is refused with 403 and changes nothing.
//   - Accounts are admins (everything) or viewers (read only: every write
//     is 403). Only admins see and manage accounts.
//   - Failed logins are counted per username and per client address; past
//     the limit, login answers 429 with Retry-After, even with the right
//     password.
//   - Every change goes through the store, which writes it and its audit
//     entry in one transaction with the account's username as the actor.
//
// Updates (updates.go): the releases of fleetd's update repository
// (Options.Releases), rollouts of one release to an organisation ring by
// ring with pause, resume and abort, per-device update status, and each
// site's maintenance window.
//
// Secrets in profiles (fleetapi.SecretPaths) never leave the server in
// clear: the API shows them as [Mask], and a profile saved with [Mask] in
// a secret's place keeps the value stored before.
//
// The package keeps no global state and starts no goroutines.
package console

import (
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

//go:embed web
var web embed.FS

// Defaults of [Options].
const (
	DefaultOnlineWindow = 3 * time.Minute
	DefaultSessionIdle  = 30 * time.Minute
	// MaxSessionAge ends a session however busy it is, so a stolen cookie
	// does not live for ever.
	MaxSessionAge = 12 * time.Hour
	// MaxBody bounds every request body.
	MaxBody = 1 << 20
)

// Options configure [New].
type Options struct {
	// Store is the fleet database; required.
	Store *store.Store
	// Logger receives login failures and internal errors; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnlineWindow: a device is online when it checked in within this
	// (default DefaultOnlineWindow).
	OnlineWindow time.Duration
	// SecureCookies marks the session cookie Secure (and names it with the
	// __Host- prefix); set it when the console is served over HTTPS.
	SecureCookies bool
	// SessionIdle ends a session after this long without a request
	// (default DefaultSessionIdle).
	SessionIdle time.Duration
	// Releases lists the releases in fleetd's update repository, which
	// rollouts offer; nil means fleetd has none (the Updates page says how
	// to publish one).
	Releases rollout.Catalog
}

// Console serves the web console. It is safe for concurrent use.
type Console struct {
	st           *store.Store
	log          *slog.Logger
	now          func() time.Time
	onlineWindow time.Duration
	secure       bool
	idle         time.Duration
	cookieName   string
	limiter      *limiter
	assets       map[string]asset
	releases     rollout.Catalog

	// cost is the bcrypt cost of the hashes the console makes: bcryptCost;
	// the package's tests lower it, since bcrypt at full cost under the
	// race detector takes seconds a hash.
	cost      int
	dummyOnce sync.Once
	dummyHash []byte // compared against when a username is unknown
}

// ErrNoStore: Options.Store was not set.
var ErrNoStore = errors.New("console: no store")

// New builds a console.
func New(opts Options) (*Console, error) {
	if opts.Store == nil {
		return nil, ErrNoStore
	}
	c := &Console{
		st: opts.Store, log: opts.Logger, now: opts.Now, onlineWindow: opts.OnlineWindow,
		secure: opts.SecureCookies, idle: opts.SessionIdle, cookieName: "fleetd_session", cost: bcryptCost,
		releases: opts.Releases,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.onlineWindow <= 0 {
		c.onlineWindow = DefaultOnlineWindow
	}
	if c.idle <= 0 {
		c.idle = DefaultSessionIdle
	}
	if c.secure {
		// __Host- makes the browser refuse the cookie unless it is Secure,
		// host-only and for "/": a sibling subdomain cannot plant one.
		c.cookieName = "__Host-fleetd_session"
	}
	c.limiter = newLimiter(c.now)
	var err error
	if c.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	return c, nil
}

// Handler returns the console: the UI at "/" and the JSON API at
// "/api/v1/".
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range c.routes() {
		mux.Handle(rt.method+" "+rt.path, c.guard(rt))
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		c.problem(w, http.StatusNotFound, "not-found", "no such API path: "+r.Method+" "+r.URL.Path, "")
	})
	mux.HandleFunc("/", c.serveAsset)
	return mux
}

// randomToken returns n random bytes in base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// contentSecurityPolicy allows only this origin's scripts, styles and
// connections and no inline code: the console shows what devices report
// (names, problems, event messages), and none of it may ever run as code.
const contentSecurityPolicy = "default-src 'none'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"connect-src 'self'; " +
	"object-src 'none'; " +
	"base-uri 'none'; " +
	"form-action 'self'; " +
	"frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
}

func loadAssets() (map[string]asset, error) {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
		".svg":  "image/svg+xml",
	}
	out := map[string]asset{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		// Spelled out rather than from mime.TypeByExtension, which reads
		// the host's /etc/mime.types: a wrong type for app.js makes the
		// browser refuse it under nosniff.
		ct, ok := types[path.Ext(name)]
		if !ok {
			return fmt.Errorf("no content type for %s", name)
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		out["/"+name] = asset{body, ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	idx, ok := out["/index.html"]
	if !ok {
		return nil, fmt.Errorf("console assets: index.html missing")
	}
	out["/"] = idx
	return out, nil
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	w.Header().Set("Cache-Control", "no-cache")
	a, ok := c.assets[r.URL.Path]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.body)
	}
}
