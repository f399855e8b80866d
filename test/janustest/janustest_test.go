package janustest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/test/janustest"
	"github.com/atriumroom/atrium/test/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// TestStart checks the harness itself: both transports answer, only the
// VideoRoom plugin is loaded, and the rooms exist.
func TestStart(t *testing.T) {
	s := janustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plugins, _ := info["plugins"].(map[string]any)
	if len(plugins) != 1 || plugins["janus.plugin.videoroom"] == nil {
		t.Errorf("plugins = %v, want only janus.plugin.videoroom", plugins)
	}
	transports, _ := info["transports"].(map[string]any)
	if len(transports) != 2 || transports["janus.transport.websockets"] == nil || transports["janus.transport.http"] == nil {
		t.Errorf("transports = %v, want websockets and http", transports)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTPURL, strings.NewReader(`{"janus":"info","transaction":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"server_info"`) {
		t.Errorf("HTTP info: %s %s", resp.Status, body)
	}
	if !strings.Contains(s.Log(), "JANUS VideoRoom plugin initialized") {
		t.Errorf("the log does not show the VideoRoom starting:\n%s", s.Log())
	}
}

// fatalTB stands in for a test that Start must fail: it records Fatalf
// and ends the goroutine as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Skipf(format string, args ...any) {
	f.msg = "skipped: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestStartFailsWithoutJanus: a missing server fails the test, never
// skips it, so a machine without janus cannot pass the suite.
func TestStartFailsWithoutJanus(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-janus-here")
	t.Setenv(janustest.BinaryEnv, missing)
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		janustest.Start(tb)
	}()
	<-done
	if !strings.Contains(tb.msg, missing) || strings.HasPrefix(tb.msg, "skipped") {
		t.Errorf("Start with no janus: %q, want a fatal error naming %s", tb.msg, missing)
	}
}

// TestStartRetriesAfterACrash: a Janus that dies of a signal during its first
// start is started once more, and the crash is logged.
func TestStartRetriesAfterACrash(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "crashed-once")
	script := filepath.Join(dir, "janus")
	body := "#!/bin/sh\nif [ ! -e " + marker + " ]; then touch " + marker + "; kill -SEGV $$; fi\nexec /usr/bin/janus \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(janustest.BinaryEnv, script)
	srv := janustest.Start(t)
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the first start did not crash; the test proves nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := srv.Info(ctx); err != nil {
		t.Fatalf("the second Janus does not answer: %v", err)
	}
}
