package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// Fleet is the fleet-enrollment half of Backend.
type Fleet interface {
	FleetStatus() apiv1.FleetStatus
	// FleetEnroll enrolls the room with an activation code. Its errors are
	// *FleetError, or anything else for a failure of the room itself.
	FleetEnroll(ctx context.Context, req apiv1.FleetEnrollRequest) (apiv1.FleetStatus, error)
}

// FleetError is a refusal the API passes on: Type is one of apiv1's fleet
// problem types, Detail the reason in words (the fleet server's own, for a
// refused code), RetryAfter set when the server asked to wait.
type FleetError struct {
	Type       string
	Status     int
	Detail     string
	RetryAfter time.Duration
}

func (e *FleetError) Error() string { return e.Detail }

func (s *Server) getFleet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.FleetStatus())
}

// postFleetEnroll enrolls the room. Before the room has an admin PIN the
// kiosk may enroll without one (it is the first-setup screen, and the
// fleet's profile then brings the PIN); afterwards it needs a session.
func (s *Server) postFleetEnroll(w http.ResponseWriter, r *http.Request) {
	if !s.backend.FleetStatus().CanEnroll {
		if _, ok := s.requireAdmin(w, r); !ok {
			return
		}
	}
	var req apiv1.FleetEnrollRequest
	if !s.decode(w, r, &req, true) {
		return
	}
	if req.Code == "" {
		s.problem(w, r, http.StatusBadRequest, apiv1.ProblemBadRequest, "Activation code required",
			"type the activation code the fleet console shows", "code")
		return
	}
	st, err := s.backend.FleetEnroll(r.Context(), req)
	if err != nil {
		var fe *FleetError
		if !errors.As(err, &fe) {
			s.logger.Error("fleet enrollment", "err", err)
			s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Enrollment failed", err.Error(), "")
			return
		}
		if fe.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(fe.RetryAfter.Round(time.Second)/time.Second)))
		}
		field := ""
		if fe.Type == apiv1.ProblemEnrollRefused {
			field = "code"
		}
		s.problem(w, r, fe.Status, fe.Type, "Enrollment refused", fe.Detail, field)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
