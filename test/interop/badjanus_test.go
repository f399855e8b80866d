package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/atriumroom/atrium/daemon/apiv1"
	"github.com/atriumroom/atrium/test/roomdtest"
)

// badJanus speaks just enough of the Janus API to get a room to the step
// where it misbehaves in the way the test asks for.
type badJanus struct {
	fault string // janus-error, close-mid-join, huge-message, bad-sdp
}

func (b *badJanus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"janus-protocol"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx := r.Context()
	send := func(v any) {
		data, _ := json.Marshal(v)
		_ = c.Write(ctx, websocket.MessageText, data)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		var msg struct {
			Janus       string `json:"janus"`
			Transaction string `json:"transaction"`
			Body        struct {
				Request string `json:"request"`
			} `json:"body"`
		}
		if json.Unmarshal(data, &msg) != nil {
			return
		}
		event := func(data map[string]any, jsep map[string]any) {
			ev := map[string]any{"janus": "event", "session_id": 1, "sender": 2, "transaction": msg.Transaction,
				"plugindata": map[string]any{"plugin": "janus.plugin.videoroom", "data": data}}
			if jsep != nil {
				ev["jsep"] = jsep
			}
			send(map[string]any{"janus": "ack", "session_id": 1, "transaction": msg.Transaction})
			send(ev)
		}
		switch {
		case msg.Janus == "create":
			send(map[string]any{"janus": "success", "transaction": msg.Transaction, "data": map[string]any{"id": 1}})
		case msg.Janus == "attach":
			send(map[string]any{"janus": "success", "session_id": 1, "transaction": msg.Transaction, "data": map[string]any{"id": 2}})
		case msg.Body.Request == "join":
			switch b.fault {
			case "janus-error":
				event(map[string]any{"videoroom": "event", "error_code": 426, "error": "No such room (1234)"}, nil)
			case "close-mid-join":
				c.Close(websocket.StatusGoingAway, "")
				return
			case "huge-message":
				send(map[string]any{"janus": "ack", "transaction": msg.Transaction, "padding": strings.Repeat("x", 10<<20)})
			default:
				event(map[string]any{"videoroom": "joined", "room": 1234, "id": 7, "publishers": []any{}}, nil)
			}
		case msg.Body.Request == "publish" || msg.Body.Request == "configure":
			event(map[string]any{"videoroom": "event", "configured": "ok"}, map[string]any{"type": "answer", "sdp": "v=0\r\nthis is not SDP\r\n"})
		default: // keepalive, leave, detach, destroy
			send(map[string]any{"janus": "success", "session_id": 1, "transaction": msg.Transaction})
		}
	}
}

// TestBadJanusFailsCleanly: a server that errs, hangs up mid-join, floods
// or answers nonsense makes the join fail with a reason; roomd stays
// healthy and can join again.
func TestBadJanusFailsCleanly(t *testing.T) {
	d := roomdtest.Start(t, roomdtest.Options{})
	for _, c := range []struct{ fault, want string }{
		{"janus-error", "426"},
		{"close-mid-join", "closed"},
		{"huge-message", "too large"},
		{"bad-sdp", "SDP"},
	} {
		t.Run(c.fault, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: &badJanus{fault: c.fault}}
			go srv.Serve(ln)
			defer srv.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = d.Client.Join(ctx, fmt.Sprintf("janus+ws://%s/?room=1234", ln.Addr()))
			p, ok := err.(*apiv1.Problem)
			if !ok || p.Status != 502 {
				t.Fatalf("join: %v, want a 502 problem", err)
			}
			st, err := d.Client.Status(ctx)
			if err != nil {
				t.Fatalf("roomd unhealthy after %s: %v", c.fault, err)
			}
			if st.Meeting.State != apiv1.MeetingFailed || !strings.Contains(strings.ToLower(st.Meeting.Reason), strings.ToLower(c.want)) {
				t.Errorf("meeting %+v, want failed with %q in the reason", st.Meeting, c.want)
			}
			if st.Call != nil {
				t.Errorf("a failed join left a call: %+v", st.Call)
			}
			t.Logf("%s: %s", c.fault, st.Meeting.Reason)
		})
	}
}
