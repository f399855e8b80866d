package client

import (
	"context"
	"net/http"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// Update calls GET /update: the room's software updates.
func (c *Client) Update(ctx context.Context) (apiv1.UpdateStatus, error) {
	var s apiv1.UpdateStatus
	return s, c.do(ctx, http.MethodGet, "/update", nil, &s)
}
