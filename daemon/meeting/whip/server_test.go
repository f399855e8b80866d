package whip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeServer is an in-process WHIP/WHEP server whose answers each test
// sets through its fields before the first request. It records every
// request.
type fakeServer struct {
	*httptest.Server

	// Knobs; zero values give a well-behaved server.
	token         string   // required bearer token; a wrong one gets 403 quoting it
	optionsStatus int      // 0: 204
	links         []string // Link headers of OPTIONS
	postLinks     []string // Link headers of the POST response
	postStatus    int      // 0: 201
	postBody      string   // "" : an SDP answer
	contentType   string   // "": application/sdp
	location      string   // "": /whip/resource/1; "-": none
	etag          string   // "": "abc"
	noETag        bool     // the POST response has no ETag
	patchStatus   int      // 0: 200
	patchFrag     string   // "": new credentials
	deleteStatus  int      // 0: 200
	deleteBlock   bool     // DELETE waits until the client gives up
	// hook, if set, may answer a request itself by returning true.
	hook func(w http.ResponseWriter, r *http.Request) bool

	mu   sync.Mutex
	reqs []request
}

// request is one recorded request.
type request struct {
	method, path string
	header       http.Header
	body         string
}

func newFakeServer(t *testing.T, configure func(*fakeServer)) *fakeServer {
	s := &fakeServer{}
	if configure != nil {
		configure(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// endpoint is the server's WHIP endpoint URL.
func (s *fakeServer) endpoint() string { return s.URL + "/whip/endpoint/ep" }

func (s *fakeServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// methods lists the requests as "METHOD path".
func (s *fakeServer) methods() []string {
	var out []string
	for _, r := range s.requests() {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

func (s *fakeServer) find(method string) (request, bool) {
	for _, r := range s.requests() {
		if r.method == method {
			return r, true
		}
	}
	return request{}, false
}

func (s *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, request{method: r.Method, path: r.URL.RequestURI(), header: r.Header.Clone(), body: string(body)})
	s.mu.Unlock()
	if s.hook != nil && s.hook(w, r) {
		return
	}
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		// Quotes what it got, as careless servers do.
		http.Error(w, "token not valid: "+r.Header.Get("Authorization"), http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		for _, l := range s.links {
			w.Header().Add("Link", l)
		}
		w.WriteHeader(or(s.optionsStatus, http.StatusNoContent))
	case http.MethodPost:
		for _, l := range s.postLinks {
			w.Header().Add("Link", l)
		}
		switch s.location {
		case "":
			w.Header().Set("Location", "/whip/resource/1")
		case "-":
		default:
			w.Header().Set("Location", s.location)
		}
		if !s.noETag {
			w.Header().Set("ETag", `"`+orString(s.etag, "abc")+`"`)
		}
		w.Header().Set("Content-Type", orString(s.contentType, typeSDP))
		w.WriteHeader(or(s.postStatus, http.StatusCreated))
		_, _ = io.WriteString(w, orString(s.postBody, fakeSDP("serverufrag", "serverpwd", false)))
	case http.MethodPatch:
		code := or(s.patchStatus, http.StatusOK)
		if code != http.StatusOK {
			http.Error(w, "Precondition Failed", code)
			return
		}
		w.Header().Set("ETag", `"def"`)
		w.Header().Set("Content-Type", typeSDPFrag)
		_, _ = io.WriteString(w, orString(s.patchFrag, "a=ice-ufrag:newufrag\r\na=ice-pwd:newpwd\r\n"))
	case http.MethodDelete:
		if s.deleteBlock {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(or(s.deleteStatus, http.StatusOK))
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// hasLine reports whether sdp has the line.
func hasLine(sdp, line string) bool {
	for l := range strings.SplitSeq(sdp, "\r\n") {
		if l == line {
			return true
		}
	}
	return false
}
