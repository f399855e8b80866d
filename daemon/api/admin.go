package api

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/atriumroom/atrium/daemon/admin"
	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/daemon/settings"
)

// Admin is the admin-settings half of Backend: the PIN, its sessions, the
// editable settings and the display. Errors are those of package admin
// (ErrNoPIN, *WrongPINError, *LockedError, ErrInvalidPIN, ErrNoSession)
// and package settings (*ConflictError, *ValidationError).
type Admin interface {
	AdminState() apiv1.AdminState
	// AdminLogin checks a PIN and opens a session.
	AdminLogin(pin string) (apiv1.AdminSession, error)
	// AdminCheck validates a session token and extends it.
	AdminCheck(token string) error
	// AdminLogout ends a session; an unknown token is no error.
	AdminLogout(token string)
	// SetAdminPIN sets the PIN; requireCurrent makes current necessary.
	// Every session but keepToken's ends.
	SetAdminPIN(current, newPIN string, requireCurrent bool, keepToken string) error
	// ClearAdminLockout clears a lock after wrong PINs.
	ClearAdminLockout() error
	// RoomSettings are the editable settings, without secrets.
	RoomSettings() apiv1.Settings
	// UpdateSettings validates, stores and applies new settings.
	UpdateSettings(in apiv1.Settings) (apiv1.Settings, error)
	// DisplayState is the display's state; WakeDisplay records a touch.
	DisplayState() apiv1.DisplayState
	WakeDisplay() apiv1.DisplayState
}

type accessKey struct{}

func withAccess(ctx context.Context, a Access) context.Context {
	return context.WithValue(ctx, accessKey{}, a)
}

// trusted says whether the request came over a listener whose callers are
// administrators already: the unix socket (its file mode decides) and the
// token listener (the token decides). The kiosk, on loopback, is not.
func trusted(r *http.Request) bool {
	a, ok := r.Context().Value(accessKey{}).(Access)
	return ok && (a == AccessLocal || a == AccessToken)
}

// requireAdmin lets trusted callers through and asks the kiosk for a live
// session in the X-Atrium-Admin header. It returns the kiosk's token ("" when
// trusted), or writes a 401 and returns false.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) (string, bool) {
	if trusted(r) {
		return "", true
	}
	token := r.Header.Get(apiv1.AdminHeader)
	if err := s.backend.AdminCheck(token); err != nil {
		w.Header().Set("WWW-Authenticate", `AtriumAdmin realm="roomd"`)
		detail := "unlock the settings with the admin PIN (POST " + apiv1.BasePath + "/admin/session) and send the token in the " + apiv1.AdminHeader + " header"
		if token != "" {
			detail = "the admin session ended or is unknown; unlock the settings with the PIN again"
		}
		s.problem(w, r, http.StatusUnauthorized, apiv1.ProblemAdminRequired, admin.ErrNoSession.Error(), detail, "")
		return "", false
	}
	return token, true
}

func (s *Server) getAdmin(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.AdminState())
}

