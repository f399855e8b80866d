package whiptest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/netns"
	"github.com/atriumroom/atrium/test/whiptest"
)

func TestMain(m *testing.M) {
	if os.Getenv("WHIPTEST_CHILD") == "1" {
		// TestMissingNodeFails's child: no Janus, no namespace.
		os.Exit(m.Run())
	}
	// Outside the namespace, where the network is; a failure is reported
	// by Start.
	_ = whiptest.Provision()
	netns.Main(m)
}

// TestStart checks the harness itself: the server runs against Janus,
// listens on loopback only, creates endpoints, and speaks WHIP's HTTP
// surface (OPTIONS Link headers, refusals with a text).
func TestStart(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	j := janustest.Start(t)
	s := whiptest.Start(t, j.WSURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ep := s.EndpointURL("harness", janustest.Room)
	if want := fmt.Sprintf("http://127.0.0.1:%d/whip/endpoint/harness", s.Port); ep != want {
		t.Errorf("EndpointURL = %s, want %s", ep, want)
	}
	list, err := s.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "harness" || list[0].Room != janustest.Room || list[0].Label != "harness" || list[0].Enabled {
		t.Errorf("endpoints = %+v, want one idle endpoint harness in room %d", list, janustest.Room)
	}
	if _, err := s.CreateEndpoint(ctx, whiptest.Endpoint{ID: "harness", Room: janustest.Room}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("creating a duplicate endpoint: err = %v, want the server's refusal", err)
	}

	// Not reachable through the host's own network address.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(j.ICEAddr.String(), fmt.Sprint(s.Port)), time.Second); err == nil {
		c.Close()
		t.Errorf("the server accepts connections on %s, want loopback only", j.ICEAddr)
	}

	// OPTIONS returns the endpoint's ICE servers as Link headers.
	withICE, err := s.CreateEndpoint(ctx, whiptest.Endpoint{ID: "ice", Room: janustest.Room, ICEServers: []whiptest.ICEServer{
		{URI: "stun:stun.example.net"},
		{URI: "turn:turn.example.net?transport=udp", Username: "user", Credential: "pass"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, ctx, http.MethodOptions, withICE, "", "")
	if links := resp.Header.Values("Link"); len(links) != 2 || !strings.Contains(links[1], `username="user"`) {
		t.Errorf("OPTIONS Link = %q, want the two servers", links)
	}

	// A POST that is not SDP is refused with a text.
	resp = do(t, ctx, http.MethodPost, ep, "text/plain", "hello")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(body), "Unsupported content type") {
		t.Errorf("POST text/plain: %s %q, want 406 Unsupported content type", resp.Status, body)
	}

	if err := s.DestroyEndpoint(ctx, "harness"); err != nil {
		t.Fatal(err)
	}
	// The server logs after it answers, and its output comes through a
	// pipe: the line may land a moment after DestroyEndpoint returns.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.Log(), "Destroyed WHIP endpoint"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not show the endpoint going:\n%s", s.Log())
		}
	}
}

func do(t *testing.T, ctx context.Context, method, url, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestMissingNodeFails checks that a machine without Node.js fails the
// test, with what to install, rather than skipping it: it runs this test
// binary again with an empty PATH.
func TestMissingNodeFails(t *testing.T) {
	if os.Getenv("WHIPTEST_CHILD") == "1" {
		whiptest.Start(t, "ws://127.0.0.1:1/")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMissingNodeFails$", "-test.v")
	cmd.Env = append(os.Environ(), "WHIPTEST_CHILD=1", "PATH=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the child passed or did not run (%v):\n%s", err, out)
	}
	for _, want := range []string{"--- FAIL: TestMissingNodeFails", "node is not installed", "install Node.js"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Errorf("the child skipped:\n%s", out)
	}
}
