package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Over-the-air updates: the releases fleetd's TUF repository holds, the
// rollouts that offer one of them to an organisation's devices ring by
// ring, and each site's maintenance window. The store decides every state
// change (and audits it); the console validates requests, names the field
// at fault, and summarises a rollout's devices per ring for the pages.

// Bounds of a rollout's settings. The store validates them again; these
// let the console name the field.
const (
	// DefaultFailureThreshold is the percent of a ring's devices that may
	// fail before the rollout halts, when a request does not say.
	DefaultFailureThreshold = 10
	// DefaultSoakMinutes is how long a ring runs before the next one
	// opens, when a request does not say.
	DefaultSoakMinutes = 60
	// maxReason bounds an abort's reason, which lands in the audit log.
	maxReason = 500
)

// ReleaseView is one release in the update repository.
type ReleaseView struct {
	Target          string    `json:"target"`
	Version         string    `json:"version"`
	SecurityVersion int       `json:"securityVersion"`
	Hardware        []string  `json:"hardware"`
	BuildTime       time.Time `json:"buildTime"`
	Length          int64     `json:"length"`
}

// ReleaseList answers GET /releases. Configured is false when fleetd has no
// update repository (the page then says how to publish one).
type ReleaseList struct {
	Configured bool          `json:"configured"`
	Releases   []ReleaseView `json:"releases"`
}

// RolloutRequest is the body of POST /rollouts. Rings default to
// rollout.DefaultRings(), FailureThreshold to DefaultFailureThreshold and
// SoakMinutes to DefaultSoakMinutes; 0 is a value, not "the default", for
// both. Immediate ignores maintenance windows (never meetings).
type RolloutRequest struct {
	OrgID            string         `json:"orgId"`
	SiteID           string         `json:"siteId,omitempty"`
	Target           string         `json:"target"`
	Rings            []rollout.Ring `json:"rings,omitempty"`
	FailureThreshold *int           `json:"failureThreshold,omitempty"`
	SoakMinutes      *int           `json:"soakMinutes,omitempty"`
	Immediate        bool           `json:"immediate,omitempty"`
}

// AbortRequest is the body of POST /rollouts/{id}/abort.
type AbortRequest struct {
	Reason string `json:"reason"`
}

// RolloutView is a rollout. Ring is the index in Rings of the ring open
// now; NextRingAt, while running, is when its soak time ends (the next
// ring opens then if every member has finished).
type RolloutView struct {
	ID               string         `json:"id"`
	OrgID            string         `json:"orgId"`
	SiteID           string         `json:"siteId,omitempty"`
	Target           string         `json:"target"`
	Version          string         `json:"version"`
	Rings            []rollout.Ring `json:"rings"`
	Ring             int            `json:"ring"`
	RingOpened       time.Time      `json:"ringOpened"`
	NextRingAt       *time.Time     `json:"nextRingAt,omitempty"`
	FailureThreshold int            `json:"failureThreshold"`
	SoakMinutes      int            `json:"soakMinutes"`
	Immediate        bool           `json:"immediate"`
	State            string         `json:"state"`
	Reason           string         `json:"reason,omitempty"`
	CreatedBy        string         `json:"createdBy"`
	CreatedAt        time.Time      `json:"createdAt"`
	UpdatedAt        time.Time      `json:"updatedAt"`
}

