package client

import (
	"context"
	"net/http"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// Fleet calls GET /fleet.
func (c *Client) Fleet(ctx context.Context) (apiv1.FleetStatus, error) {
	var s apiv1.FleetStatus
	return s, c.do(ctx, http.MethodGet, "/fleet", nil, &s)
}

// FleetEnroll calls POST /fleet/enroll.
func (c *Client) FleetEnroll(ctx context.Context, req apiv1.FleetEnrollRequest) (apiv1.FleetStatus, error) {
	var s apiv1.FleetStatus
	return s, c.do(ctx, http.MethodPost, "/fleet/enroll", req, &s)
}
