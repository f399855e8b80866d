package api

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/daemon/apiv1"
)

type openAPISchema struct {
	Type       string                   `json:"type"`
	Required   []string                 `json:"required"`
	Properties map[string]openAPISchema `json:"properties"`
	Ref        string                   `json:"$ref"`
	Items      *openAPISchema           `json:"items"`
	Enum       []string                 `json:"enum"`
}

type openAPIDocument struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Comps   struct {
		Schemas map[string]openAPISchema `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	dec := json.NewDecoder(bytes.NewReader(openAPIDoc))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// The copy in docs/ is the one people read; it must be the served one.
func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, openAPIDoc) {
		t.Fatal("docs/openapi.json differs from daemon/api/openapi.json; copy one onto the other")
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	inCode := map[string]bool{}
	for _, rt := range routes {
		inCode[strings.ToLower(rt.method)+" "+rt.path] = true
	}
	inDoc := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			inDoc[method+" "+path] = true
		}
	}
	for k := range inCode {
		if !inDoc[k] {
			t.Errorf("route %s is served but not documented", k)
		}
	}
	for k := range inDoc {
		if !inCode[k] {
			t.Errorf("route %s is documented but not served", k)
		}
	}
}

// TestOpenAPIMatchesTypes walks each documented schema and the Go type it
// describes: the same JSON properties, the same required set (fields without
// omitempty), the same enum values.
func TestOpenAPIMatchesTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]reflect.Type{
		"Status": reflect.TypeFor[apiv1.Status](), "Meeting": reflect.TypeFor[apiv1.Meeting](),
		"Device": reflect.TypeFor[apiv1.Device](), "VideoMode": reflect.TypeFor[apiv1.VideoMode](),
		"AudioFormat": reflect.TypeFor[apiv1.AudioFormat](), "CodecCaps": reflect.TypeFor[apiv1.CodecCaps](),
		"Control": reflect.TypeFor[apiv1.Control](), "DeviceList": reflect.TypeFor[apiv1.DeviceList](),
		"JoinRequest": reflect.TypeFor[apiv1.JoinRequest](), "Event": reflect.TypeFor[apiv1.Event](),
		"Problem": reflect.TypeFor[apiv1.Problem](), "Call": reflect.TypeFor[apiv1.Call](),
		"Participant": reflect.TypeFor[apiv1.Participant](), "PeerStats": reflect.TypeFor[apiv1.PeerStats](),
		"SentTrack": reflect.TypeFor[apiv1.SentTrack](), "ReceivedTrack": reflect.TypeFor[apiv1.ReceivedTrack](),
		"ControlChange": reflect.TypeFor[apiv1.ControlChange](), "Preset": reflect.TypeFor[apiv1.Preset](),
		"PresetList": reflect.TypeFor[apiv1.PresetList](), "AudioLevel": reflect.TypeFor[apiv1.AudioLevel](),
		"AudioTestRequest": reflect.TypeFor[apiv1.AudioTestRequest](), "AudioTestRun": reflect.TypeFor[apiv1.AudioTestRun](),
		"AudioTestResult": reflect.TypeFor[apiv1.AudioTestResult](),
		"MediaChange":     reflect.TypeFor[apiv1.MediaChange](), "MediaState": reflect.TypeFor[apiv1.MediaState](),
		"FleetStatus": reflect.TypeFor[apiv1.FleetStatus](), "FleetEnrollRequest": reflect.TypeFor[apiv1.FleetEnrollRequest](),
		"UpdateStatus": reflect.TypeFor[apiv1.UpdateStatus](),
	}
	for name, typ := range types {
		schema, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var fields, required []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			jsonName, opts, _ := strings.Cut(tag, ",")
			if jsonName == "-" || !f.IsExported() {
				continue
			}
			fields = append(fields, jsonName)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, jsonName)
			}
			prop, ok := schema.Properties[jsonName]
			if !ok {
				continue
			}
			checkKind(t, name+"."+jsonName, f.Type, prop, doc)
		}
		var documented []string
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		sort.Strings(fields)
		sort.Strings(documented)
		sort.Strings(required)
		req := append([]string(nil), schema.Required...)
		sort.Strings(req)
		if !reflect.DeepEqual(fields, documented) {
			t.Errorf("%s: Go fields %v, documented %v", name, fields, documented)
		}
		if !reflect.DeepEqual(required, req) {
			t.Errorf("%s: Go always sends %v, documented as required %v", name, required, req)
		}
	}

	enums := map[string][]string{
		"DaemonState":  {string(apiv1.DaemonStarting), string(apiv1.DaemonReady), string(apiv1.DaemonStopping)},
		"MeetingState": {string(apiv1.MeetingIdle), string(apiv1.MeetingJoining), string(apiv1.MeetingConnected), string(apiv1.MeetingReconnecting), string(apiv1.MeetingLeft), string(apiv1.MeetingFailed)},
		"DeviceKind":   {string(apiv1.KindCamera), string(apiv1.KindMicrophone), string(apiv1.KindSpeaker), string(apiv1.KindVideoEncoder), string(apiv1.KindVideoDecoder), string(apiv1.KindAudioEncoder), string(apiv1.KindAudioDecoder)},
	}
	enums["UpdateStatus.state"] = []string{apiv1.UpdateIdle, apiv1.UpdateChecking, apiv1.UpdateDownloading, apiv1.UpdateInstalling,
		apiv1.UpdateRebooting, apiv1.UpdateVerifying, apiv1.UpdateCommitted, apiv1.UpdateRolledBack, apiv1.UpdateFailed}
	enums["UpdateStatus.deferred"] = []string{apiv1.DeferredWindow, apiv1.DeferredMeeting}
	for name, want := range enums {
		if schema, prop, ok := strings.Cut(name, "."); ok {
			if got := doc.Comps.Schemas[schema].Properties[prop].Enum; !reflect.DeepEqual(got, want) {
				t.Errorf("enum %s: documented %v, code %v", name, got, want)
			}
			continue
		}
		if got := doc.Comps.Schemas[name].Enum; !reflect.DeepEqual(got, want) {
			t.Errorf("enum %s: documented %v, code %v", name, got, want)
		}
	}
	evTypes := doc.Comps.Schemas["Event"].Properties["type"].Enum
	wantEv := []string{string(apiv1.EventStatus), string(apiv1.EventMeetingState), string(apiv1.EventDeviceAdded), string(apiv1.EventDeviceRemoved), string(apiv1.EventDeviceChanged), string(apiv1.EventCallStats), string(apiv1.EventCalendarChanged), string(apiv1.EventDisplayChanged), string(apiv1.EventSettingsChanged), string(apiv1.EventFleetChanged), string(apiv1.EventUpdateChanged)}
	if !reflect.DeepEqual(evTypes, wantEv) {
		t.Errorf("event types: documented %v, code %v", evTypes, wantEv)
	}
}

// checkKind compares a Go field's type with its schema's JSON type.
func checkKind(t *testing.T, where string, typ reflect.Type, s openAPISchema, doc openAPIDocument) {
	t.Helper()
	if s.Ref != "" {
		s = doc.Comps.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	if s.Type == "" {
		return // oneOf and friends: checked by hand
	}
	want := ""
	switch {
	case typ == reflect.TypeFor[time.Time]():
		want = "string"
	case typ == reflect.TypeFor[json.RawMessage]():
		return
	default:
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem() // optional: omitted when nil
		}
		switch typ.Kind() {
		case reflect.Float32, reflect.Float64:
			want = "number"
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		case reflect.Int, reflect.Int64, reflect.Uint64:
			want = "integer"
		case reflect.Slice:
			want = "array"
		case reflect.Struct, reflect.Map:
			want = "object"
		}
	}
	if s.Type != want {
		t.Errorf("%s: Go %s is JSON %s, documented as %s", where, typ, want, s.Type)
	}
}
