package janus

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The Janus API's JSON. Decoding is strict about the fields read here (a
// wrong type fails the whole message) and ignores the many fields this
// provider has no use for, so that new server versions keep working.

// request is every message sent to Janus.
type request struct {
	Janus       string `json:"janus"`
	Transaction string `json:"transaction"`
	SessionID   uint64 `json:"session_id,omitempty"`
	HandleID    uint64 `json:"handle_id,omitempty"`
	Plugin      string `json:"plugin,omitempty"`
	Body        any    `json:"body,omitempty"`
	JSEP        *jsep  `json:"jsep,omitempty"`
}

// jsep is an SDP offer or answer.
type jsep struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
	// Trickle false tells Janus the SDP carries every candidate: the media
	// layer gathers before it returns an SDP, so none will follow.
	Trickle *bool `json:"trickle,omitempty"`
}

// message is every message received from Janus: replies and events.
type message struct {
	Janus       string          `json:"janus"`
	Transaction string          `json:"transaction"`
	SessionID   uint64          `json:"session_id"`
	Sender      uint64          `json:"sender"`
	Data        json.RawMessage `json:"data"`
	Error       *coreError      `json:"error"`
	PluginData  *pluginData     `json:"plugindata"`
	JSEP        *jsep           `json:"jsep"`

	// Core events: hangup's reason; media's and slowlink's details.
	Reason    string `json:"reason"`
	Type      string `json:"type"`
	Media     string `json:"media"`
	MID       string `json:"mid"`
	Receiving *bool  `json:"receiving"`
	Uplink    *bool  `json:"uplink"`
	Lost      *int64 `json:"lost"`
}

type coreError struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type pluginData struct {
	Plugin string          `json:"plugin"`
	Data   json.RawMessage `json:"data"`
}

func decodeMessage(b []byte) (*message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrProtocol, err, snippet(b))
	}
	if m.Janus == "" {
		return nil, fmt.Errorf("%w: no \"janus\" field: %s", ErrProtocol, snippet(b))
	}
	return &m, nil
}

// idData is the "data" of a create or attach reply.
type idData struct {
	ID uint64 `json:"id"`
}

func (m *message) dataID() (uint64, error) {
	if len(m.Data) == 0 {
		return 0, errors.New("reply has no data")
	}
	var d idData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return 0, err
	}
	if d.ID == 0 {
		return 0, errors.New("reply has no id")
	}
	return d.ID, nil
}

// roomEvent is the VideoRoom's plugindata.data, for every request and
// event this provider handles.
type roomEvent struct {
	VideoRoom   string      `json:"videoroom"`
	Room        *ID         `json:"room"`
	Description string      `json:"description"`
	ID          *ID         `json:"id"`
	PrivateID   *ID         `json:"private_id"`
	Publishers  []publisher `json:"publishers"`
	Attendees   []attendee  `json:"attendees"`
	Joining     *attendee   `json:"joining"`
	Unpublished *ID         `json:"unpublished"`
	Leaving     *ID         `json:"leaving"`
	Kicked      *ID         `json:"kicked"`
	Reason      string      `json:"reason"`
	Configured  string      `json:"configured"`
	Started     string      `json:"started"`
	Streams     []stream    `json:"streams"`
	ErrorCode   int         `json:"error_code"`
	Error       string      `json:"error"`
}

type publisher struct {
	ID      ID       `json:"id"`
	Display string   `json:"display"`
	Dummy   bool     `json:"dummy"`
	Streams []stream `json:"streams"`
}

type attendee struct {
	ID      ID     `json:"id"`
	Display string `json:"display"`
}

// stream is a published stream (in "publishers") or a subscription stream
// (in "attached" and "updated"), which add the feed fields.
type stream struct {
	Type        string `json:"type"`
	MID         string `json:"mid"`
	Codec       string `json:"codec"`
	Description string `json:"description"`
	Disabled    bool   `json:"disabled"`
	// Simulcast is true (published streams) or an object with the
	// layers (subscription streams) when the publisher sends simulcast.
	Simulcast flag  `json:"simulcast"`
	Active    *bool `json:"active"`
	// Send says whether Janus relays the stream to this subscription
	// (false while paused with configure "send": false).
	Send            *bool  `json:"send"`
	FeedID          *ID    `json:"feed_id"`
	FeedMID         string `json:"feed_mid"`
	FeedDisplay     string `json:"feed_display"`
	FeedDescription string `json:"feed_description"`
}

// flag is a field Janus sends as true, or as an object that means true
// (its details are not used here). Anything else is false: the field is a
// hint, and a shape this code does not know must not fail the message.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = flag(v)
	case map[string]any:
		*f = true
	default:
		*f = false
	}
	return nil
}

// roomEvent decodes the VideoRoom data of m.
func (m *message) roomEvent() (*roomEvent, error) {
	if m.PluginData == nil || len(m.PluginData.Data) == 0 {
		return nil, fmt.Errorf("%w: %q without plugindata", ErrProtocol, m.Janus)
	}
	var ev roomEvent
	if err := json.Unmarshal(m.PluginData.Data, &ev); err != nil {
		return nil, fmt.Errorf("%w: videoroom data: %v: %s", ErrProtocol, err, snippet(m.PluginData.Data))
	}
	return &ev, nil
}

// snippet quotes the start of a bad message for an error.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