func (s *Server) postAdminSession(w http.ResponseWriter, r *http.Request) {
	var req apiv1.AdminLogin
	if !s.decode(w, r, &req, true) {
		return
	}
	if req.PIN == "" {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "PIN required", "send the admin PIN as pin", "pin")
		return
	}
	sess, err := s.backend.AdminLogin(req.PIN)
	if err != nil {
		s.pinProblem(w, r, err, "pin")
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) deleteAdminSession(w http.ResponseWriter, r *http.Request) {
	if token := r.Header.Get(apiv1.AdminHeader); token != "" {
		s.backend.AdminLogout(token)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) putAdminPIN(w http.ResponseWriter, r *http.Request) {
	token, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	var req apiv1.PINChange
	if !s.decode(w, r, &req, true) {
		return
	}
	// The kiosk must know the current PIN even within a session: a session
	// left open must not let a passer-by lock everyone else out.
	requireCurrent := !trusted(r) || req.Current != ""
	if !trusted(r) && req.Current == "" {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Current PIN required",
			"send the current PIN as current", "current")
		return
	}
	if err := admin.ValidatePIN(req.New); err != nil {
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Invalid PIN", err.Error(), "new")
		return
	}
	if err := s.backend.SetAdminPIN(req.Current, req.New, requireCurrent, token); err != nil {
		s.pinProblem(w, r, err, "current")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteAdminLockout(w http.ResponseWriter, r *http.Request) {
	if !trusted(r) {
		s.problem(w, r, http.StatusForbidden, apiv1.ProblemUnauthorized, "Not from the kiosk",
			"a lock is cleared on the device (roomctl admin unlock) or by the fleet console", "")
		return
	}
	if err := s.backend.ClearAdminLockout(); err != nil {
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Lock not cleared", err.Error(), "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// pinProblem answers an error of a PIN check.
func (s *Server) pinProblem(w http.ResponseWriter, r *http.Request, err error, field string) {
	var wrong *admin.WrongPINError
	var locked *admin.LockedError
	switch {
	case errors.Is(err, admin.ErrNoPIN):
		s.adminProblem(w, r, apiv1.AdminProblem{Problem: apiv1.Problem{Status: http.StatusConflict, Type: apiv1.ProblemNoPIN,
			Title: "No admin PIN is set", Detail: "set one on the device with `roomctl admin set-pin` (later also from the fleet console); the kiosk cannot set the first PIN"}})
	case errors.As(err, &locked):
		secs := int(math.Ceil(locked.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		zero := 0
		s.adminProblem(w, r, apiv1.AdminProblem{Problem: apiv1.Problem{Status: http.StatusTooManyRequests, Type: apiv1.ProblemLocked,
			Title: "Too many wrong PINs", Detail: "try again after " + locked.Until.UTC().Format(time.RFC3339)},
			LockedUntil: locked.Until.UTC(), AttemptsLeft: &zero})
	case errors.As(err, &wrong):
		left := wrong.AttemptsLeft
		w.Header().Set("WWW-Authenticate", `AtriumAdmin realm="roomd"`)
		s.adminProblem(w, r, apiv1.AdminProblem{Problem: apiv1.Problem{Status: http.StatusUnauthorized, Type: apiv1.ProblemWrongPIN,
			Title: "Wrong PIN", Detail: strconv.Itoa(left) + " attempts left before the settings lock", Field: field}, AttemptsLeft: &left})
	case errors.Is(err, admin.ErrInvalidPIN):
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Invalid PIN", err.Error(), "new")
	default:
		s.logger.Error("admin PIN", "err", err)
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Internal error", "the PIN could not be checked", "")
	}
}

func (s *Server) adminProblem(w http.ResponseWriter, r *http.Request, p apiv1.AdminProblem) {
	p.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.backend.RoomSettings())
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	var req apiv1.Settings
	if !s.decode(w, r, &req, true) {
		return
	}
	out, err := s.backend.UpdateSettings(req)
	var conflict *settings.ConflictError
	var invalid *settings.ValidationError
	switch {
	case errors.As(err, &conflict):
		s.problem(w, r, http.StatusConflict, apiv1.ProblemConflict, "Settings changed meanwhile", conflict.Error(), "version")
	case errors.As(err, &invalid):
		field := ""
		if len(invalid.Fields) > 0 {
			field = invalid.Fields[0].Field
		}
		s.problem(w, r, http.StatusUnprocessableEntity, apiv1.ProblemInvalidValue, "Invalid settings", invalid.Error(), field)
	case err != nil:
		s.logger.Error("settings not saved", "err", err)
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Settings not saved", err.Error(), "")
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) getDisplay(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.DisplayState())
}

func (s *Server) postDisplayWake(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decode(w, r, &req, false) {
		return
	}
	writeJSON(w, http.StatusOK, s.backend.WakeDisplay())
}
