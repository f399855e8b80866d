// Package api serves roomd's local HTTP/JSON API (version 1) and mounts the
// kiosk UI beside it.
//
// Every error is an RFC 9457 problem body. Requests are parsed strictly:
// bodies are size-limited, must be JSON, and may not carry unknown fields.
// Who may call depends on the listener (see Access): the unix socket and
// loopback TCP are trusted by their reach, anything else needs the token.
package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/agenda"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/calendar"
	"github.com/atriumroom/atrium/daemon/devctl"
	"github.com/atriumroom/atrium/daemon/meeting"
	"github.com/atriumroom/atrium/daemon/nettest"
	"github.com/atriumroom/atrium/hal"
)

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document of this API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// Backend is what the API exposes of the daemon.
type Backend interface {
	Status() apiv1.Status
	Devices() []hal.Device
	Join(ctx context.Context, rawURL string) (apiv1.Meeting, error)
	Leave(ctx context.Context) (apiv1.Meeting, error)
	Subscribe(ctx context.Context) <-chan apiv1.Event
	// AudioSelfTest plays a test signal and measures the echo; it refuses
	// during a meeting (ErrInCall from the daemon is matched by its text).
	AudioSelfTest(ctx context.Context, req apiv1.AudioTestRequest) (apiv1.AudioTestResult, error)
	// Calendar is the agenda; JoinFromCalendar joins one of its meetings
	// (agenda.ErrNoMeeting, agenda.ErrNotNow when it cannot).
	Calendar() apiv1.Agenda
	JoinFromCalendar(ctx context.Context, id string) (apiv1.Meeting, error)
	// RunNetworkTest tests the configured STUN/TURN servers (refused in a
	// meeting); LastNetworkTest is the last result (nettest.ErrNoResult).
	RunNetworkTest(ctx context.Context) (apiv1.NetworkTest, error)
	LastNetworkTest() (apiv1.NetworkTest, error)
	// CheckCalendar reads an iCalendar document as the agenda would.
	CheckCalendar(ics []byte) (apiv1.CalendarCheck, error)
	// SetMedia flips the meeting's microphone mute and camera switches; it
	// fails outside a meeting.
	SetMedia(change apiv1.MediaChange) (apiv1.MediaState, error)
	DeviceSettings
	Admin
	Fleet
	Update
}

// DeviceSettings changes device controls and camera presets; the daemon
// delegates it to devctl.Controller, whose errors the API maps to statuses.
type DeviceSettings interface {
	Lookup(id string) (hal.Device, bool)
	Set(ctx context.Context, devID string, id hal.ControlID, value int64) (hal.Device, error)
	Nudge(ctx context.Context, devID string, id hal.ControlID, delta int64) (hal.Device, error)
	Presets(devID string) ([]devctl.Preset, error)
	SavePreset(devID, name string) (devctl.Preset, error)
	RecallPreset(ctx context.Context, devID, name string) (hal.Device, error)
	DeletePreset(devID, name string) error
	MeasureLevel(ctx context.Context, devID string, window time.Duration) (devctl.Level, error)
}

// Access says how a listener authenticates its callers.
type Access int

const (
	// AccessLocal is for the unix socket, whose file mode and group decide
	// who can connect.
	AccessLocal Access = iota
	// AccessLoopback is for TCP on loopback: any local process may call, but
	// the Host header must name loopback so a web page elsewhere cannot reach
	// the API through DNS rebinding.
	AccessLoopback
	// AccessToken is for any other TCP address: every request needs
	// "Authorization: Bearer <token>".
	AccessToken
)

// KeepaliveInterval is how often an idle event stream gets a comment line,
// so that proxies and clients can tell a quiet stream from a dead one.
const KeepaliveInterval = 15 * time.Second

// Server builds the API's handlers.
type Server struct {
	logger  *slog.Logger
	backend Backend
	mounts  Mounts
	token   string
}

// Mounts are handlers the API serves but does not implement; nil ones are
// answered 404 (UI) or 503 (video).
type Mounts struct {
	// UI serves every path outside /api/: the kiosk.
	UI http.Handler
	// Video is the WebSocket of encoded remote video for the kiosk
	// (package videofeed), at /api/v1/media/video.
	Video http.Handler
	// Preview is the admin screen's camera preview (package preview), at
	// /api/v1/media/preview; from the kiosk it needs an admin session.
	Preview http.Handler
}

