package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// DeviceView is a device in the list and at the top of its page.
type DeviceView struct {
	ID             string          `json:"id"`
	RoomID         string          `json:"roomId"`
	RoomName       string          `json:"roomName"`
	SiteID         string          `json:"siteId"`
	SiteName       string          `json:"siteName"`
	OrgID          string          `json:"orgId"`
	Online         bool            `json:"online"`
	Health         string          `json:"health"`
	MeetingState   string          `json:"meetingState"`
	Versions       json.RawMessage `json:"versions"`
	Hardware       json.RawMessage `json:"hardware"`
	Inventory      json.RawMessage `json:"inventory"`
	Problems       []string        `json:"problems"`
	LastCheckIn    *time.Time      `json:"lastCheckIn,omitempty"`
	Revoked        bool            `json:"revoked"`
	RevokedAt      *time.Time      `json:"revokedAt,omitempty"`
	CertSerial     string          `json:"certSerial"`
	CertNotAfter   time.Time       `json:"certNotAfter"`
	ProfileApplied string          `json:"profileApplied"`
	ProfileVersion string          `json:"profileVersion,omitempty"`
	ProfileStatus  string          `json:"profileStatus"`
	ProfileReason  string          `json:"profileReason,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func rawOr(b json.RawMessage, def string) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(def)
	}
	return b
}

func deviceView(d store.DeviceSummary) DeviceView {
	problems := d.Problems
	if problems == nil {
		problems = []string{}
	}
	return DeviceView{
		ID: d.ID, RoomID: d.RoomID, RoomName: d.RoomName, SiteID: d.SiteID, SiteName: d.SiteName, OrgID: d.OrgID,
		Online: d.Online, Health: d.Health, MeetingState: d.MeetingState,
		Versions: rawOr(d.Versions, "{}"), Hardware: rawOr(d.Hardware, "{}"),
		Inventory: rawOr(d.Inventory, "{}"), Problems: problems,
		LastCheckIn: timePtr(d.LastCheckIn), Revoked: d.Revoked, RevokedAt: timePtr(d.RevokedAt),
		CertSerial: d.CertSerial, CertNotAfter: d.CertNotAfter,
		ProfileApplied: d.ProfileApplied, ProfileVersion: d.ProfileVersion, ProfileStatus: d.ProfileStatus, ProfileReason: d.ProfileReason,
		CreatedAt: d.CreatedAt,
	}
}

// listDevices answers GET /devices?site=&room=&health=&version=&online=&limit=.
func (c *Console) listDevices(w http.ResponseWriter, r *http.Request, _ *caller) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"site", "room", "health", "version", "online", "limit"}, k) {
			c.problem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("unknown filter %q (site, room, health, version, online, limit)", k), k)
			return
		}
	}
	f := store.DeviceFilter{
		SiteID: q.Get("site"), RoomID: q.Get("room"), Health: q.Get("health"), Version: q.Get("version"),
		OnlineWindow: c.onlineWindow,
	}
	if s := q.Get("online"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			c.problem(w, http.StatusBadRequest, "bad-request", "online must be true or false", "online")
			return
		}
		f.Online = &b
	}
	limit, ok := c.limitParam(w, r, 500, 5000)
	if !ok {
		return
	}
	f.Limit = limit
	list, err := c.st.DeviceSummaries(r.Context(), f)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]DeviceView, 0, len(list))
	for _, d := range list {
		out = append(out, deviceView(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// ConfigValue is one setting in effect on a device and where it comes
// from. Secrets are masked.
type ConfigValue struct {
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Source  string          `json:"source"` // org, site, room or device
	ScopeID string          `json:"scopeId"`
	Version int64           `json:"version"` // of the profile at that scope
}

// SampleView is one telemetry sample.
type SampleView struct {
	At   time.Time       `json:"at"`
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
}

// EventView is one event from the device's history.
type EventView struct {
	At        time.Time       `json:"at"`
	Type      string          `json:"type"`
	Message   string          `json:"message"`
	Details   json.RawMessage `json:"details,omitempty"`
	CommandID string          `json:"commandId,omitempty"`
}

// CommandView is a command and its status. Secret values a set-setting
// command carries are masked.
type CommandView struct {
	ID             string          `json:"id"`
	DeviceID       string          `json:"deviceId"`
	Kind           string          `json:"kind"`
	Args           json.RawMessage `json:"args"`
	IdempotencyKey string          `json:"idempotencyKey"`
	Status         string          `json:"status"`
	Result         string          `json:"result,omitempty"`
	CreatedBy      string          `json:"createdBy"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

func commandView(cmd store.Command) CommandView {
	args := rawOr(cmd.Args, "{}")
	if cmd.Kind == fleetapi.CommandSetSetting {
		var a fleetapi.SetSettingArgs
		if json.Unmarshal(args, &a) == nil && a.Key != "" {
			a.Value = maskValue(a.Key, a.Value)
			if b, err := json.Marshal(a); err == nil {
				args = b
			}
		}
	}
	return CommandView{
		ID: cmd.ID, DeviceID: cmd.DeviceID, Kind: cmd.Kind, Args: args, IdempotencyKey: cmd.IdempotencyKey,
		Status: string(cmd.Status), Result: cmd.Result, CreatedBy: cmd.CreatedBy, CreatedAt: cmd.CreatedAt, UpdatedAt: cmd.UpdatedAt,
	}
}

// DeviceDetail is the device page.
type DeviceDetail struct {
	Device DeviceView `json:"device"`
	// Config is the configuration in effect, in profile-key order.
	Config []ConfigValue `json:"config"`
	// ConfigVersion is the effective profile's version as the device sees
	// it (fleetapi.ProfileVersion); compare with Device.ProfileApplied.
	ConfigVersion string         `json:"configVersion"`
	Health        []SampleView   `json:"health"`
	CallQuality   []SampleView   `json:"callQuality"`
	Events        []EventView    `json:"events"`
	Commands      []CommandView  `json:"commands"`
	Audit         []AuditView    `json:"audit"`
	Scopes        map[string]any `json:"scopes"`
	// Update is the device's latest update status; absent until it has
	// reported one.
	Update *DeviceUpdateView `json:"update,omitempty"`
}

// detailWindow is how far back the device page's history reaches.
const detailWindow = 7 * 24 * time.Hour

func (c *Console) getDevice(w http.ResponseWriter, r *http.Request, _ *caller) {
	ctx := r.Context()
	id := r.PathValue("id")
	sum, err := c.st.DeviceSummary(ctx, id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	// DeviceSummary judges online by the store's default window; this
	// console's may differ.
	sum.Online = !sum.LastCheckIn.IsZero() && c.now().Sub(sum.LastCheckIn) <= c.onlineWindow
	d := DeviceDetail{Device: deviceView(sum), Config: []ConfigValue{}, Health: []SampleView{}, CallQuality: []SampleView{},
		Events: []EventView{}, Commands: []CommandView{}, Audit: []AuditView{}}
	d.Scopes = map[string]any{"org": sum.OrgID, "site": sum.SiteID, "room": sum.RoomID, "device": sum.ID}

	eff, err := c.st.EffectiveProfile(ctx, id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	keys := map[string]bool{}
	for k := range eff.Values {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		sc := eff.Sources[k]
		d.Config = append(d.Config, ConfigValue{Key: k, Value: maskValue(k, eff.Values[k]), Source: string(sc.Kind),
			ScopeID: sc.ID, Version: eff.Versions[sc]})
	}
	body, err := json.Marshal(eff.Values)
	if err == nil {
		d.ConfigVersion, _ = fleetapi.ProfileVersion(body)
	}

	since := c.now().Add(-detailWindow)
	for kind, dst := range map[string]*[]SampleView{store.SampleHealth: &d.Health, store.SampleCall: &d.CallQuality} {
		samples, err := c.st.Samples(ctx, id, kind, since, 200)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		for _, s := range samples {
			*dst = append(*dst, SampleView{At: s.At, Kind: s.Kind, Body: s.Body})
		}
	}
	events, err := c.st.DeviceEvents(ctx, id, 200)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for _, e := range events {
		d.Events = append(d.Events, eventView(e))
	}
	cmds, err := c.st.Commands(ctx, id, "")
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for i := len(cmds) - 1; i >= 0 && len(d.Commands) < 100; i-- { // newest first
		d.Commands = append(d.Commands, commandView(cmds[i]))
	}
	upd, at, err := c.st.DeviceUpdate(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.storeError(w, r, err)
		return
	}
	if err == nil && !at.IsZero() {
		d.Update = &DeviceUpdateView{Status: upd, Progress: progress(upd), ReportedAt: at}
	}
	entries, err := c.st.Audit(ctx, "device:"+id, 50)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		v := AuditView{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Subject: e.Subject}
		if len(e.Before) > 0 {
			v.Before = maskAudit(e.Before)
		}
		if len(e.After) > 0 {
			v.After = maskAudit(e.After)
		}
		d.Audit = append(d.Audit, v)
	}
	writeJSON(w, http.StatusOK, d)
}

func (c *Console) revokeDevice(w http.ResponseWriter, r *http.Request, who *caller) {
	if err := c.st.RevokeDevice(r.Context(), who.account.Username, r.PathValue("id")); err != nil {
		c.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) listCommands(w http.ResponseWriter, r *http.Request, _ *caller) {
	status := store.CommandStatus(r.URL.Query().Get("status"))
	cmds, err := c.st.Commands(r.Context(), r.PathValue("id"), status)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]CommandView, 0, len(cmds))
	for _, cmd := range cmds {
		out = append(out, commandView(cmd))
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) getCommand(w http.ResponseWriter, r *http.Request, _ *caller) {
	cmd, err := c.st.Command(r.Context(), r.PathValue("id"))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(cmd))
}

// CommandRequest is the body of POST /devices/{id}/commands.
type CommandRequest struct {
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args,omitempty"`
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 128

// enqueueCommand queues a command. The Idempotency-Key header makes a
// retried POST answer the command the first one queued (200 instead of
// 201); without it each POST queues a new command.
func (c *Console) enqueueCommand(w http.ResponseWriter, r *http.Request, who *caller) {
	var req CommandRequest
	if !c.decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		c.problem(w, http.StatusBadRequest, "bad-request", fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters", maxIdempotencyKey), "Idempotency-Key")
		return
	}
	if key == "" {
		key = "console-" + randomToken(16)
	}
	args, p := validateCommand(id, req)
	if p != nil {
		c.writeProblem(w, *p)
		return
	}
	cmd, created, err := c.st.EnqueueCommand(r.Context(), who.account.Username, store.NewCommand{
		DeviceID: id, Kind: req.Kind, Args: args, IdempotencyKey: key,
	})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/commands/"+url.PathEscape(cmd.ID))
	writeJSON(w, status, commandView(cmd))
}

// validateCommand checks a command's kind and arguments as the device will
// (strictly, by fleetapi's types) and returns the arguments to store.
func validateCommand(deviceID string, req CommandRequest) (json.RawMessage, *Problem) {
	bad := func(field, detail string) (json.RawMessage, *Problem) {
		return nil, &Problem{Status: http.StatusUnprocessableEntity, Code: "invalid", Detail: detail, Field: field}
	}
	if !slices.Contains(fleetapi.CommandKinds, req.Kind) {
		return bad("kind", fmt.Sprintf("unknown command %q (known: %s)", req.Kind, strings.Join(fleetapi.CommandKinds, ", ")))
	}
	raw := req.Args
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	strict := func(v any) *Problem {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			detail, field := describeJSONError(err, len(raw))
			if field != "" {
				field = "args." + field
			} else {
				field = "args"
			}
			return &Problem{Status: http.StatusUnprocessableEntity, Code: "invalid", Detail: detail, Field: field}
		}
		return nil
	}
	switch req.Kind {
	case fleetapi.CommandJoin:
		var a fleetapi.JoinArgs
		if p := strict(&a); p != nil {
			return nil, p
		}
		// Rooms join web links and their own forms (janus+wss://, whip+…),
		// and judge the service themselves: here the link need only be an
		// absolute URL with a host.
		u, err := url.Parse(a.URL)
		if err != nil || u.Scheme == "" || u.Host == "" || len(a.URL) > 2048 {
			return bad("args.url", fmt.Sprintf("%q is not a meeting link (an absolute URL such as https://meet.example.com/…)", a.URL))
		}
	case fleetapi.CommandCollectLogs:
		var a fleetapi.CollectLogsArgs
		if p := strict(&a); p != nil {
			return nil, p
		}
		if a.MaxBytes < 0 || a.MaxBytes > fleetapi.MaxLogBundle {
			return bad("args.maxBytes", fmt.Sprintf("must be from 0 (default) to %d", fleetapi.MaxLogBundle))
		}
		if a.SinceMinutes < 0 || a.SinceMinutes > 7*24*60 {
			return bad("args.sinceMinutes", "must be from 0 (default 60) to 10080 (a week)")
		}
	case fleetapi.CommandSetSetting:
		var a fleetapi.SetSettingArgs
		if p := strict(&a); p != nil {
			return nil, p
		}
		if !slices.Contains(fleetapi.ProfileKeys, a.Key) {
			return bad("args.key", fmt.Sprintf("unknown setting %q (known: %s)", a.Key, strings.Join(fleetapi.ProfileKeys, ", ")))
		}
		if len(a.Value) == 0 {
			return bad("args.value", "is required")
		}
		one, _ := json.Marshal(map[string]json.RawMessage{a.Key: a.Value})
		if _, err := fleetapi.DecodeProfile(one); err != nil {
			var pe *fleetapi.ProfileError
			if errors.As(err, &pe) && len(pe.Fields) > 0 {
				return nil, &Problem{Status: http.StatusUnprocessableEntity, Code: "invalid-profile",
					Detail: pe.Error(), Field: "args.value." + pe.Fields[0].Field, Fields: pe.Fields}
			}
			return bad("args.value", err.Error())
		}
	case fleetapi.CommandFactoryReset:
		var a fleetapi.FactoryResetArgs
		if p := strict(&a); p != nil {
			return nil, p
		}
		if a.Confirm != deviceID {
			return bad("args.confirm", "type the device's ID to confirm a factory reset")
		}
	default: // the kinds without arguments
		var a struct{}
		if p := strict(&a); p != nil {
			return nil, p
		}
		raw = json.RawMessage("{}")
	}
	return raw, nil
}

func (c *Console) downloadLogs(w http.ResponseWriter, r *http.Request, _ *caller) {
	id := r.PathValue("id")
	_, data, err := c.st.LogBundle(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="atrium-logs-%s.gz"`, safeFilename(id)))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func safeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func eventView(e store.DeviceEvent) EventView {
	return EventView{At: e.At, Type: e.Type, Message: e.Message, Details: e.Details, CommandID: e.CommandID}
}
