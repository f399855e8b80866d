package deviceapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleetapi"
)

// problem builds a fleetapi.Problem.
func problem(status int, code, field, format string, args ...any) *fleetapi.Problem {
	return &fleetapi.Problem{Status: status, Code: code, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// writeProblem answers with p; retryAfter > 0 adds Retry-After in whole
// seconds, rounded up.
func writeProblem(w http.ResponseWriter, p *fleetapi.Problem, retryAfter time.Duration) {
	if retryAfter > 0 {
		secs := int64((retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client went away; nothing to do
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// decodeBody reads a JSON body of at most fleetapi.MaxBody bytes into v,
// strictly: unknown fields, wrong types and trailing data are refused with
// the field named where there is one.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *fleetapi.Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return problem(http.StatusUnsupportedMediaType, fleetapi.CodeBadRequest, "",
				"Content-Type is %q; the body must be application/json", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, fleetapi.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeProblem(err)
		}
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "unexpected data after the JSON object")
	}
	return nil
}

// decodeProblem explains a decoding error.
func decodeProblem(err error) *fleetapi.Problem {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return problem(http.StatusRequestEntityTooLarge, fleetapi.CodeBadRequest, "",
			"the body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "the body is empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "the JSON body ends early")
	case errors.As(err, &syntax):
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "the body must be a JSON object, not %s", typeErr.Value)
		}
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, field, "must be %s, not %s", jsonKind(typeErr.Type.String()), typeErr.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, name, "unknown field %q", name)
	}
	return problem(http.StatusBadRequest, fleetapi.CodeBadRequest, "", "unreadable body: %v", err)
}

// jsonKind names a Go type the way a JSON author thinks of it.
func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case goType == "[]uint8":
		return "a base64 string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"), strings.HasPrefix(goType, "uint"):
		return "a number"
	}
	return goType
}
