package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/ui"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSecurityHeaders checks the headers every response carries, errors
// included: a 404 page is a page too.
func checkSecurityHeaders(t *testing.T, path string, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", path, got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("%s: Cache-Control = %q, want no-cache", path, got)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	directives := make(map[string]string)
	for d := range strings.SplitSeq(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'self'",
		"script-src":  "'self'",
		"connect-src": "'self'",
		"img-src":     "'self' data:",
	} {
		if got, ok := directives[name]; !ok || got != want {
			t.Errorf("%s: CSP %s = %q, want %q (policy %q)", path, name, got, want, csp)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: CSP allows unsafe sources: %q", path, csp)
	}
}

func TestIndex(t *testing.T) {
	h := ui.Handler()
	for _, path := range []string{"/", "/index.html"} {
		resp := get(t, h, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type = %q", path, got)
		}
		checkSecurityHeaders(t, path, resp)
		b := body(t, resp)
		for _, id := range []string{"room-name", "clock", "meeting-state", "join-url", "join-button", "leave-button", "join-error", "devices", "connection",
			// The in-call screen (call.js looks them up by id).
			"call", "call-stage", "tiles", "call-empty", "call-banner", "participants-panel", "participant-list",
			"stats-panel", "stats-body", "quality", "quality-text", "pager", "page-prev", "page-next", "page-label",
			"layout-button", "participants-button", "participant-count", "stats-button", "call-leave-button",
			// The agenda and the end-of-meeting prompt (agenda.js).
			"agenda-section", "agenda", "agenda-note", "agenda-empty", "end-prompt", "end-prompt-text", "end-prompt-stay", "end-prompt-leave"} {
			if !strings.Contains(b, `id="`+id+`"`) {
				t.Errorf("GET %s: no element with id %q", path, id)
			}
		}
	}
}

func TestAssetTypes(t *testing.T) {
	h := ui.Handler()
	for path, want := range map[string]string{
		"/app.js":    "text/javascript; charset=utf-8",
		"/call.js":   "text/javascript; charset=utf-8",
		"/agenda.js": "text/javascript; charset=utf-8",
		"/style.css": "text/css; charset=utf-8",
		"/icon.svg":  "image/svg+xml",
	} {
		resp := get(t, h, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type = %q, want %q", path, got, want)
		}
		if body(t, resp) == "" {
			t.Errorf("GET %s: empty body", path)
		}
		checkSecurityHeaders(t, path, resp)
	}
}

func TestNotFound(t *testing.T) {
	h := ui.Handler()
	for _, path := range []string{"/nope", "/app.js/", "/web/index.html", "/api/v1/status", "/../go.mod", "/index.html/x"} {
		resp := get(t, h, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
		checkSecurityHeaders(t, path, resp)
	}
}

func TestMethods(t *testing.T) {
	h := ui.Handler()
	resp := get(t, h, http.MethodHead, "/", nil)
	if resp.StatusCode != http.StatusOK || body(t, resp) != "" {
		t.Errorf("HEAD /: status %d, want 200 with no body", resp.StatusCode)
	}
	resp = get(t, h, http.MethodPost, "/", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
	if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("POST /: Allow = %q", got)
	}
}

// TestRevalidate checks that no-cache costs a 304, not a download, when the
// UI has not changed.
func TestRevalidate(t *testing.T) {
	h := ui.Handler()
	etag := get(t, h, http.MethodGet, "/app.js", nil).Header.Get("ETag")
	if etag == "" {
		t.Fatal("GET /app.js: no ETag")
	}
	resp := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET /app.js If-None-Match %s: status %d, want 304", etag, resp.StatusCode)
	}
}

var (
	scriptElem   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	eventAttr    = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	styleElem    = regexp.MustCompile(`(?i)<style\b`)
	styleAttr    = regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	jsURL        = regexp.MustCompile(`(?i)(href|src)\s*=\s*["']?\s*javascript:`)
	assetRef     = regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"([^"]+)"`)
	srcAttribute = regexp.MustCompile(`(?i)\ssrc\s*=`)
)

// TestNoInlineCode checks index.html for what the Content-Security-Policy
// would silently block in the webview: inline scripts, event handler
// attributes, javascript: URLs and inline styles.
func TestNoInlineCode(t *testing.T) {
	h := ui.Handler()
	page := body(t, get(t, h, http.MethodGet, "/", nil))

	scripts := scriptElem.FindAllStringSubmatch(page, -1)
	if len(scripts) == 0 {
		t.Error("index.html loads no script")
	}
	for _, m := range scripts {
		if strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script content: %q", m[0])
		}
		if !srcAttribute.MatchString(m[1]) {
			t.Errorf("script without src: %q", m[0])
		}
	}
	if n := strings.Count(strings.ToLower(page), "<script"); n != len(scripts) {
		t.Errorf("found %d <script tags but %d complete script elements", n, len(scripts))
	}
	for name, re := range map[string]*regexp.Regexp{
		"event handler attribute": eventAttr,
		"<style> element":         styleElem,
		"style attribute":         styleAttr,
		"javascript: URL":         jsURL,
	} {
		if loc := re.FindStringIndex(page); loc != nil {
			t.Errorf("index.html has an inline %s: %q", name, page[loc[0]:min(loc[1]+40, len(page))])
		}
	}

	// Every asset the page refers to must be served, or the kiosk shows a
	// broken page only on the device.
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		ref := m[1]
		if strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") {
			t.Errorf("index.html refers to a non-local resource %q", ref)
			continue
		}
		resp := get(t, h, http.MethodGet, "/"+strings.TrimPrefix(ref, "/"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("index.html refers to %q, which answers %d", ref, resp.StatusCode)
		}
	}
}

var (
	idLookup     = regexp.MustCompile(`\$\("([^"]+)"\)`)
	moduleImport = regexp.MustCompile(`(?m)^import .* from "\./([^"]+)";`)
)

// TestScriptsMatchPage checks that every element the scripts look up by a
// literal id exists in index.html, and that every module they import is
// served: a missing one is a null or a failed import only on the device.
func TestScriptsMatchPage(t *testing.T) {
	h := ui.Handler()
	page := body(t, get(t, h, http.MethodGet, "/", nil))
	for _, script := range []string{"/app.js", "/call.js", "/agenda.js"} {
		src := body(t, get(t, h, http.MethodGet, script, nil))
		ids := idLookup.FindAllStringSubmatch(src, -1)
		if len(ids) == 0 {
			t.Errorf("%s looks up no element by id: the pattern is out of date", script)
		}
		for _, m := range ids {
			if !strings.Contains(page, `id="`+m[1]+`"`) {
				t.Errorf("%s looks up #%s, which index.html lacks", script, m[1])
			}
		}
		for _, m := range moduleImport.FindAllStringSubmatch(src, -1) {
			if resp := get(t, h, http.MethodGet, "/"+m[1], nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%s imports %s, which answers %d", script, m[1], resp.StatusCode)
			}
		}
	}
}