// New returns a server for backend. token is required by AccessToken
// listeners.
func New(logger *slog.Logger, backend Backend, mounts Mounts, token string) *Server {
	return &Server{logger: logger, backend: backend, mounts: mounts, token: token}
}

type route struct {
	method, path string // path is relative to apiv1.BasePath
	handle       func(*Server, http.ResponseWriter, *http.Request)
}

// routes is the single table of the API; the OpenAPI test walks it.
var routes = []route{
	{http.MethodGet, "/status", (*Server).getStatus},
	{http.MethodGet, "/devices", (*Server).getDevices},
	{http.MethodGet, "/devices/{id}", (*Server).getDevice},
	{http.MethodPut, "/devices/{id}/controls/{control}", (*Server).putControl},
	{http.MethodGet, "/devices/{id}/level", (*Server).getLevel},
	{http.MethodGet, "/devices/{id}/presets", (*Server).getPresets},
	{http.MethodPut, "/devices/{id}/presets/{name}", (*Server).putPreset},
	{http.MethodPost, "/devices/{id}/presets/{name}/recall", (*Server).postRecallPreset},
	{http.MethodDelete, "/devices/{id}/presets/{name}", (*Server).deletePreset},
	{http.MethodPost, "/audio/self-test", (*Server).postAudioSelfTest},
	{http.MethodPost, "/network/test", (*Server).postNetworkTest},
	{http.MethodGet, "/network/test", (*Server).getNetworkTest},
	{http.MethodGet, "/calendar", (*Server).getCalendar},
	{http.MethodPost, "/calendar/join", (*Server).postCalendarJoin},
	{http.MethodPost, "/calendar/check", (*Server).postCalendarCheck},
	{http.MethodPost, "/meeting/join", (*Server).postJoin},
	{http.MethodPost, "/meeting/leave", (*Server).postLeave},
	{http.MethodPut, "/meeting/media", (*Server).putMedia},
	{http.MethodGet, "/admin", (*Server).getAdmin},
	{http.MethodPost, "/admin/session", (*Server).postAdminSession},
	{http.MethodDelete, "/admin/session", (*Server).deleteAdminSession},
	{http.MethodPut, "/admin/pin", (*Server).putAdminPIN},
	{http.MethodDelete, "/admin/lockout", (*Server).deleteAdminLockout},
	{http.MethodGet, "/settings", (*Server).getSettings},
	{http.MethodPut, "/settings", (*Server).putSettings},
	{http.MethodGet, "/display", (*Server).getDisplay},
	{http.MethodPost, "/display/wake", (*Server).postDisplayWake},
	{http.MethodGet, "/fleet", (*Server).getFleet},
	{http.MethodPost, "/fleet/enroll", (*Server).postFleetEnroll},
	{http.MethodGet, "/update", (*Server).getUpdate},
	{http.MethodPost, "/kiosk/ready", (*Server).postKioskReady},
	{http.MethodGet, "/events", (*Server).getEvents},
	{http.MethodGet, "/openapi.json", (*Server).getOpenAPI},
	{http.MethodGet, "/media/video", (*Server).getVideo},
	{http.MethodGet, "/media/preview", (*Server).getPreview},
}

// Handler returns the handler for a listener with the given access rule.
func (s *Server) Handler(access Access) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		handle := rt.handle
		mux.HandleFunc(rt.method+" "+apiv1.BasePath+rt.path, func(w http.ResponseWriter, r *http.Request) {
			// The admin routes trust the socket and the token listener.
			handle(s, w, r.WithContext(withAccess(r.Context(), access)))
		})
	}
	mux.HandleFunc("/api/", s.notFoundOrMethod)
	if s.mounts.UI != nil {
		mux.Handle("/", s.mounts.UI)
	}
	return s.recoverer(s.guard(access, mux))
}

