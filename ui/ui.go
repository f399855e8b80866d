// Package ui is the kiosk web UI that roomd serves to the room's TV or touch
// panel: the home screen with the room name, a clock, the devices, the
// meeting state, the agenda from the room's calendar with a one-touch Join
// (web/agenda.js) and a form to join a meeting by its link; and, while the
// room is in a meeting, the in-call screen (web/call.js): the far end's
// video in a grid or speaker view, names, the participant list, a
// connection-quality indicator, a stats panel, the self-view, a screen-share
// layout, speaker volume, Leave, and a prompt when the meeting runs past its
// scheduled end; the settings behind the admin PIN (web/admin.js: room,
// calendar, ICE servers and the network test, devices with a camera preview
// and level meter, camera controls, display sleep) and the dark screen of
// display sleep; and, for a room its fleet manages but that is not enrolled
// yet, the first-setup card that takes the activation code (web/fleet.js).
//
// The page is plain HTML, CSS and JavaScript embedded in the binary, with no
// build step, so the UI a room shows is always the one its roomd shipped
// with. It talks to roomd only through the same-origin API in package apiv1:
// it reads GET /api/v1/events and GET /api/v1/calendar, posts to
// /api/v1/meeting/*, /api/v1/calendar/join and /api/v1/fleet/enroll, and during a
// meeting reads the remote video, still encoded, from the WebSocket
// GET /api/v1/media/video (package daemon/videofeed documents the protocol)
// and decodes it with WebCodecs' VideoDecoder, since the kiosk's WebKitGTK
// has no RTCPeerConnection. Handler serves the assets; the daemon mounts the
// API beside it.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// web holds the kiosk's files, read-only like everything go:embed provides.
//
//go:embed web
var web embed.FS

// contentSecurityPolicy allows only same-origin scripts, styles, images and
// connections (CSP Level 3 lets 'self' in connect-src match the same host's
// ws: URL, which the video feed uses): the kiosk runs unattended on a shared screen, so a URL pasted
// into the join box, or anything it echoes back, must never be able to run
// code or send the room's data elsewhere. It is also why index.html has no
// inline script or style.
const contentSecurityPolicy = "default-src 'self'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"connect-src 'self'; " +
	"font-src 'self'; " +
	"object-src 'none'; " +
	"base-uri 'none'; " +
	"form-action 'self'; " +
	"frame-ancestors 'none'"

// contentType is spelled out rather than taken from mime.TypeByExtension,
// which consults the host's /etc/mime.types and so may answer differently on
// a developer machine and on the appliance; a wrong type for app.js makes
// the browser refuse the module under nosniff.
func contentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".png":
		return "image/png", true
	}
	return "", false
}

// asset is one embedded file, read once when the handler is built.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

type handler struct {
	assets map[string]asset // by URL path, "/index.html" also as "/"
}

// Handler returns the handler of the kiosk UI. It serves the embedded assets
// at "/" and answers 404 for any other path; the daemon routes /api/ to the
// API before this handler sees a request.
//
// Every response says Cache-Control: no-cache, so that after a roomd upgrade
// the webview revalidates and shows the new UI; the ETag keeps that
// revalidation to a 304.
func Handler() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic("ui: embedded web directory missing: " + err.Error())
	}
	h := &handler{assets: make(map[string]asset)}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentType(name)
		if !ok {
			// An asset we cannot type would be refused under nosniff;
			// better to fail every test than to ship it.
			panic("ui: no content type for embedded file " + name)
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.assets["/"+name] = asset{
			body:        body,
			contentType: ct,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic("ui: reading embedded assets: " + err.Error())
	}
	if idx, ok := h.assets["/index.html"]; ok {
		h.assets["/"] = idx
	} else {
		panic("ui: embedded web/index.html missing")
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cache-Control", "no-cache")

	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	// ServeContent handles HEAD, Range and If-None-Match against the ETag.
	// The embedded files carry no modification time, hence the zero time.
	http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(a.body))
}
