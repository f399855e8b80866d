package client

import (
	"context"
	"net/http"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// WithAdmin returns a client that sends an admin session token (from
// AdminLogin) in the X-Atrium-Admin header, as the kiosk does on loopback.
// Over the unix socket none is needed.
func (c *Client) WithAdmin(token string) *Client {
	cc := *c
	cc.admin = token
	return &cc
}

// AdminState calls GET /admin.
func (c *Client) AdminState(ctx context.Context) (apiv1.AdminState, error) {
	var st apiv1.AdminState
	return st, c.do(ctx, http.MethodGet, "/admin", nil, &st)
}

// AdminLogin calls POST /admin/session. A wrong PIN or a lock comes back as
// *apiv1.Problem (401, 429; 409 when no PIN is set).
func (c *Client) AdminLogin(ctx context.Context, pin string) (apiv1.AdminSession, error) {
	var s apiv1.AdminSession
	return s, c.do(ctx, http.MethodPost, "/admin/session", apiv1.AdminLogin{PIN: pin}, &s)
}

// AdminLogout calls DELETE /admin/session for the client's token.
func (c *Client) AdminLogout(ctx context.Context) error {
	return c.noContent(ctx, http.MethodDelete, "/admin/session", nil)
}

// SetAdminPIN calls PUT /admin/pin. Over the unix socket current may be
// empty.
func (c *Client) SetAdminPIN(ctx context.Context, current, newPIN string) error {
	return c.noContent(ctx, http.MethodPut, "/admin/pin", apiv1.PINChange{Current: current, New: newPIN})
}

// ClearAdminLockout calls DELETE /admin/lockout.
func (c *Client) ClearAdminLockout(ctx context.Context) error {
	return c.noContent(ctx, http.MethodDelete, "/admin/lockout", nil)
}

// Settings calls GET /settings.
func (c *Client) Settings(ctx context.Context) (apiv1.Settings, error) {
	var s apiv1.Settings
	return s, c.do(ctx, http.MethodGet, "/settings", nil, &s)
}

// PutSettings calls PUT /settings; in.Version must be the version read.
func (c *Client) PutSettings(ctx context.Context, in apiv1.Settings) (apiv1.Settings, error) {
	var s apiv1.Settings
	return s, c.do(ctx, http.MethodPut, "/settings", in, &s)
}

// Display calls GET /display.
func (c *Client) Display(ctx context.Context) (apiv1.DisplayState, error) {
	var s apiv1.DisplayState
	return s, c.do(ctx, http.MethodGet, "/display", nil, &s)
}

// WakeDisplay calls POST /display/wake.
func (c *Client) WakeDisplay(ctx context.Context) (apiv1.DisplayState, error) {
	var s apiv1.DisplayState
	return s, c.do(ctx, http.MethodPost, "/display/wake", nil, &s)
}

func (c *Client) noContent(ctx context.Context, method, path string, body any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
