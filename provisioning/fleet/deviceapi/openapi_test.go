package deviceapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

const openAPIPath = "../../../docs/fleetd-device-openapi.json"

// pathConstants finds every Path* constant of package fleetapi in its
// source, so a path added there without documentation fails this test.
func pathConstants(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	consts := map[string]string{}
	entries, err := os.ReadDir("../../fleetapi")
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if !strings.HasSuffix(en.Name(), ".go") || strings.HasSuffix(en.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, "../../fleetapi/"+en.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Path") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("fleetapi.%s is not a string literal", name.Name)
					}
					consts[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return consts
}

type oaSchema struct {
	Ref        string              `json:"$ref"`
	Properties map[string]oaSchema `json:"properties"`
	Items      *oaSchema           `json:"items"`
}

// TestOpenAPI checks docs/fleetd-device-openapi.json: it parses as OpenAPI
// 3.1, documents exactly the fleetapi paths (POST) and the server's routes,
// every reference resolves, and each schema has exactly the JSON fields of
// its fleetapi type.
func TestOpenAPI(t *testing.T) {
	raw, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   struct {
			Schemas map[string]oaSchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	consts := pathConstants(t)
	if len(consts) < 4 {
		t.Fatalf("found only %v in fleetapi", consts)
	}
	// The update repository is a tree of static files (GET and HEAD)
	// under PathUpdates: its two directories are documented.
	repoPaths := []string{fleetapi.PathUpdates + "metadata/{file}", fleetapi.PathUpdates + "targets/{file}"}
	for name, path := range consts {
		if path == fleetapi.PathUpdates {
			for _, p := range repoPaths {
				ops, ok := doc.Paths[p]
				if _, get := ops["get"]; !ok || !get || len(ops) != 2 || ops["head"] == nil {
					t.Errorf("%s: documented methods %v, want get and head", p, slices.Sorted(maps.Keys(ops)))
				}
			}
			continue
		}
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("fleetapi.%s (%s) is not documented", name, path)
			continue
		}
		if _, ok := ops["post"]; !ok || len(ops) != 1 {
			t.Errorf("%s: documented methods %v, want post only", path, slices.Sorted(maps.Keys(ops)))
		}
	}
	for path := range doc.Paths {
		if !slices.Contains(slices.Collect(maps.Values(consts)), path) && !slices.Contains(repoPaths, path) {
			t.Errorf("%s is documented but no fleetapi constant names it", path)
		}
	}

	// Every $ref anywhere resolves.
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				refs = append(refs, r)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var anyDoc any
	_ = json.Unmarshal(raw, &anyDoc)
	walk(anyDoc)
	for _, r := range refs {
		name, ok := strings.CutPrefix(r, "#/components/schemas/")
		if _, exists := doc.Comps.Schemas[name]; !ok || !exists {
			t.Errorf("reference %s does not resolve", r)
		}
	}

	types := map[string]any{
		"Problem": fleetapi.Problem{}, "Facts": fleetapi.Facts{}, "EnrollRequest": fleetapi.EnrollRequest{},
		"EnrollResponse": fleetapi.EnrollResponse{}, "RenewRequest": fleetapi.RenewRequest{}, "RenewResponse": fleetapi.RenewResponse{},
		"CheckIn": fleetapi.CheckIn{}, "Inventory": fleetapi.Inventory{}, "Peripheral": fleetapi.Peripheral{},
		"Network": fleetapi.Network{}, "Health": fleetapi.Health{}, "Meeting": fleetapi.Meeting{},
		"CallQuality": fleetapi.CallQuality{}, "ProfileState": fleetapi.ProfileState{}, "ProfileOutcome": fleetapi.ProfileOutcome{},
		"Record": fleetapi.Record{}, "Event": fleetapi.Event{}, "Result": fleetapi.Result{},
		"CheckInResponse": fleetapi.CheckInResponse{}, "EffectiveProfile": fleetapi.EffectiveProfile{}, "Command": fleetapi.Command{},
		"UpdateStatus": fleetapi.UpdateStatus{}, "UpdateOffer": fleetapi.UpdateOffer{}, "MaintenanceWindow": fleetapi.MaintenanceWindow{},
	}
	for name, v := range types {
		sc, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		want := jsonFields(reflect.TypeOf(v))
		got := slices.Sorted(maps.Keys(sc.Properties))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("schema %s has fields %v, fleetapi.%s has %v", name, got, name, want)
		}
	}
	for name := range doc.Comps.Schemas {
		if _, ok := types[name]; !ok {
			t.Errorf("schema %s is not checked against a fleetapi type", name)
		}
	}
}

// jsonFields lists a struct's JSON field names, sorted.
func jsonFields(rt reflect.Type) []string {
	var out []string
	for f := range rt.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
