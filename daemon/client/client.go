// Package client is a Go client for roomd's local API, over the unix socket
// or HTTP. roomctl and the integration tests use it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

// ErrUnreachable means roomd could not be reached at all (not running, wrong
// socket, no permission).
var ErrUnreachable = errors.New("roomd is not reachable")

// Client calls one roomd.
type Client struct {
	http  *http.Client
	base  string
	token string
	admin string // admin session token, see WithAdmin
}

// NewUnix returns a client for the unix socket at path.
func NewUnix(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{http: &http.Client{Transport: tr}, base: "http://roomd"}
}

// NewHTTP returns a client for roomd at baseURL (e.g. http://127.0.0.1:8480),
// sending token as a bearer token when it is not empty.
func NewHTTP(baseURL, token string) *Client {
	return &Client{http: &http.Client{}, base: strings.TrimRight(baseURL, "/"), token: token}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Status calls GET /status.
func (c *Client) Status(ctx context.Context) (apiv1.Status, error) {
	var st apiv1.Status
	return st, c.do(ctx, http.MethodGet, "/status", nil, &st)
}

// Devices calls GET /devices.
func (c *Client) Devices(ctx context.Context) ([]apiv1.Device, error) {
	var l apiv1.DeviceList
	return l.Devices, c.do(ctx, http.MethodGet, "/devices", nil, &l)
}

// Device calls GET /devices/{id}.
func (c *Client) Device(ctx context.Context, id string) (apiv1.Device, error) {
	var d apiv1.Device
	return d, c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id), nil, &d)
}

// SetControl calls PUT /devices/{id}/controls/{control}.
func (c *Client) SetControl(ctx context.Context, id, control string, change apiv1.ControlChange) (apiv1.Device, error) {
	var d apiv1.Device
	return d, c.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"/controls/"+url.PathEscape(control), change, &d)
}

// Level calls GET /devices/{id}/level; window 0 takes roomd's default.
func (c *Client) Level(ctx context.Context, id string, window time.Duration) (apiv1.AudioLevel, error) {
	var l apiv1.AudioLevel
	path := "/devices/" + url.PathEscape(id) + "/level"
	if window > 0 {
		path += "?window=" + url.QueryEscape(window.String())
	}
	return l, c.do(ctx, http.MethodGet, path, nil, &l)
}

// NetworkTest calls POST /network/test.
func (c *Client) NetworkTest(ctx context.Context) (apiv1.NetworkTest, error) {
	var r apiv1.NetworkTest
	return r, c.do(ctx, http.MethodPost, "/network/test", nil, &r)
}

// rawBody is a request body sent as is, not as JSON.
type rawBody struct {
	data        []byte
	contentType string
}

// CheckCalendar calls POST /calendar/check with an iCalendar document.
func (c *Client) CheckCalendar(ctx context.Context, ics []byte) (apiv1.CalendarCheck, error) {
	var r apiv1.CalendarCheck
	return r, c.do(ctx, http.MethodPost, "/calendar/check", rawBody{data: ics, contentType: "text/calendar"}, &r)
}

// SetMedia calls PUT /meeting/media.
func (c *Client) SetMedia(ctx context.Context, change apiv1.MediaChange) (apiv1.MediaState, error) {
	var st apiv1.MediaState
	return st, c.do(ctx, http.MethodPut, "/meeting/media", change, &st)
}

// AudioSelfTest calls POST /audio/self-test.
func (c *Client) AudioSelfTest(ctx context.Context, req apiv1.AudioTestRequest) (apiv1.AudioTestResult, error) {
	var r apiv1.AudioTestResult
	return r, c.do(ctx, http.MethodPost, "/audio/self-test", req, &r)
}

// Presets calls GET /devices/{id}/presets.
func (c *Client) Presets(ctx context.Context, id string) ([]apiv1.Preset, error) {
	var l apiv1.PresetList
	return l.Presets, c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"/presets", nil, &l)
}

// SavePreset calls PUT /devices/{id}/presets/{name}.
func (c *Client) SavePreset(ctx context.Context, id, name string) (apiv1.Preset, error) {
	var p apiv1.Preset
	return p, c.do(ctx, http.MethodPut, presetPath(id, name), nil, &p)
}

// RecallPreset calls POST /devices/{id}/presets/{name}/recall.
func (c *Client) RecallPreset(ctx context.Context, id, name string) (apiv1.Device, error) {
	var d apiv1.Device
	return d, c.do(ctx, http.MethodPost, presetPath(id, name)+"/recall", nil, &d)
}

// DeletePreset calls DELETE /devices/{id}/presets/{name}.
func (c *Client) DeletePreset(ctx context.Context, id, name string) error {
	resp, err := c.send(ctx, http.MethodDelete, presetPath(id, name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func presetPath(id, name string) string {
	return "/devices/" + url.PathEscape(id) + "/presets/" + url.PathEscape(name)
}

// Join calls POST /meeting/join.
func (c *Client) Join(ctx context.Context, meetingURL string) (apiv1.Meeting, error) {
	var m apiv1.Meeting
	return m, c.do(ctx, http.MethodPost, "/meeting/join", apiv1.JoinRequest{URL: meetingURL}, &m)
}

// Leave calls POST /meeting/leave.
func (c *Client) Leave(ctx context.Context) (apiv1.Meeting, error) {
	var m apiv1.Meeting
	return m, c.do(ctx, http.MethodPost, "/meeting/leave", nil, &m)
}

// Events follows GET /events, calling fn for each event until ctx is done,
// the stream ends, or fn returns an error (which Events returns).
func (c *Client) Events(ctx context.Context, fn func(apiv1.Event) error) error {
	resp, err := c.send(ctx, http.MethodGet, "/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // id:, event:, retry: and comments repeat what data holds
		}
		var ev apiv1.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	return io.EOF
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// send performs a request and turns any non-2xx answer into *apiv1.Problem.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, ctype = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+apiv1.BasePath+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.admin != "" {
		req.Header.Set(apiv1.AdminHeader, c.admin)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	p := &apiv1.Problem{Status: resp.StatusCode, Title: resp.Status}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(data, p)
	return nil, p
}
