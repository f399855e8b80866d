package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// Mask stands for a secret's value in everything the API returns. Saving a
// profile with Mask where a secret goes keeps the stored value.
const Mask = "********"

func commandKinds() []string { return slices.Clone(fleetapi.CommandKinds) }
func profileKeys() []string  { return slices.Clone(fleetapi.ProfileKeys) }
func secretPaths() []string  { return slices.Clone(fleetapi.SecretPaths) }

// parseTree decodes JSON keeping numbers as written.
func parseTree(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// secretLeaf visits every string at a secret path ("a.b", "list[].c") in
// v, with its concrete path ("list[2].c"). set replaces it.
func secretLeaf(v any, path string, visit func(at string, s string, set func(string))) {
	var walk func(v any, segs []string, at string)
	walk = func(v any, segs []string, at string) {
		if len(segs) == 0 {
			return
		}
		seg, list := strings.CutSuffix(segs[0], "[]")
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		child, ok := m[seg]
		if !ok {
			return
		}
		name := seg
		if at != "" {
			name = at + "." + seg
		}
		if list {
			items, ok := child.([]any)
			if !ok {
				return
			}
			for i, it := range items {
				walk(it, segs[1:], fmt.Sprintf("%s[%d]", name, i))
			}
			return
		}
		if len(segs) == 1 {
			if s, ok := child.(string); ok {
				visit(name, s, func(n string) { m[seg] = n })
			}
			return
		}
		walk(child, segs[1:], name)
	}
	walk(v, strings.Split(path, "."), "")
}

// maskTree replaces every non-empty secret in a decoded profile with Mask.
func maskTree(v any) {
	for _, p := range fleetapi.SecretPaths {
		secretLeaf(v, p, func(_ string, s string, set func(string)) {
			if s != "" {
				set(Mask)
			}
		})
	}
}

// maskJSON returns body with its secrets masked; a body that is not JSON
// comes back as it is (the store only keeps JSON).
func maskJSON(body json.RawMessage) json.RawMessage {
	if len(body) == 0 {
		return body
	}
	v, err := parseTree(body)
	if err != nil {
		return body
	}
	maskTree(v)
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// maskValue masks one top-level profile key's value.
func maskValue(key string, value json.RawMessage) json.RawMessage {
	wrapped, err := json.Marshal(map[string]json.RawMessage{key: value})
	if err != nil {
		return value
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(maskJSON(wrapped), &back); err != nil {
		return value
	}
	return back[key]
}

// unmask puts the stored secrets back where proposed has Mask. A Mask with
// no stored value at the same path is an error naming the path: the
// editor must type the secret.
func unmask(proposed, current json.RawMessage) (json.RawMessage, []fleetapi.FieldError) {
	p, err := parseTree(proposed)
	if err != nil {
		return proposed, nil // DecodeProfile will name the problem
	}
	var cur any
	if len(current) > 0 {
		cur, _ = parseTree(current)
	}
	stored := map[string]string{}
	for _, path := range fleetapi.SecretPaths {
		secretLeaf(cur, path, func(at, s string, _ func(string)) { stored[at] = s })
	}
	var errs []fleetapi.FieldError
	changed := false
	for _, path := range fleetapi.SecretPaths {
		secretLeaf(p, path, func(at, s string, set func(string)) {
			if s != Mask {
				return
			}
			if old, ok := stored[at]; ok && old != "" {
				set(old)
				changed = true
				return
			}
			errs = append(errs, fleetapi.FieldError{Field: at, Reason: "is masked but no value is stored here; type the secret"})
		})
	}
	if len(errs) > 0 || !changed {
		return proposed, errs
	}
	out, err := json.Marshal(p)
	if err != nil {
		return proposed, nil
	}
	return out, nil
}

// Change is one top-level key that differs between two profiles, with
// secrets masked. Change is "added", "removed" or "changed".
type Change struct {
	Key    string          `json:"key"`
	Change string          `json:"change"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// diffProfiles compares two profile bodies key by key (the unit of
// inheritance). Values are compared in clear, so a changed secret shows as
// changed although both sides show Mask.
func diffProfiles(before, after json.RawMessage) ([]Change, error) {
	var b, a map[string]json.RawMessage
	if len(before) > 0 {
		if err := json.Unmarshal(before, &b); err != nil {
			return nil, fmt.Errorf("diff: stored profile: %w", err)
		}
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("diff: proposed profile: %w", err)
	}
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	out := []Change{}
	for _, k := range sortedKeys(keys) {
		bv, inB := b[k]
		av, inA := a[k]
		switch {
		case inB && !inA:
			out = append(out, Change{Key: k, Change: "removed", Before: maskValue(k, bv)})
		case !inB && inA:
			out = append(out, Change{Key: k, Change: "added", After: maskValue(k, av)})
		case !sameJSON(bv, av):
			out = append(out, Change{Key: k, Change: "changed", Before: maskValue(k, bv), After: maskValue(k, av)})
		}
	}
	return out, nil
}

// sameJSON compares two JSON values ignoring layout and key order.
func sameJSON(x, y json.RawMessage) bool {
	var a, b any
	if json.Unmarshal(x, &a) != nil || json.Unmarshal(y, &b) != nil {
		return bytes.Equal(x, y)
	}
	ca, _ := json.Marshal(a)
	cb, _ := json.Marshal(b)
	return bytes.Equal(ca, cb)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	// Profile keys in their display order first, anything else after.
	slices.SortFunc(out, func(x, y string) int {
		ix, iy := slices.Index(fleetapi.ProfileKeys, x), slices.Index(fleetapi.ProfileKeys, y)
		if ix < 0 {
			ix = len(fleetapi.ProfileKeys)
		}
		if iy < 0 {
			iy = len(fleetapi.ProfileKeys)
		}
		if ix != iy {
			return ix - iy
		}
		return strings.Compare(x, y)
	})
	return out
}
