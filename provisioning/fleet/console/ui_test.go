package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atriumroom/atrium/internal/testclock"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

// sqliteConsole is a console on a fresh SQLite store, for the tests that
// do not depend on the engine.
func sqliteConsole(t *testing.T, clock *fakeClock) (*Console, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "fleet.db"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	con, err := New(Options{Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return con, st
}

// TestUIServedWithCSP fetches the page and its scripts and styles and
// checks the policy that keeps anything a device reports from running.
func TestUIServedWithCSP(t *testing.T) {
	con, _ := sqliteConsole(t, testclock.New(time.Now()))
	srv := httptest.NewServer(con.Handler())
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	res, index := get("/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// Every script and stylesheet the page names is served, with the policy.
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(index, -1)
	var assets []string
	for _, m := range refs {
		assets = append(assets, m[1])
	}
	if !strings.Contains(strings.Join(assets, " "), "app.js") || !strings.Contains(strings.Join(assets, " "), "style.css") {
		t.Fatalf("index names %v", assets)
	}
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css"}
	for _, p := range append([]string{"/"}, assets...) {
		if strings.Contains(p, "://") || strings.HasPrefix(p, "//") {
			t.Errorf("index loads an outside resource: %s", p)
			continue
		}
		res, _ := get("/" + strings.TrimPrefix(p, "/"))
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
		if want, ok := wantType[filepath.Ext(p)]; ok && !strings.HasPrefix(res.Header.Get("Content-Type"), want) {
			t.Errorf("%s: Content-Type %s", p, res.Header.Get("Content-Type"))
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
			"object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") {
			t.Errorf("%s: CSP %q allows too much", p, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, res.Header)
		}
	}
	// The policy forbids inline code, so the page must have none.
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(index) || strings.Contains(index, "<style") ||
		regexp.MustCompile(`\son[a-z]+=`).MatchString(index) || strings.Contains(index, "style=") {
		t.Error("index.html has inline script, style or event handler")
	}
	// The script builds the page with textContent, never HTML strings.
	_, app := get("/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(app, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	if res, _ := get("/nothing.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown asset: %d", res.StatusCode)
	}
	// API answers carry the policy and no-store too.
	res, _ = get("/api/v1/session")
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("API: %d %v", res.StatusCode, res.Header)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("a perfectly long password")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != bcryptCost {
		t.Fatalf("cost %d, %v", cost, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("a perfectly long password")) != nil {
		t.Fatal("hash does not verify")
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("a perfectly long passworD")) == nil {
		t.Fatal("hash verifies another password")
	}
	for _, pw := range []string{"", "short", "elevenchars", strings.Repeat("x", MaxPasswordLen+1)} {
		if _, err := HashPassword(pw); !errors.Is(err, ErrWeakPassword) {
			t.Errorf("HashPassword(%d bytes): %v", len(pw), err)
		}
	}
}

func TestNewNeedsStore(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("New without a store: %v", err)
	}
}

// TestLimiterBounded sprays more usernames than the limiter keeps: its
// map stays bounded and the spray stays limited.
func TestLimiterBounded(t *testing.T) {
	clock := testclock.New(time.Now())
	l := newLimiter(clock.Now)
	for i := range maxLimiterKeys + 500 {
		l.fail(fmt.Sprintf("user:%d", i))
	}
	if n := len(l.fails); n > maxLimiterKeys+1 {
		t.Fatalf("limiter holds %d keys", n)
	}
	if blocked, _ := l.blocked("overflow", maxFailsPerUser); !blocked {
		t.Fatal("the overflow of a spray is not limited")
	}
	clock.Advance(loginWindow)
	l.fail("user:new")
	if n := len(l.fails); n != 1 {
		t.Fatalf("after the window, %d keys remain", n)
	}
}

func TestMaskAndUnmask(t *testing.T) {
	stored := json.RawMessage(`{"adminPin":"1234","calendar":{"url":"https://c.example","token":"tok"},
		"iceServers":[{"urls":["stun:s.example"]},{"urls":["turn:t.example"],"username":"u","credential":"cred"}]}`)
	masked := string(maskJSON(stored))
	for _, secret := range []string{"1234", "tok", "cred"} {
		if strings.Contains(masked, `"`+secret+`"`) {
			t.Errorf("masked body shows %s: %s", secret, masked)
		}
	}
	if strings.Count(masked, Mask) != 3 {
		t.Errorf("masked body: %s", masked)
	}
	back, errs := unmask(json.RawMessage(masked), stored)
	if len(errs) != 0 || !sameJSON(back, stored) {
		t.Fatalf("unmask: %s %v", back, errs)
	}
	// The second ICE server moved to the first place: its stored
	// credential is at another index, so the mask there cannot be filled.
	moved := `{"iceServers":[{"urls":["turn:t.example"],"username":"u","credential":"` + Mask + `"}]}`
	if _, errs := unmask(json.RawMessage(moved), stored); len(errs) != 1 || errs[0].Field != "iceServers[0].credential" {
		t.Fatalf("moved secret: %v", errs)
	}
}
