package janus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ID is a VideoRoom room or participant id. Janus uses positive integers,
// or strings when the plugin runs with string_ids; an ID remembers which,
// so that it goes back to the server the way the server spoke it.
type ID struct {
	s   string
	str bool
}

// NumericID returns the integer id n.
func NumericID(n uint64) ID { return ID{s: strconv.FormatUint(n, 10)} }

// StringID returns the string id s.
func StringID(s string) ID { return ID{s: s, str: true} }

// String returns the id as text.
func (id ID) String() string { return id.s }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// IsString reports whether id is a string id.
func (id ID) IsString() bool { return id.str }

// MarshalJSON writes a JSON number or string.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.IsZero() {
		return nil, errors.New("marshal janus id: empty")
	}
	if id.str {
		return json.Marshal(id.s)
	}
	return []byte(id.s), nil
}

// UnmarshalJSON reads a non-negative JSON integer or a string; null leaves
// id as it was, as encoding/json does for other types.
func (id *ID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("janus id: %w", err)
		}
		*id = StringID(s)
		return nil
	}
	// Only plain integers: 1.0 or 1e3 are not ids Janus would send.
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("janus id %.40q is neither a non-negative integer nor a string", b)
	}
	*id = NumericID(n)
	return nil
}

// isOK reports whether a field that holds either a participant id or the
// word "ok" (as "leaving" and "unpublished" do) refers to this participant.
func (id ID) isOK() bool { return id.str && id.s == "ok" }
