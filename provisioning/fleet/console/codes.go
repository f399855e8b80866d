package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

// Enrollment-code lifetimes, in minutes.
const (
	DefaultCodeLifetime = 24 * 60
	MaxCodeLifetime     = 30 * 24 * 60
)

// CodeView is a stored enrollment code (never the code itself). Status is
// "active", "used", "expired" or "revoked".
type CodeView struct {
	Hash      string     `json:"hash"`
	Hint      string     `json:"hint,omitempty"`
	SiteID    string     `json:"siteId,omitempty"`
	RoomID    string     `json:"roomId,omitempty"`
	CreatedBy string     `json:"createdBy"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
	DeviceID  string     `json:"deviceId,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Status    string     `json:"status"`
}

func (c *Console) codeView(ec store.EnrollmentCode) CodeView {
	v := CodeView{
		Hash: ec.Hash, Hint: ec.Hint, SiteID: ec.Scope.SiteID, RoomID: ec.Scope.RoomID, CreatedBy: ec.CreatedBy,
		CreatedAt: ec.CreatedAt, ExpiresAt: ec.ExpiresAt, UsedAt: timePtr(ec.UsedAt), DeviceID: ec.DeviceID,
		RevokedAt: timePtr(ec.RevokedAt), Status: "active",
	}
	switch {
	case !ec.UsedAt.IsZero():
		v.Status = "used"
	case !ec.RevokedAt.IsZero():
		v.Status = "revoked"
	case !c.now().Before(ec.ExpiresAt):
		v.Status = "expired"
	}
	return v
}

// CodeRequest is the body of POST /enrollment-codes: exactly one of SiteID
// and RoomID; LifetimeMinutes from 1 to MaxCodeLifetime (0 means
// DefaultCodeLifetime).
type CodeRequest struct {
	SiteID          string `json:"siteId,omitempty"`
	RoomID          string `json:"roomId,omitempty"`
	LifetimeMinutes int    `json:"lifetimeMinutes,omitempty"`
}

// NewCode answers POST /enrollment-codes: the code in clear, this once.
// Grouped is the same code in groups of four for reading aloud and typing.
type NewCode struct {
	Code    string   `json:"code"`
	Grouped string   `json:"grouped"`
	Info    CodeView `json:"info"`
}

func groupCode(code string) string {
	var b strings.Builder
	for i, r := range code {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *Console) createCode(w http.ResponseWriter, r *http.Request, who *caller) {
	var req CodeRequest
	if !c.decode(w, r, &req) {
		return
	}
	if (req.SiteID == "") == (req.RoomID == "") {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", "give exactly one of siteId and roomId", "roomId")
		return
	}
	if req.LifetimeMinutes == 0 {
		req.LifetimeMinutes = DefaultCodeLifetime
	}
	if req.LifetimeMinutes < 1 || req.LifetimeMinutes > MaxCodeLifetime {
		c.problem(w, http.StatusUnprocessableEntity, "invalid",
			"lifetimeMinutes must be from 1 to "+strconv.Itoa(MaxCodeLifetime)+" (30 days)", "lifetimeMinutes")
		return
	}
	code, ec, err := c.st.CreateEnrollmentCode(r.Context(), who.account.Username,
		store.CodeScope{SiteID: req.SiteID, RoomID: req.RoomID}, time.Duration(req.LifetimeMinutes)*time.Minute)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewCode{Code: code, Grouped: groupCode(code), Info: c.codeView(ec)})
}

func (c *Console) listCodes(w http.ResponseWriter, r *http.Request, _ *caller) {
	all := false
	if s := r.URL.Query().Get("includeUsed"); s != "" {
		var err error
		if all, err = strconv.ParseBool(s); err != nil {
			c.problem(w, http.StatusBadRequest, "bad-request", "includeUsed must be true or false", "includeUsed")
			return
		}
	}
	codes, err := c.st.EnrollmentCodes(r.Context(), all)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]CodeView, 0, len(codes))
	for _, ec := range codes {
		out = append(out, c.codeView(ec))
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) revokeCode(w http.ResponseWriter, r *http.Request, who *caller) {
	if err := c.st.RevokeEnrollmentCode(r.Context(), who.account.Username, r.PathValue("hash")); err != nil {
		c.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
