package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// getEvents streams events as server-sent events. It subscribes before it
// takes the status snapshot, so no change can fall between the two: a client
// may see a change twice (in the snapshot and as an event), never miss one.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Streaming unsupported", "", "")
		return
	}
	ctx := r.Context()
	events := s.backend.Subscribe(ctx)
	snapshot, err := json.Marshal(s.backend.Status())
	if err != nil {
		s.problem(w, r, http.StatusInternalServerError, apiv1.ProblemInternal, "Internal error", err.Error(), "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Clients should retry quickly: a restart of roomd takes about a second.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if err := writeEvent(w, apiv1.Event{Type: apiv1.EventStatus, Time: time.Now().UTC(), Data: snapshot}); err != nil {
		return
	}
	flusher.Flush()

	keepalive := time.NewTicker(KeepaliveInterval)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				// Cut off for falling behind (or shutting down): ending the
				// stream makes the client reconnect to a fresh snapshot.
				return
			}
			if err := writeEvent(w, ev); err != nil {
				return
			}
		}
		flusher.Flush()
	}
}

func writeEvent(w http.ResponseWriter, ev apiv1.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if ev.Seq > 0 {
		if _, err := fmt.Fprintf(w, "id: %d\n", ev.Seq); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
	return err
}
