// Package chromium starts Debian's headless Chromium for tests: the kiosk
// browser test and the guests of the interop tests share one launch, one
// flag list and one way of keeping the page's console.
//
// The flag list starts empty rather than from chromedp's defaults so that
// every flag is one we chose: the browser must not phone home (component
// updates, sync, QUIC probes) from a test machine that has no network.
package chromium

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/atriumroom/atrium/test/syncbuf"
)

// Path is Debian's chromium, the browser .ci/deps installs.
const Path = "/usr/bin/chromium"

// Options adjust one browser.
type Options struct {
	// Name prefixes what is logged about this browser ("guest alice").
	Name string
	// Width and Height size the window (default 1920x1080).
	Width, Height int
	// Parent bounds the browser's life; nil: until the test's cleanup.
	Parent context.Context
	// Flags are added to the common ones (fake media for a participant).
	Flags []chromedp.ExecAllocatorOption
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	tab context.Context
	out syncbuf.Buffer

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// Start launches the browser and fails the test, with the browser's own
// output, when Chromium is missing or cannot start. It closes the browser at
// cleanup and, if the test failed, logs the page's console and the
// browser's output.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (apt-get install chromium): %v", Path, err)
	}
	if opts.Width == 0 {
		opts.Width, opts.Height = 1920, 1080
	}
	parent := opts.Parent
	if parent == nil {
		parent = context.Background()
	}
	b := &Browser{}
	flags := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // the tests run as root, where the sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.CombinedOutput(&b.out),
	}, opts.Flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, flags...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b.tab = tab

	// Start the browser now, so that a browser that cannot start fails here
	// with its own output.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("%s: start %s: %v\n--- browser output ---\n%s", opts.Name, Path, err, b.out.String())
	}
	messages := chromedp.Console(tab)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()

	// Cleanups run last-in first-out: this one closes the browser and waits
	// for it before anything registered earlier (a page's server, the
	// profile directory, a media server) goes.
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit
		<-consoleDone
		if t.Failed() {
			for _, m := range b.Console() {
				t.Logf("%s console %s: %s", opts.Name, m.Type, m)
			}
			t.Logf("--- %s browser output ---\n%s", opts.Name, b.out.String())
		}
	})
	return b
}

// Tab is the chromedp context of the browser's tab.
func (b *Browser) Tab() context.Context { return b.tab }

// Output is what the browser process printed so far.
func (b *Browser) Output() string { return b.out.String() }

// Console returns the page's console messages so far.
func (b *Browser) Console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.console...)
}

// JSString quotes s as a JavaScript string literal.
func JSString(s string) string {
	q, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(q)
}
