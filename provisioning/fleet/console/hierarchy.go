package console

import (
	"net/http"
	"strconv"
	"time"
)

// Node is an organisation, site or room as the API shows it.
type Node struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	ParentID  string    `json:"parentId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	Children  []Node    `json:"children,omitempty"`
}

type nameRequest struct {
	Name string `json:"name"`
}

// hierarchy returns every organisation with its sites and their rooms: the
// pages' pickers and filters need the whole tree, which is small next to
// the device list. Three queries, whatever the size of the tree.
func (c *Console) hierarchy(w http.ResponseWriter, r *http.Request, _ *caller) {
	ctx := r.Context()
	orgs, err := c.st.Organisations(ctx)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	sites, err := c.st.Sites(ctx, "")
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	rooms, err := c.st.Rooms(ctx, "")
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	roomsOf := map[string][]Node{}
	for _, rm := range rooms {
		roomsOf[rm.SiteID] = append(roomsOf[rm.SiteID], Node{ID: rm.ID, Name: rm.Name, ParentID: rm.SiteID, CreatedAt: rm.CreatedAt})
	}
	sitesOf := map[string][]Node{}
	for _, s := range sites {
		sn := Node{ID: s.ID, Name: s.Name, ParentID: s.OrgID, CreatedAt: s.CreatedAt, Children: roomsOf[s.ID]}
		if sn.Children == nil {
			sn.Children = []Node{}
		}
		sitesOf[s.OrgID] = append(sitesOf[s.OrgID], sn)
	}
	out := make([]Node, 0, len(orgs))
	for _, o := range orgs {
		on := Node{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt, Children: sitesOf[o.ID]}
		if on.Children == nil {
			on.Children = []Node{}
		}
		out = append(out, on)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) listOrgs(w http.ResponseWriter, r *http.Request, _ *caller) {
	orgs, err := c.st.Organisations(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]Node, 0, len(orgs))
	for _, o := range orgs {
		out = append(out, Node{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) createOrg(w http.ResponseWriter, r *http.Request, who *caller) {
	var req nameRequest
	if !c.decodeName(w, r, &req) {
		return
	}
	o, err := c.st.CreateOrganisation(r.Context(), who.account.Username, req.Name)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, Node{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt})
}

func (c *Console) listSites(w http.ResponseWriter, r *http.Request, _ *caller) {
	sites, err := c.st.Sites(r.Context(), r.PathValue("id"))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]Node, 0, len(sites))
	for _, s := range sites {
		out = append(out, Node{ID: s.ID, Name: s.Name, ParentID: s.OrgID, CreatedAt: s.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) createSite(w http.ResponseWriter, r *http.Request, who *caller) {
	var req nameRequest
	if !c.decodeName(w, r, &req) {
		return
	}
	s, err := c.st.CreateSite(r.Context(), who.account.Username, r.PathValue("id"), req.Name)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, Node{ID: s.ID, Name: s.Name, ParentID: s.OrgID, CreatedAt: s.CreatedAt})
}

func (c *Console) listRooms(w http.ResponseWriter, r *http.Request, _ *caller) {
	rooms, err := c.st.Rooms(r.Context(), r.PathValue("id"))
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]Node, 0, len(rooms))
	for _, rm := range rooms {
		out = append(out, Node{ID: rm.ID, Name: rm.Name, ParentID: rm.SiteID, CreatedAt: rm.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) createRoom(w http.ResponseWriter, r *http.Request, who *caller) {
	var req nameRequest
	if !c.decodeName(w, r, &req) {
		return
	}
	rm, err := c.st.CreateRoom(r.Context(), who.account.Username, r.PathValue("id"), req.Name)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, Node{ID: rm.ID, Name: rm.Name, ParentID: rm.SiteID, CreatedAt: rm.CreatedAt})
}

// maxName bounds the names of organisations, sites and rooms.
const maxName = 100

func (c *Console) decodeName(w http.ResponseWriter, r *http.Request, req *nameRequest) bool {
	if !c.decode(w, r, req) {
		return false
	}
	if len(req.Name) == 0 || len(req.Name) > maxName {
		c.problem(w, http.StatusUnprocessableEntity, "invalid", "a name is 1 to "+strconv.Itoa(maxName)+" bytes", "name")
		return false
	}
	return true
}

// Audit

// AuditView is one audit entry; profile bodies and command arguments have
// their secrets masked.
type AuditView struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	Before  any       `json:"before,omitempty"`
	After   any       `json:"after,omitempty"`
}

func (c *Console) listAudit(w http.ResponseWriter, r *http.Request, _ *caller) {
	limit, ok := c.limitParam(w, r, 200, 1000)
	if !ok {
		return
	}
	entries, err := c.st.Audit(r.Context(), r.URL.Query().Get("subject"), limit)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	out := make([]AuditView, 0, len(entries))
	// Newest first: the page is read from the top.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		v := AuditView{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Subject: e.Subject}
		if len(e.Before) > 0 {
			v.Before = maskAudit(e.Before)
		}
		if len(e.After) > 0 {
			v.After = maskAudit(e.After)
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// maskAudit masks what an audit entry may hold in clear: a profile body's
// secrets, and a set-setting command's value ("Args" of a stored Command).
func maskAudit(raw []byte) any {
	v, err := parseTree(raw)
	if err != nil {
		return string(raw)
	}
	maskTree(v)
	if m, ok := v.(map[string]any); ok {
		for _, k := range []string{"Args", "args"} {
			if args, ok := m[k].(map[string]any); ok {
				if key, ok := args["key"].(string); ok {
					wrapped := map[string]any{key: args["value"]}
					maskTree(wrapped)
					args["value"] = wrapped[key]
				}
			}
		}
	}
	return v
}

// limitParam reads ?limit= (default def, at most max).
func (c *Console) limitParam(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		c.problem(w, http.StatusBadRequest, "bad-request", "limit must be a number from 1 to "+strconv.Itoa(max), "limit")
		return 0, false
	}
	return n, true
}