func rolloutView(r store.Rollout) RolloutView {
	rings := r.Rings
	if rings == nil {
		rings = []rollout.Ring{}
	}
	v := RolloutView{
		ID: r.ID, OrgID: r.OrgID, SiteID: r.SiteID, Target: r.Target, Version: r.Version, Rings: rings,
		Ring: r.Ring, RingOpened: r.RingOpened, FailureThreshold: r.FailureThreshold, SoakMinutes: r.SoakMinutes,
		Immediate: r.Immediate, State: string(r.State), Reason: r.Reason, CreatedBy: r.CreatedBy,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.State == store.RolloutRunning && r.Ring < len(r.Rings)-1 && !r.RingOpened.IsZero() {
		v.NextRingAt = timePtr(r.RingOpened.Add(time.Duration(r.SoakMinutes) * time.Minute))
	}
	return v
}

// Device states in a rollout as the pages count them, beside the device's
// own update states (fleetapi.Update*).
const (
	// DevicePending: the device has not reported on this rollout (its ring
	// is not open yet, it is offline, or it has not checked in since).
	DevicePending = "pending"
)

// RingProgress counts a ring's devices. Members are the devices whose
// bucket falls in this ring (not the cumulative percent); Failed counts
// failed and rolled-back devices; InProgress those with an update under
// way; Pending those that have not reported on this rollout or have not
// started it (idle, e.g. waiting for their maintenance window); Skipped
// those the rollout never offers its release to (RolloutDeviceView.Skipped).
type RingProgress struct {
	Name       string `json:"name"`
	Percent    int    `json:"percent"`
	Open       bool   `json:"open"`
	Members    int    `json:"members"`
	Committed  int    `json:"committed"`
	Failed     int    `json:"failed"`
	InProgress int    `json:"inProgress"`
	Pending    int    `json:"pending"`
	Skipped    int    `json:"skipped"`
}

// RolloutDeviceView is one device of a rollout. State is the
// fleetapi.Update* state it last reported about this rollout, or
// DevicePending when it has reported nothing about it; Running is the
// version it runs, from its latest check-in. Skipped, for a device that
// has not reported on the rollout, says why it is never offered the
// release (it runs it already, its hardware is not listed, …); such a
// device does not hold its ring back. Progress is the percent of the image written
// (100 once committed). NextWindow is in the device's local time, so its
// clock reading ("02:00") is the window's local start.
type RolloutDeviceView struct {
	DeviceID   string     `json:"deviceId"`
	RoomName   string     `json:"roomName"`
	SiteName   string     `json:"siteName"`
	Ring       int        `json:"ring"`
	RingName   string     `json:"ringName"`
	State      string     `json:"state"`
	Running    string     `json:"running,omitempty"`
	Version    string     `json:"version,omitempty"`
	Progress   int        `json:"progress"`
	Deferred   string     `json:"deferred,omitempty"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Skipped    string     `json:"skipped,omitempty"`
	Online     bool       `json:"online"`
	LastSeen   *time.Time `json:"lastSeen,omitempty"`
	UpdatedAt  *time.Time `json:"updatedAt,omitempty"`
}

// RolloutDetail answers GET /rollouts/{id}.
type RolloutDetail struct {
	Rollout RolloutView         `json:"rollout"`
	Rings   []RingProgress      `json:"rings"`
	Devices []RolloutDeviceView `json:"devices"`
}

// WindowRequest is the body of PUT /sites/{id}/maintenance-window; a null
// or absent window returns the site to the default.
type WindowRequest struct {
	Window *fleetapi.MaintenanceWindow `json:"window"`
}

// SiteWindowView answers the maintenance-window paths: the site's own
// window (absent when it uses the default), the default, and the one in
// effect.
type SiteWindowView struct {
	SiteID    string                      `json:"siteId"`
	SiteName  string                      `json:"siteName"`
	Window    *fleetapi.MaintenanceWindow `json:"window,omitempty"`
	Default   fleetapi.MaintenanceWindow  `json:"default"`
	Effective fleetapi.MaintenanceWindow  `json:"effective"`
}

// DeviceUpdateView is a device's latest update status on its page.
type DeviceUpdateView struct {
	// Status is what the device reported in its last check-in.
	Status fleetapi.UpdateStatus `json:"status"`
	// Progress is the percent of the image written.
	Progress int `json:"progress"`
	// ReportedAt is when the device last reported it.
	ReportedAt time.Time `json:"reportedAt"`
}

// progress is the percent of an update written, 100 once committed.
func progress(st fleetapi.UpdateStatus) int {
	if st.State == fleetapi.UpdateCommitted {
		return 100
	}
	if st.Length <= 0 || st.Written <= 0 {
		return 0
	}
	return int(min(100, st.Written*100/st.Length))
}

// listReleases answers GET /releases.
func (c *Console) listReleases(w http.ResponseWriter, r *http.Request, _ *caller) {
	out := ReleaseList{Configured: c.releases != nil, Releases: []ReleaseView{}}
	if c.releases != nil {
		rels, err := c.releases.Releases(r.Context())
		if err != nil {
			c.storeError(w, r, fmt.Errorf("list releases: %w", err))
			return
		}
		for _, rel := range rels {
			out.Releases = append(out.Releases, releaseView(rel))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func releaseView(rel rollout.Release) ReleaseView {
	hw := rel.Hardware
	if hw == nil {
		hw = []string{}
	}
	return ReleaseView{Target: rel.Target, Version: rel.Version, SecurityVersion: rel.SecurityVersion,
		Hardware: hw, BuildTime: rel.BuildTime, Length: rel.Length}
}

// listRollouts answers GET /rollouts?org=.
func (c *Console) listRollouts(w http.ResponseWriter, r *http.Request, _ *caller) {
	q := r.URL.Query()
	for k := range q {
		if k != "org" {
			c.problem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("unknown filter %q (org)", k), k)
			return
		}
	}
	list, err := c.st.Rollouts(r.Context(), q.Get("org"))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]RolloutView, 0, len(list))
	for _, ro := range list {
		out = append(out, rolloutView(ro))
	}
	writeJSON(w, http.StatusOK, out)
}

// createRollout answers POST /rollouts: it checks the request field by
// field (so the answer names the field), finds the release, and lets the
// store create it (409 while the organisation has an active rollout).
func (c *Console) createRollout(w http.ResponseWriter, r *http.Request, who *caller) {
	var req RolloutRequest
	if !c.decode(w, r, &req) {
		return
	}
	nr, p := c.newRollout(r, req)
	if p != nil {
		c.writeProblem(w, *p)
		return
	}
	ro, err := c.st.CreateRollout(r.Context(), who.account.Username, nr)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/rollouts/"+ro.ID)
	writeJSON(w, http.StatusCreated, rolloutView(ro))
}

// newRollout turns a request into the store's NewRollout, or a problem
// naming the first bad field.
func (c *Console) newRollout(r *http.Request, req RolloutRequest) (store.NewRollout, *Problem) {
	bad := func(field, detail string) (store.NewRollout, *Problem) {
		return store.NewRollout{}, &Problem{Status: http.StatusUnprocessableEntity, Code: "invalid", Detail: detail, Field: field}
	}
	ctx := r.Context()
	if req.OrgID == "" {
		return bad("orgId", "choose the organisation whose devices the rollout updates")
	}
	orgs, err := c.st.Organisations(ctx)
	if err != nil {
		return store.NewRollout{}, c.internal(r, fmt.Errorf("list organisations: %w", err))
	}
	if !slices.ContainsFunc(orgs, func(o store.Organisation) bool { return o.ID == req.OrgID }) {
		return bad("orgId", fmt.Sprintf("no organisation %q", req.OrgID))
	}
	if req.SiteID != "" {
		sites, err := c.st.Sites(ctx, req.OrgID)
		if err != nil {
			return store.NewRollout{}, c.internal(r, fmt.Errorf("list sites: %w", err))
		}
		if !slices.ContainsFunc(sites, func(s store.Site) bool { return s.ID == req.SiteID }) {
			return bad("siteId", fmt.Sprintf("organisation %s has no site %q", req.OrgID, req.SiteID))
		}
	}
	if req.Target == "" {
		return bad("target", "choose a release")
	}
	if c.releases == nil {
		return bad("target", "fleetd has no update repository: publish a release with `fleetd release` and start fleetd with -updates DIR")
	}
	rel, err := rollout.Find(ctx, c.releases, req.Target)
	if errors.Is(err, rollout.ErrNoRelease) {
		return bad("target", fmt.Sprintf("the update repository has no release %q", req.Target))
	}
	if err != nil {
		return store.NewRollout{}, c.internal(r, fmt.Errorf("find release %q: %w", req.Target, err))
	}
	rings := req.Rings
	if rings == nil {
		rings = rollout.DefaultRings()
	}
	if field, detail := checkRings(rings); field != "" {
		return bad(field, detail)
	}
	nr := store.NewRollout{
		OrgID: req.OrgID, SiteID: req.SiteID, Target: req.Target, Version: rel.Version, Rings: rings,
		FailureThreshold: DefaultFailureThreshold, SoakMinutes: DefaultSoakMinutes, Immediate: req.Immediate,
	}
	if req.FailureThreshold != nil {
		nr.FailureThreshold = *req.FailureThreshold
		if nr.FailureThreshold < 0 || nr.FailureThreshold > 100 {
			return bad("failureThreshold", fmt.Sprintf("%d is not a percent from 0 to 100", nr.FailureThreshold))
		}
	}
	if req.SoakMinutes != nil {
		nr.SoakMinutes = *req.SoakMinutes
		if nr.SoakMinutes < 0 || nr.SoakMinutes > store.MaxSoakMinutes {
			return bad("soakMinutes", fmt.Sprintf("%d is not from 0 to %d minutes (a week)", nr.SoakMinutes, store.MaxSoakMinutes))
		}
	}
	return nr, nil
}

// checkRings names the first bad ring field ("rings[1].percent") and
// why, or returns "" when rollout.ValidateRings accepts them.
func checkRings(rings []rollout.Ring) (field, detail string) {
	err := rollout.ValidateRings(rings)
	var re *rollout.RingError
	switch {
	case err == nil:
		return "", ""
	case !errors.As(err, &re) || re.Index < 0:
		return "rings", err.Error()
	default:
		return fmt.Sprintf("rings[%d].%s", re.Index, re.Field), err.Error()
	}
}

// internal logs err and returns the 500 problem that hides it.
func (c *Console) internal(r *http.Request, err error) *Problem {
	c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return &Problem{Status: http.StatusInternalServerError, Code: "internal-error", Detail: "the server failed; see its log"}
}

// getRollout answers GET /rollouts/{id}: the rollout, its rings' counts
// and every device in its scope.
func (c *Console) getRollout(w http.ResponseWriter, r *http.Request, _ *caller) {
	ctx := r.Context()
	ro, err := c.st.Rollout(ctx, r.PathValue("id"))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	devs, err := c.st.RolloutDevices(ctx, ro.ID)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	// The release says which devices can take it at all. It may have left
	// the repository since (or fleetd may serve none now): the page then
	// shows no hardware reasons.
	var rel *rollout.Release
	if c.releases != nil {
		found, err := rollout.Find(ctx, c.releases, ro.Target)
		switch {
		case err == nil:
			rel = &found
		case !errors.Is(err, rollout.ErrNoRelease):
			c.log.Warn("rollout page without the release", "rollout", ro.ID, "target", ro.Target, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, c.rolloutDetail(ro, rel, devs))
}

// skipReason says why the rollout never offers its release to a device
// that has not reported on it, or "" when it may (rollout.Ineligible:
// such devices do not hold a ring back); rel is nil when the release is
// unknown.
func skipReason(ro store.Rollout, rel *rollout.Release, cur fleetapi.UpdateStatus) string {
	switch {
	case cur.State == "":
		return rollout.Ineligible(rollout.Release{}, nil)
	case cur.Running == ro.Version:
		return "it already runs " + ro.Version
	case rel == nil:
		return ""
	}
	return rollout.Ineligible(*rel, &cur)
}

func (c *Console) rolloutDetail(ro store.Rollout, rel *rollout.Release, devs []store.RolloutDevice) RolloutDetail {
	d := RolloutDetail{Rollout: rolloutView(ro), Rings: make([]RingProgress, len(ro.Rings)), Devices: make([]RolloutDeviceView, 0, len(devs))}
	for i, ring := range ro.Rings {
		d.Rings[i] = RingProgress{Name: ring.Name, Percent: ring.Percent, Open: i <= ro.Ring}
	}
	now := c.now()
	for _, dev := range devs {
		v := RolloutDeviceView{
			DeviceID: dev.DeviceID, RoomName: dev.RoomName, SiteName: dev.SiteName, Ring: dev.Ring,
			State: DevicePending, LastSeen: timePtr(dev.LastSeen), UpdatedAt: timePtr(dev.UpdatedAt),
			Online: !dev.LastSeen.IsZero() && now.Sub(dev.LastSeen) <= c.onlineWindow,
		}
		if dev.Ring >= 0 && dev.Ring < len(ro.Rings) {
			v.RingName = ro.Rings[dev.Ring].Name
		}
		v.Running = dev.Current.Running
		if st := dev.Status; st.State != "" {
			v.State, v.Version, v.Progress, v.Reason, v.Deferred = st.State, st.Version, progress(st), st.Reason, st.Deferred
			if st.Deferred == fleetapi.DeferredWindow {
				v.NextWindow = timePtr(st.NextWindow)
			}
			if v.Running == "" {
				v.Running = st.Running
			}
		} else {
			v.Skipped = skipReason(ro, rel, dev.Current)
		}
		if dev.Ring >= 0 && dev.Ring < len(d.Rings) {
			rp := &d.Rings[dev.Ring]
			rp.Members++
			switch {
			case v.Skipped != "":
				rp.Skipped++
			case v.State == DevicePending, v.State == fleetapi.UpdateIdle:
				rp.Pending++
			case v.State == fleetapi.UpdateCommitted:
				rp.Committed++
			case rollout.Failed(v.State):
				rp.Failed++
			default:
				rp.InProgress++
			}
		}
		d.Devices = append(d.Devices, v)
	}
	return d
}

// pauseRollout, resumeRollout and abortRollout change a rollout's state;
// the store refuses a change that does not apply to the state it is in
// with ErrConflict (409, naming the state).
func (c *Console) pauseRollout(w http.ResponseWriter, r *http.Request, who *caller) {
	if !c.decodeEmpty(w, r) {
		return
	}
	ro, err := c.st.PauseRollout(r.Context(), who.account.Username, r.PathValue("id"))
	c.answerRollout(w, r, ro, err)
}

func (c *Console) resumeRollout(w http.ResponseWriter, r *http.Request, who *caller) {
	if !c.decodeEmpty(w, r) {
		return
	}
	ro, err := c.st.ResumeRollout(r.Context(), who.account.Username, r.PathValue("id"))
	c.answerRollout(w, r, ro, err)
}

func (c *Console) abortRollout(w http.ResponseWriter, r *http.Request, who *caller) {
	var req AbortRequest
	if !c.decode(w, r, &req) {
		return
	}
	// The reason is what the audit log and the rollout page keep of why a
	// rollout ended early: an abort without one is refused.
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > maxReason {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("say why the rollout is aborted (1 to %d bytes)", maxReason), "reason")
		return
	}
	ro, err := c.st.AbortRollout(r.Context(), who.account.Username, r.PathValue("id"), req.Reason)
	c.answerRollout(w, r, ro, err)
}

func (c *Console) answerRollout(w http.ResponseWriter, r *http.Request, ro store.Rollout, err error) {
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rolloutView(ro))
}

// decodeEmpty accepts no body, or an empty JSON object: pause and resume
// take no arguments, but a client that always sends {} is not wrong.
func (c *Console) decodeEmpty(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return true
	}
	var empty struct{}
	return c.decode(w, r, &empty)
}

// site finds the site the path names.
func (c *Console) site(w http.ResponseWriter, r *http.Request) (store.Site, bool) {
	s, err := c.st.Site(r.Context(), r.PathValue("id"))
	if err != nil {
		c.storeError(w, r, err)
		return store.Site{}, false
	}
	return s, true
}

func siteWindowView(s store.Site) SiteWindowView {
	v := SiteWindowView{SiteID: s.ID, SiteName: s.Name, Default: fleetapi.DefaultMaintenanceWindow(), Effective: fleetapi.DefaultMaintenanceWindow()}
	if s.MaintenanceWindow != nil {
		win := *s.MaintenanceWindow
		v.Window, v.Effective = &win, win
	}
	return v
}

// getSiteWindow answers GET /sites/{id}/maintenance-window.
func (c *Console) getSiteWindow(w http.ResponseWriter, r *http.Request, _ *caller) {
	s, ok := c.site(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, siteWindowView(s))
}

// setSiteWindow answers PUT /sites/{id}/maintenance-window.
func (c *Console) setSiteWindow(w http.ResponseWriter, r *http.Request, who *caller) {
	var req WindowRequest
	if !c.decode(w, r, &req) {
		return
	}
	if req.Window != nil {
		if field, err := checkWindow(*req.Window); err != nil {
			c.problem(w, http.StatusUnprocessableEntity, "invalid", err.Error(), field)
			return
		}
	}
	s, ok := c.site(w, r)
	if !ok {
		return
	}
	if err := c.st.SetSiteMaintenanceWindow(r.Context(), who.account.Username, s.ID, req.Window); err != nil {
		c.storeError(w, r, err)
		return
	}
	s.MaintenanceWindow = req.Window
	writeJSON(w, http.StatusOK, siteWindowView(s))
}

// checkWindow validates each end of a window on its own, with fleetapi's
// parser, so the answer names the one at fault.
func checkWindow(win fleetapi.MaintenanceWindow) (field string, err error) {
	if err := (fleetapi.MaintenanceWindow{Start: win.Start, End: "00:00"}).Validate(); err != nil {
		return "window.start", err
	}
	if err := (fleetapi.MaintenanceWindow{Start: "00:00", End: win.End}).Validate(); err != nil {
		return "window.end", err
	}
	return "", nil
}
