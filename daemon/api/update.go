package api

import (
	"net/http"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// Update is the software-update half of Backend.
type Update interface {
	// UpdateStatus is the update engine's state.
	UpdateStatus() apiv1.UpdateStatus
	// KioskReady records that the kiosk rendered its home screen: part of
	// the health gate after an update.
	KioskReady()
}

func (s *Server) getUpdate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.UpdateStatus())
}

// postKioskReady is the kiosk's "home screen rendered". Only the kiosk's
// own listener (loopback) counts: the health gate asks whether the screen
// people see came up, which a script on the socket cannot vouch for.
func (s *Server) postKioskReady(w http.ResponseWriter, r *http.Request) {
	if a, _ := r.Context().Value(accessKey{}).(Access); a != AccessLoopback {
		s.problem(w, r, http.StatusForbidden, apiv1.ProblemUnauthorized, "Kiosk only",
			"only the kiosk, on roomd's loopback listener, reports that it is up", "")
		return
	}
	s.backend.KioskReady()
	w.WriteHeader(http.StatusNoContent)
}
