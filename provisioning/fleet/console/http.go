package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// access is what a route requires beyond a session.
type access int

const (
	public    access = iota // no session (login)
	reader                  // any account
	writer                  // admins: a change to the fleet
	adminOnly               // admins, even to read (accounts)
	anyWrite                // any account, still CSRF-checked (logout)
)

type route struct {
	method, path string
	access       access
	handle       func(w http.ResponseWriter, r *http.Request, who *caller)
}

// caller is the account behind a request and its session.
type caller struct {
	account store.Account
	session store.Session
}

// Problem is the body of every error answer (application/problem+json).
// Field names the offending part of the request, e.g. "args.confirm" or
// "body.display.awakeFrom"; Fields lists every bad profile field.
type Problem struct {
	Status int                   `json:"status"`
	Code   string                `json:"code"`
	Detail string                `json:"detail"`
	Field  string                `json:"field,omitempty"`
	Fields []fleetapi.FieldError `json:"fields,omitempty"`
}

func (c *Console) problem(w http.ResponseWriter, status int, code, detail, field string) {
	c.writeProblem(w, Problem{Status: status, Code: code, Detail: detail, Field: field})
}

func (c *Console) writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// storeError answers for an error from the store: its sentinels map to
// statuses; anything else is logged and hidden behind a 500.
func (c *Console) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.problem(w, http.StatusNotFound, "not-found", err.Error(), "")
	case errors.Is(err, store.ErrConflict):
		c.problem(w, http.StatusConflict, "conflict", err.Error(), "")
	case errors.Is(err, store.ErrRevoked):
		c.problem(w, http.StatusConflict, "revoked", err.Error(), "")
	case errors.Is(err, store.ErrInvalid):
		c.problem(w, http.StatusUnprocessableEntity, "invalid", err.Error(), "")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		c.problem(w, http.StatusInternalServerError, "internal-error", "the server failed; see its log", "")
	}
}

// decode reads a JSON body into v strictly: at most MaxBody bytes (413),
// application/json (415), no unknown field, no wrong type, nothing after
// the object (400, naming the field where there is one).
func (c *Console) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			c.problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body may be at most %d bytes", MaxBody), "")
			return false
		}
		c.problem(w, http.StatusBadRequest, "bad-request", "could not read the body: "+err.Error(), "")
		return false
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		c.problem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("send application/json, not %q", r.Header.Get("Content-Type")), "")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		detail, field := describeJSONError(err, len(data))
		c.problem(w, http.StatusBadRequest, "bad-request", detail, field)
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		c.problem(w, http.StatusBadRequest, "bad-request", "unexpected data after the JSON object", "")
		return false
	}
	return true
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// describeJSONError says what is wrong with a body and where.
func describeJSONError(err error, n int) (detail, field string) {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, err), ""
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value), typeErr.Field
	case errors.Is(err, io.EOF):
		return "the body is empty; send a JSON object", ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("the JSON ends early, after %d bytes", n), ""
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return fmt.Sprintf("unknown field %q", name), name
	}
	return strings.TrimPrefix(msg, "json: "), ""
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	}
	return goKind
}

// guard wraps a route with its checks, in this order: session, CSRF and
// origin for a change, role.
func (c *Console) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		change := r.Method != http.MethodGet && r.Method != http.MethodHead
		if change && !sameOrigin(r) {
			c.problem(w, http.StatusForbidden, "csrf", "cross-origin request refused", "")
			return
		}
		if rt.access == public {
			rt.handle(w, r, nil)
			return
		}
		who, ok := c.authenticate(w, r)
		if !ok {
			return
		}
		if change {
			got := r.Header.Get(csrfHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(who.session.CSRFToken)) != 1 {
				c.problem(w, http.StatusForbidden, "csrf", "missing or wrong "+csrfHeader+" header", "")
				return
			}
		}
		if (rt.access == writer || rt.access == adminOnly) && who.account.Role != store.RoleAdmin {
			c.problem(w, http.StatusForbidden, "forbidden", "your account ("+string(who.account.Role)+") may not do this", "")
			return
		}
		rt.handle(w, r, who)
	})
}

// csrfHeader carries the session's CSRF token on every change. A header
// rather than a form field: another site can make a browser post a form,
// but not set a custom header without a CORS preflight this server never
// grants.
const csrfHeader = "X-CSRF-Token"

// sameOrigin refuses a change whose Origin (sent by browsers on every
// cross-origin and every non-GET request) names another host. A request
// without Origin (a script, curl) is left to the CSRF token.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
