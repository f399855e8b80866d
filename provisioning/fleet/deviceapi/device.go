package deviceapi

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// maxShort bounds the short free-text fields of a check-in (states,
// versions, reasons), so one device cannot fill the database through them.
const maxShort = 1024

// checkIn records a check-in and answers with acknowledgements, commands,
// the effective profile and the update offer.
func (s *Server) checkIn(w http.ResponseWriter, r *http.Request, dev store.Device, _ *x509.Certificate) {
	var c fleetapi.CheckIn
	if p := decodeBody(w, r, &c); p != nil {
		writeProblem(w, p, 0)
		return
	}
	if p := validCheckIn(&c); p != nil {
		writeProblem(w, p, 0)
		return
	}
	if p := validUpdate(c.Update); p != nil {
		writeProblem(w, p, 0)
		return
	}
	sc, err := storeCheckIn(&c)
	if err != nil {
		s.internal(w, "encode the check-in", err)
		return
	}
	res, err := s.st.ProcessCheckIn(r.Context(), dev.ID, sc, c.Outbox)
	switch {
	case errors.Is(err, store.ErrRevoked):
		writeProblem(w, problem(http.StatusForbidden, fleetapi.CodeRevoked, "", "device %s was revoked; it must enroll again", dev.ID), 0)
		return
	case errors.Is(err, store.ErrInvalid):
		writeProblem(w, problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "%v", err), 0)
		return
	case err != nil:
		s.internal(w, "record the check-in", err)
		return
	}
	if res.Finished != "" && s.reported != nil {
		s.reported(res.Finished)
	}
	prof, err := s.effectiveProfile(r, dev.ID)
	if err != nil {
		s.internal(w, "compute the effective profile", err)
		return
	}
	resp := fleetapi.CheckInResponse{
		CheckInSeconds: int(s.interval / time.Second),
		Acked:          res.Acked,
		Profile:        prof,
		Commands:       make([]fleetapi.Command, 0, len(res.Commands)),
		Update:         s.offer(r, dev, c.Update, res.Rollout),
	}
	if resp.Acked == nil {
		resp.Acked = []string{}
	}
	for _, cmd := range res.Commands {
		resp.Commands = append(resp.Commands, fleetapi.Command{ID: cmd.ID, Kind: cmd.Kind, Args: cmd.Args})
	}
	writeJSON(w, resp)
}

// validCheckIn checks what the store cannot: the enumerations and bounds
// of the contract.
func validCheckIn(c *fleetapi.CheckIn) *fleetapi.Problem {
	bad := func(field, format string, args ...any) *fleetapi.Problem {
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, field, format, args...)
	}
	if len(c.Outbox) > fleetapi.MaxOutbox {
		return bad("outbox", "%d records; at most %d per check-in (send the rest next time)", len(c.Outbox), fleetapi.MaxOutbox)
	}
	if st := c.Health.Status; !slices.Contains([]string{fleetapi.HealthOK, fleetapi.HealthDegraded, fleetapi.HealthFailed}, st) {
		return bad("health.status", "%q is not %s, %s or %s", st, fleetapi.HealthOK, fleetapi.HealthDegraded, fleetapi.HealthFailed)
	}
	if st := c.Profile.Last.Status; st != "" && !slices.Contains([]string{fleetapi.ProfileApplied, fleetapi.ProfileRejected, fleetapi.ProfileRolledBack}, st) {
		return bad("profile.last.status", "%q is not %s, %s or %s", st, fleetapi.ProfileApplied, fleetapi.ProfileRejected, fleetapi.ProfileRolledBack)
	}
	short := map[string]string{"meeting.state": c.Meeting.State, "meeting.provider": c.Meeting.Provider,
		"profile.applied": c.Profile.Applied, "profile.last.version": c.Profile.Last.Version,
		"profile.last.reason": c.Profile.Last.Reason}
	for k, v := range c.Inventory.Versions {
		short["inventory.versions."+k] = v
	}
	for _, field := range slices.Sorted(maps.Keys(short)) {
		if len(short[field]) > maxShort {
			return bad(field, "is %d bytes; at most %d", len(short[field]), maxShort)
		}
	}
	return nil
}

// storeCheckIn turns the wire check-in into the store's.
func storeCheckIn(c *fleetapi.CheckIn) (store.CheckIn, error) {
	versions := c.Inventory.Versions
	if versions == nil {
		versions = map[string]string{}
	}
	vb, err := json.Marshal(versions)
	if err != nil {
		return store.CheckIn{}, fmt.Errorf("versions: %w", err)
	}
	inv, err := json.Marshal(c.Inventory)
	if err != nil {
		return store.CheckIn{}, fmt.Errorf("inventory: %w", err)
	}
	health, err := json.Marshal(struct {
		fleetapi.Health
		Meeting string `json:"meeting"`
	}{c.Health, c.Meeting.State})
	if err != nil {
		return store.CheckIn{}, fmt.Errorf("health: %w", err)
	}
	sc := store.CheckIn{
		Health: c.Health.Status, Versions: vb, MeetingState: c.Meeting.State,
		Inventory: inv, Problems: c.Health.Problems, HealthSample: health,
		ProfileApplied: c.Profile.Applied,
		ProfileLast:    store.ProfileOutcome{Version: c.Profile.Last.Version, Status: c.Profile.Last.Status, Reason: c.Profile.Last.Reason},
		Update:         c.Update,
	}
	if c.CallQuality != nil {
		if sc.CallQuality, err = json.Marshal(c.CallQuality); err != nil {
			return store.CheckIn{}, fmt.Errorf("call quality: %w", err)
		}
	}
	return sc, nil
}

