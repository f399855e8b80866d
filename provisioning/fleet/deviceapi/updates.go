package deviceapi

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// This file holds over-the-air updates: the offer in a check-in's answer,
// the update status a check-in carries, and the TUF repository served at
// fleetapi.PathUpdates.

// Bounds of a check-in's update status.
const (
	maxNeverRetry = 64
	maxVersion    = 64
)

var updateStates = []string{fleetapi.UpdateIdle, fleetapi.UpdateChecking, fleetapi.UpdateDownloading,
	fleetapi.UpdateInstalling, fleetapi.UpdateRebooting, fleetapi.UpdateVerifying, fleetapi.UpdateCommitted,
	fleetapi.UpdateRolledBack, fleetapi.UpdateFailed}

// validUpdate checks a check-in's update status; the problem names the
// field.
func validUpdate(u *fleetapi.UpdateStatus) *fleetapi.Problem {
	if u == nil {
		return nil
	}
	bad := func(field, format string, args ...any) *fleetapi.Problem {
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "update."+field, format, args...)
	}
	if !slices.Contains(updateStates, u.State) {
		return bad("state", "%q is not one of %s", u.State, strings.Join(updateStates, ", "))
	}
	if u.Hardware == "" {
		return bad("hardware", "required: the device's hardware ID")
	}
	if u.Deferred != "" && u.Deferred != fleetapi.DeferredWindow && u.Deferred != fleetapi.DeferredMeeting {
		return bad("deferred", "%q is not %s, %s or empty", u.Deferred, fleetapi.DeferredWindow, fleetapi.DeferredMeeting)
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"hardware", u.Hardware, maxVersion}, {"running", u.Running, maxVersion}, {"slot", u.Slot, maxVersion},
		{"rollout", u.Rollout, maxVersion}, {"version", u.Version, maxVersion}, {"reason", u.Reason, maxShort},
	} {
		if len(f.value) > f.max {
			return bad(f.name, "is %d bytes; at most %d", len(f.value), f.max)
		}
	}
	if u.Written < 0 || u.Length < 0 {
		return bad("written", "progress %d of %d bytes: neither may be negative", u.Written, u.Length)
	}
	if u.SecurityFloor < 0 {
		return bad("securityFloor", "%d is negative", u.SecurityFloor)
	}
	if len(u.NeverRetry) > maxNeverRetry {
		return bad("neverRetry", "%d versions; at most %d", len(u.NeverRetry), maxNeverRetry)
	}
	for i, v := range u.NeverRetry {
		if v == "" || len(v) > maxVersion {
			return bad("neverRetry", "entry %d is %d bytes; 1 to %d", i, len(v), maxVersion)
		}
	}
	return nil
}

// offer makes the device's update offer from the check-in's rollout, or
// nil. A catalog that fails to answer costs the offer, not the check-in:
// the device asks again at its next one.
func (s *Server) offer(r *http.Request, dev store.Device, u *fleetapi.UpdateStatus, dr *store.DeviceRollout) *fleetapi.UpdateOffer {
	if dr == nil || s.releases == nil || dr.Rollout.State != rollout.StateRunning || u == nil {
		return nil
	}
	rel, err := rollout.Find(r.Context(), s.releases, dr.Rollout.Target)
	if err != nil {
		s.log.Warn("no offer: the rollout's release is not in the repository", "rollout", dr.Rollout.ID,
			"target", dr.Rollout.Target, "device", dev.ID, "err", err)
		return nil
	}
	return rollout.Offer(dr.Rollout, rel, dev.ID, u, dr.FailedBefore, dr.Window)
}

// serveUpdate serves one file of the TUF repository: GET or HEAD, byte
// ranges (the installer resumes with them), no directory listings, no
// dot-files, and nothing outside the directory, symbolic links included
// (os.OpenInRoot refuses to leave it).
func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, dev store.Device, _ *x509.Certificate) {
	notFound := func() {
		writeProblem(w, problem(http.StatusNotFound, fleetapi.CodeBadRequest, "", "no file %s in the update repository", r.URL.Path), 0)
	}
	if s.updates == "" {
		writeProblem(w, problem(http.StatusNotFound, fleetapi.CodeBadRequest, "", "this fleet server serves no update repository"), 0)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, fleetapi.PathUpdates)
	if name == "" || strings.HasSuffix(name, "/") || hasDotDot(name) || name != path.Clean(name) || !fs.ValidPath(name) {
		notFound()
		return
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			notFound()
			return
		}
	}
	f, err := os.OpenInRoot(s.updates, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("update repository: refused a file", "path", name, "device", dev.ID, "err", err)
		}
		notFound()
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.internal(w, "read the update repository", err)
		return
	}
	if !fi.Mode().IsRegular() {
		notFound()
		return
	}
	if strings.HasSuffix(name, ".json") {
		w.Header().Set("Content-Type", "application/json")
		// Metadata changes in place (timestamp.json above all): a cache
		// must ask again every time.
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// hasDotDot reports whether a slash-separated path has a ".." segment.
func hasDotDot(p string) bool {
	return slices.Contains(strings.Split(p, "/"), "..")
}

// get refuses every method but GET and HEAD.
func (s *Server) get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, problem(http.StatusMethodNotAllowed, fleetapi.CodeBadRequest, "", "%s takes GET or HEAD, not %s", r.URL.Path, r.Method), 0)
			return
		}
		h(w, r)
	}
}
