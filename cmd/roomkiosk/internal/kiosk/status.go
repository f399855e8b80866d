package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// StatusSource reports roomd's current status. An error means roomd is not
// usable right now, for whatever reason.
type StatusSource interface {
	Status(ctx context.Context) (apiv1.Status, error)
}

// HTTPStatus reads roomd's status from GET {origin}/api/v1/status.
type HTTPStatus struct {
	client *http.Client
	url    string
}

// NewHTTPStatus returns a StatusSource for the roomd at origin. The client
// should carry a timeout shorter than the poll interval, so that a hung
// roomd counts as down rather than stalling the watcher.
func NewHTTPStatus(origin Origin, client *http.Client) *HTTPStatus {
	return &HTTPStatus{client: client, url: origin.String() + apiv1.BasePath + "/status"}
}

// Status implements StatusSource.
func (s *HTTPStatus) Status(ctx context.Context) (apiv1.Status, error) {
	var st apiv1.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return st, fmt.Errorf("status request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("roomd status: %w", err) // err names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("get %s: %s: %w", s.url, resp.Status, ErrBadStatus)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, apiv1.MaxBodyBytes)).Decode(&st); err != nil {
		return st, fmt.Errorf("decode %s: %w: %w", s.url, ErrBadStatus, err)
	}
	return st, nil
}