// effectiveProfile merges the device's profiles into one object, versioned
// by its digest.
func (s *Server) effectiveProfile(r *http.Request, deviceID string) (fleetapi.EffectiveProfile, error) {
	eff, err := s.st.EffectiveProfile(r.Context(), deviceID)
	if err != nil {
		return fleetapi.EffectiveProfile{}, err
	}
	body, err := json.Marshal(eff.Values) // sorted keys: a stable body
	if err != nil {
		return fleetapi.EffectiveProfile{}, fmt.Errorf("encode profile: %w", err)
	}
	version, err := fleetapi.ProfileVersion(body)
	if err != nil {
		return fleetapi.EffectiveProfile{}, err
	}
	return fleetapi.EffectiveProfile{Version: version, Body: body}, nil
}

// renew issues a new certificate for the device and makes it the only one
// that works.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, dev store.Device, cert *x509.Certificate) {
	var req fleetapi.RenewRequest
	if p := decodeBody(w, r, &req); p != nil {
		writeProblem(w, p, 0)
		return
	}
	if p := checkCSR(req.CSR); p != nil {
		writeProblem(w, p, 0)
		return
	}
	der, serial, notAfter, err := s.ca.Sign(req.CSR, dev.ID, s.lifetime)
	if err != nil {
		if errors.Is(err, ca.ErrBadCSR) || errors.Is(err, ca.ErrKeyType) || errors.Is(err, ca.ErrCSRTooLarge) {
			writeProblem(w, problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "csr", "%v", err), 0)
			return
		}
		s.internal(w, "issue the certificate", err)
		return
	}
	err = s.st.ReplaceCertificate(r.Context(), dev.ID, ca.SerialString(cert), serial, notAfter)
	switch {
	case errors.Is(err, store.ErrConflict):
		writeProblem(w, problem(http.StatusUnauthorized, fleetapi.CodeUnauthorized, "",
			"certificate %s was replaced meanwhile; use the newest one", ca.SerialString(cert)), 0)
		return
	case errors.Is(err, store.ErrRevoked):
		writeProblem(w, problem(http.StatusForbidden, fleetapi.CodeRevoked, "", "device %s was revoked; it must enroll again", dev.ID), 0)
		return
	case err != nil:
		s.internal(w, "record the certificate", err)
		return
	}
	s.log.Info("device certificate renewed", "device", dev.ID, "old_serial", ca.SerialString(cert), "serial", serial, "not_after", notAfter)
	writeJSON(w, fleetapi.RenewResponse{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CABundle:    string(s.ca.Bundle()),
	})
}

// logs stores a gzip log bundle for one of the device's collect-logs
// commands.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, dev store.Device, _ *x509.Certificate) {
	bad := func(status int, field, format string, args ...any) {
		writeProblem(w, problem(status, fleetapi.CodeBadRequest, field, format, args...), 0)
	}
	commandID := r.URL.Query().Get("command")
	if commandID == "" {
		bad(http.StatusBadRequest, "command", "the query parameter command must name the collect-logs command")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/gzip" {
		bad(http.StatusUnsupportedMediaType, "", "Content-Type is %q; a log bundle is application/gzip", r.Header.Get("Content-Type"))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fleetapi.MaxLogBundle))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		bad(http.StatusRequestEntityTooLarge, "", "the log bundle is larger than %d bytes", tooBig.Limit)
		return
	case err != nil:
		bad(http.StatusBadRequest, "", "reading the log bundle: %v", err)
		return
	case len(data) == 0:
		bad(http.StatusBadRequest, "", "the log bundle is empty")
		return
	}
	// Only the header is read: the bundle is not decompressed here, so a
	// small upload that would expand hugely costs nothing.
	if _, err := gzip.NewReader(bytes.NewReader(data)); err != nil {
		bad(http.StatusBadRequest, "", "the log bundle is not gzip data: %v", err)
		return
	}
	err = s.st.PutLogBundle(r.Context(), dev.ID, commandID, data)
	switch {
	case errors.Is(err, store.ErrNotFound):
		bad(http.StatusNotFound, "command", "device %s has no command %q", dev.ID, commandID)
		return
	case errors.Is(err, store.ErrInvalid):
		bad(http.StatusBadRequest, "command", "command %q is not a %s command", commandID, fleetapi.CommandCollectLogs)
		return
	case err != nil:
		s.internal(w, "store the log bundle", err)
		return
	}
	s.log.Info("log bundle stored", "device", dev.ID, "command", commandID, "bytes", len(data))
	w.WriteHeader(http.StatusNoContent)
}
