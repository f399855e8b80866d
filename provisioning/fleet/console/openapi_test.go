package console

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/provisioning/fleet/rollout"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

const openAPIPath = "../../../docs/fleetd-console-openapi.json"

type oaSchema struct {
	Type       any                 `json:"type"`
	Required   []string            `json:"required"`
	Properties map[string]oaSchema `json:"properties"`
	Ref        string              `json:"$ref"`
	Enum       []string            `json:"enum"`
}

type oaDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Comps   struct {
		Schemas map[string]oaSchema `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPIDoc(t *testing.T) oaDoc {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc oaDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIRoutes checks that every route the console registers is
// documented and every documented one is served.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPIDoc(t)
	inCode := map[string]bool{}
	for _, rt := range (&Console{}).routes() {
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
	if len(inCode) < 25 {
		t.Fatalf("only %d routes: the route table is not what the test reads", len(inCode))
	}
}

// TestOpenAPISchemas compares each documented schema with its Go type:
// the same JSON properties and, for answers, the same required set (the
// fields without omitempty, which the console always sends).
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPIDoc(t)
	answers := map[string]reflect.Type{
		"Problem": reflect.TypeFor[Problem](), "FieldError": reflect.TypeFor[fleetapi.FieldError](),
		"Account": reflect.TypeFor[AccountView](), "Session": reflect.TypeFor[SessionView](),
		"Node": reflect.TypeFor[Node](), "Device": reflect.TypeFor[DeviceView](),
		"ConfigValue": reflect.TypeFor[ConfigValue](), "Sample": reflect.TypeFor[SampleView](),
		"Event": reflect.TypeFor[EventView](), "Command": reflect.TypeFor[CommandView](),
		"DeviceDetail": reflect.TypeFor[DeviceDetail](), "AuditEntry": reflect.TypeFor[AuditView](),
		"Code": reflect.TypeFor[CodeView](), "NewCode": reflect.TypeFor[NewCode](),
		"ProfileVersion": reflect.TypeFor[ProfileVersionView](), "Profile": reflect.TypeFor[ProfileView](),
		"Change": reflect.TypeFor[Change](), "ValidateResult": reflect.TypeFor[ValidateResult](),
		"Ring": reflect.TypeFor[rollout.Ring](), "Release": reflect.TypeFor[ReleaseView](),
		"ReleaseList": reflect.TypeFor[ReleaseList](), "Rollout": reflect.TypeFor[RolloutView](),
		"RingProgress": reflect.TypeFor[RingProgress](), "RolloutDevice": reflect.TypeFor[RolloutDeviceView](),
		"RolloutDetail": reflect.TypeFor[RolloutDetail](), "MaintenanceWindow": reflect.TypeFor[fleetapi.MaintenanceWindow](),
		"SiteWindow": reflect.TypeFor[SiteWindowView](), "UpdateStatus": reflect.TypeFor[fleetapi.UpdateStatus](),
		"DeviceUpdate": reflect.TypeFor[DeviceUpdateView](),
	}
	requests := map[string]reflect.Type{
		"LoginRequest": reflect.TypeFor[loginRequest](), "NameRequest": reflect.TypeFor[nameRequest](),
		"CommandRequest": reflect.TypeFor[CommandRequest](), "CodeRequest": reflect.TypeFor[CodeRequest](),
		"ProfileRequest": reflect.TypeFor[ProfileRequest](), "CreateAccountRequest": reflect.TypeFor[createAccountRequest](),
		"UpdateAccountRequest": reflect.TypeFor[updateAccountRequest](), "PasswordRequest": reflect.TypeFor[passwordRequest](),
		"RolloutRequest": reflect.TypeFor[RolloutRequest](), "AbortRequest": reflect.TypeFor[AbortRequest](),
		"WindowRequest": reflect.TypeFor[WindowRequest](),
	}
	check := func(name string, typ reflect.Type, checkRequired bool) {
		schema, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			return
		}
		var fields, required []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			jsonName, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if jsonName == "-" || !f.IsExported() {
				continue
			}
			fields = append(fields, jsonName)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, jsonName)
			}
		}
		var documented []string
		for p := range schema.Properties {
			documented = append(documented, p)
		}
		slices.Sort(fields)
		slices.Sort(documented)
		if !slices.Equal(fields, documented) {
			t.Errorf("%s: Go fields %v, documented %v", name, fields, documented)
		}
		if checkRequired {
			req := slices.Clone(schema.Required)
			slices.Sort(req)
			slices.Sort(required)
			if !slices.Equal(required, req) {
				t.Errorf("%s: Go always sends %v, documented as required %v", name, required, req)
			}
		}
	}
	for name, typ := range answers {
		check(name, typ, true)
	}
	for name, typ := range requests {
		check(name, typ, false)
	}
	if got := doc.Comps.Schemas["CommandRequest"].Properties["kind"].Enum; !slices.Equal(got, fleetapi.CommandKinds) {
		t.Errorf("command kinds documented %v, fleetapi has %v", got, fleetapi.CommandKinds)
	}
	rolloutStates := []string{string(store.RolloutRunning), string(store.RolloutPaused), string(store.RolloutHalted),
		string(store.RolloutAborted), string(store.RolloutCompleted)}
	if got := doc.Comps.Schemas["Rollout"].Properties["state"].Enum; !slices.Equal(got, rolloutStates) {
		t.Errorf("rollout states documented %v, the store has %v", got, rolloutStates)
	}
	if got, want := doc.Comps.Schemas["RolloutDevice"].Properties["deferred"].Enum, []string{fleetapi.DeferredWindow, fleetapi.DeferredMeeting}; !slices.Equal(got, want) {
		t.Errorf("deferred reasons documented %v, fleetapi has %v", got, want)
	}
}
