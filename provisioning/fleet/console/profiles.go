package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// ProfileVersionView is one stored version of a scope's profile, secrets
// masked.
type ProfileVersionView struct {
	Version   int64           `json:"version"`
	Body      json.RawMessage `json:"body"`
	CreatedBy string          `json:"createdBy,omitempty"`
	CreatedAt *time.Time      `json:"createdAt,omitempty"`
}

// ProfileView answers GET /profiles/{kind}/{id}: the current version
// (version 0 and an empty body when none was ever saved) and the history,
// newest first.
type ProfileView struct {
	Kind    string               `json:"kind"`
	ScopeID string               `json:"scopeId"`
	Current ProfileVersionView   `json:"current"`
	History []ProfileVersionView `json:"history"`
}

// ProfileRequest is the body of validate and save. BaseVersion is the
// version the edit started from (0 for a scope's first profile); validate
// ignores it.
type ProfileRequest struct {
	BaseVersion int64           `json:"baseVersion"`
	Body        json.RawMessage `json:"body"`
}

// ValidateResult answers a valid profile: what saving it would change
// against the current version.
type ValidateResult struct {
	CurrentVersion int64    `json:"currentVersion"`
	Diff           []Change `json:"diff"`
}

func scopeOf(r *http.Request) (store.Scope, bool) {
	sc := store.Scope{Kind: store.ScopeKind(r.PathValue("kind")), ID: r.PathValue("id")}
	switch sc.Kind {
	case store.ScopeOrg, store.ScopeSite, store.ScopeRoom, store.ScopeDevice:
		return sc, sc.ID != ""
	}
	return sc, false
}

func (c *Console) badScope(w http.ResponseWriter) {
	c.problem(w, http.StatusNotFound, "not-found", "a profile scope is org, site, room or device", "kind")
}

// current returns the scope's current profile, or version 0 with no body.
func (c *Console) current(r *http.Request, sc store.Scope) (store.Profile, error) {
	p, err := c.st.Profile(r.Context(), sc)
	if errors.Is(err, store.ErrNotFound) {
		return store.Profile{Scope: sc}, nil
	}
	return p, err
}

func versionView(p store.Profile) ProfileVersionView {
	return ProfileVersionView{Version: p.Version, Body: maskJSON(rawOr(p.Body, "{}")), CreatedBy: p.CreatedBy, CreatedAt: timePtr(p.CreatedAt)}
}

func (c *Console) getProfile(w http.ResponseWriter, r *http.Request, _ *caller) {
	sc, ok := scopeOf(r)
	if !ok {
		c.badScope(w)
		return
	}
	cur, err := c.current(r, sc)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	hist, err := c.st.ProfileHistory(r.Context(), sc, 50)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	v := ProfileView{Kind: string(sc.Kind), ScopeID: sc.ID, Current: versionView(cur), History: []ProfileVersionView{}}
	for _, p := range hist {
		v.History = append(v.History, versionView(p))
	}
	writeJSON(w, http.StatusOK, v)
}

// checkProfile puts stored secrets back where the body has Mask and
// validates the result with fleetapi.DecodeProfile. It writes a 422 naming
// every bad field ("body." + the profile path in Field, the profile paths
// in Fields) and returns false when the profile is not valid.
func (c *Console) checkProfile(w http.ResponseWriter, body, current json.RawMessage) (json.RawMessage, bool) {
	full, errs := unmask(body, current)
	if len(errs) == 0 {
		if _, err := fleetapi.DecodeProfile(full); err != nil {
			var pe *fleetapi.ProfileError
			if !errors.As(err, &pe) {
				c.problem(w, http.StatusUnprocessableEntity, "invalid-profile", err.Error(), "body")
				return nil, false
			}
			errs = pe.Fields
		}
	}
	if len(errs) > 0 {
		field := "body"
		if errs[0].Field != "" {
			field += "." + errs[0].Field
		}
		c.writeProfileProblem(w, field, errs)
		return nil, false
	}
	return full, true
}

func (c *Console) writeProfileProblem(w http.ResponseWriter, field string, errs []fleetapi.FieldError) {
	c.writeProblem(w, Problem{Status: http.StatusUnprocessableEntity, Code: "invalid-profile",
		Detail: (&fleetapi.ProfileError{Fields: errs}).Error(), Field: field, Fields: errs})
}

func (c *Console) validateProfile(w http.ResponseWriter, r *http.Request, _ *caller) {
	sc, ok := scopeOf(r)
	if !ok {
		c.badScope(w)
		return
	}
	var req ProfileRequest
	if !c.decode(w, r, &req) {
		return
	}
	cur, err := c.current(r, sc)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	full, ok := c.checkProfile(w, req.Body, cur.Body)
	if !ok {
		return
	}
	diff, err := diffProfiles(cur.Body, full)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ValidateResult{CurrentVersion: cur.Version, Diff: diff})
}

// saveProfile stores a new version: 422 for an invalid profile, 409 when
// someone saved since BaseVersion; nothing is stored in either case.
func (c *Console) saveProfile(w http.ResponseWriter, r *http.Request, who *caller) {
	sc, ok := scopeOf(r)
	if !ok {
		c.badScope(w)
		return
	}
	var req ProfileRequest
	if !c.decode(w, r, &req) {
		return
	}
	if req.BaseVersion < 0 {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", "baseVersion must be 0 or more", "baseVersion")
		return
	}
	cur, err := c.current(r, sc)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if cur.Version != req.BaseVersion {
		c.problem(w, http.StatusConflict, "stale-version",
			"the profile was saved by "+cur.CreatedBy+" since you started editing; reload it and apply your changes again", "baseVersion")
		return
	}
	full, ok := c.checkProfile(w, req.Body, cur.Body)
	if !ok {
		return
	}
	p, err := c.st.SetProfile(r.Context(), who.account.Username, sc, req.BaseVersion, full)
	if errors.Is(err, store.ErrConflict) {
		c.problem(w, http.StatusConflict, "stale-version", "the profile was saved by someone else meanwhile; reload it", "baseVersion")
		return
	} else if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, versionView(p))
}