// guard applies the listener's access rule and refuses cross-site writes.
func (s *Server) guard(access Access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch access {
		case AccessLoopback:
			if !loopbackHost(r.Host) {
				s.problem(w, r, http.StatusForbidden, apiv1.ProblemUnauthorized, "Host not allowed",
					fmt.Sprintf("this listener answers only to loopback host names, not %q", r.Host), "")
				return
			}
		case AccessToken:
			if !s.tokenOK(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="roomd"`)
				s.problem(w, r, http.StatusUnauthorized, apiv1.ProblemUnauthorized, "Unauthorized",
					"this listener requires an Authorization: Bearer token", "")
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// A page on another origin must not drive the room: browsers
			// label such requests, and the JSON content type already forces a
			// CORS preflight that this server never grants.
			if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
				s.problem(w, r, http.StatusForbidden, apiv1.ProblemUnauthorized, "Cross-site request refused", "", "")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) tokenOK(r *http.Request) bool {
	if s.token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.Error("API handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Internal error", "", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) notFoundOrMethod(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, rt := range routes {
		if apiv1.BasePath+rt.path == r.URL.Path {
			allowed = append(allowed, rt.method)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.problem(w, r, http.StatusMethodNotAllowed, apiv1.ProblemMethodNotAllowed, "Method not allowed",
			fmt.Sprintf("%s takes %s", r.URL.Path, strings.Join(allowed, ", ")), "")
		return
	}
	s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "Not found",
		fmt.Sprintf("no API endpoint at %s", r.URL.Path), "")
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Status())
}

func (s *Server) getDevices(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, apiv1.DeviceList{Devices: ConvertDevices(s.backend.Devices())})
}

func (s *Server) getVideo(w http.ResponseWriter, r *http.Request) {
	if s.mounts.Video == nil {
		s.problem(w, r, http.StatusServiceUnavailable, apiv1.ProblemUnavailable, "No video feed", "this roomd serves no video to the kiosk", "")
		return
	}
	s.mounts.Video.ServeHTTP(w, r)
}

// previewTokenParam carries the admin token of a page's preview socket:
// a browser cannot set headers on a WebSocket.
const previewTokenParam = "admin"

func (s *Server) getPreview(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(apiv1.AdminHeader) == "" {
		r.Header.Set(apiv1.AdminHeader, r.URL.Query().Get(previewTokenParam))
	}
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	if s.mounts.Preview == nil {
		s.problem(w, r, http.StatusServiceUnavailable, apiv1.ProblemUnavailable, "No camera preview", "this roomd serves no camera preview", "")
		return
	}
	s.mounts.Preview.ServeHTTP(w, r)
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}

func (s *Server) postJoin(w http.ResponseWriter, r *http.Request) {
	var req apiv1.JoinRequest
	if !s.decode(w, r, &req, true) {
		return
	}
	if strings.TrimSpace(req.URL) == "" {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemInvalidURL, "Invalid meeting URL", "url is required", "url")
		return
	}
	m, err := s.backend.Join(r.Context(), req.URL)
	switch {
	case errors.Is(err, meeting.ErrInvalidURL):
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemInvalidURL, "Invalid meeting URL", detail(err, meeting.ErrInvalidURL), "url")
	case errors.Is(err, meeting.ErrNoProvider):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemNoProvider, "No provider for this URL", detail(err, meeting.ErrNoProvider), "url")
	case err != nil:
		// The join was attempted and failed: the state says why.
		s.logger.Warn("join failed", "err", err)
		s.problem(w, r, http.StatusBadGateway, apiv1.ProblemUnavailable, "Could not join the meeting", err.Error(), "")
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

func (s *Server) postLeave(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decode(w, r, &req, false) {
		return
	}
	m, err := s.backend.Leave(r.Context())
	if err != nil {
		s.logger.Warn("leave did not complete cleanly", "err", err)
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) postNetworkTest(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decode(w, r, &req, false) {
		return
	}
	res, err := s.backend.RunNetworkTest(r.Context())
	if err != nil {
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Network test not run", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) getNetworkTest(w http.ResponseWriter, r *http.Request) {
	res, err := s.backend.LastNetworkTest()
	switch {
	case errors.Is(err, nettest.ErrNoResult):
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No network test yet", "run one with POST "+apiv1.BasePath+"/network/test", "")
	case err != nil:
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Network test result unreadable", err.Error(), "")
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *Server) getCalendar(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Calendar())
}

func (s *Server) postCalendarJoin(w http.ResponseWriter, r *http.Request) {
	var req apiv1.CalendarJoinRequest
	if !s.decode(w, r, &req, true) {
		return
	}
	m, err := s.backend.JoinFromCalendar(r.Context(), req.ID)
	switch {
	case errors.Is(err, agenda.ErrNoMeeting):
		s.problem(w, r, http.StatusNotFound, apiv1.ProblemNotFound, "No such meeting", err.Error(), "id")
	case errors.Is(err, agenda.ErrNotNow):
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Not now", err.Error(), "id")
	case errors.Is(err, meeting.ErrInvalidURL), errors.Is(err, meeting.ErrNoProvider):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemNoProvider, "Cannot join this meeting", err.Error(), "id")
	case err != nil:
		s.logger.Warn("join from the calendar failed", "err", err)
		s.problem(w, r, http.StatusBadGateway, apiv1.ProblemUnavailable, "Could not join the meeting", err.Error(), "")
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// MaxCalendarBytes bounds a calendar sent to POST /calendar/check, as the
// calendar fetcher bounds a downloaded one.
const MaxCalendarBytes = calendar.DefaultMaxBytes

func (s *Server) postCalendarCheck(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "text/calendar") {
		s.problem(w, r, http.StatusUnsupportedMediaType, apiv1.ProblemUnsupportedMedia, "Unsupported media type",
			"send the calendar as text/calendar", "")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCalendarBytes))
	if err != nil {
		s.problem(w, r, http.StatusRequestEntityTooLarge, apiv1.ProblemTooLarge, "Calendar too large",
			fmt.Sprintf("a calendar may be at most %d bytes", MaxCalendarBytes), "")
		return
	}
	res, err := s.backend.CheckCalendar(data)
	if err != nil {
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Not a calendar", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) putMedia(w http.ResponseWriter, r *http.Request) {
	var req apiv1.MediaChange
	if !s.decode(w, r, &req, true) {
		return
	}
	if req.MicrophoneMuted == nil && req.CameraOff == nil {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Nothing to change",
			"send microphoneMuted, cameraOff or both", "")
		return
	}
	st, err := s.backend.SetMedia(req)
	if err != nil {
		s.problem(w, r, http.StatusConflict, apiv1.ProblemUnavailable, "Not in a meeting", err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// decode reads a JSON body into v strictly. An empty body is accepted only
// when required is false. It writes the problem and returns false on error.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, required bool) bool {
	body := http.MaxBytesReader(w, r.Body, apiv1.MaxBodyBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.problem(w, r, http.StatusRequestEntityTooLarge, apiv1.ProblemTooLarge, "Request body too large",
				fmt.Sprintf("the body may be at most %d bytes", apiv1.MaxBodyBytes), "")
			return false
		}
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Could not read the request body", err.Error(), "")
		return false
	}
	if len(data) == 0 && !required {
		return true
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		s.problem(w, r, http.StatusUnsupportedMediaType, apiv1.ProblemUnsupportedMedia, "Unsupported content type",
			fmt.Sprintf("send application/json, not %q", ct), "")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		detail, field := describeJSONError(err, data)
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Malformed JSON body", detail, field)
		return false
	}
	if dec.More() {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Malformed JSON body", "unexpected data after the JSON object", "")
		return false
	}
	return true
}

// detail drops the sentinel's own words from err's text: the problem's
// title already says them.
func detail(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// describeJSONError turns a decoding error into a sentence that says what
// and where.
func describeJSONError(err error, data []byte) (detail, field string) {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, err), ""
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q must be %s, not JSON %s", typeErr.Field, typeErr.Type, typeErr.Value), typeErr.Field
	case errors.Is(err, io.EOF):
		return "the body is empty; send a JSON object", ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("the JSON ends early, after %d bytes", len(data)), ""
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return fmt.Sprintf("unknown field %q", name), name
	}
	return msg, ""
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, typ, title, detail, field string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiv1.Problem{
		Type: typ, Title: title, Status: status, Detail: detail, Instance: r.URL.Path, Field: field,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
