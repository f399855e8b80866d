// Command roomkiosk is the full-screen shell that shows roomd's web UI on the
// meeting room's TV: a WebKitGTK window without decorations, confined to
// roomd's origin, that shows a built-in offline page while roomd is down and
// reloads the UI when it comes back.
//
// It must be built against webkit2gtk-4.1 through the pkg-config alias in
// ./pkgconfig (see the comment there):
//
//	PKG_CONFIG_PATH=$PWD/cmd/roomkiosk/pkgconfig go build ./cmd/roomkiosk
//
// It exits 0 on SIGTERM or SIGINT, 1 when the window closes by itself or
// cannot open, 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/atriumroom/atrium/cmd/roomkiosk/internal/kiosk"
)

// statusTimeout bounds one status poll: below the poll interval, so that a
// roomd that accepts connections but hangs counts as down.
const statusTimeout = 900 * time.Millisecond

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := kiosk.ParseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomkiosk:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := runKiosk(cfg, log); err != nil {
		log.Error("roomkiosk failed", "err", err)
		return 1
	}
	return 0
}

// runKiosk shows the kiosk until SIGTERM or SIGINT. It must run on the main
// goroutine, which webview_go locks to the main thread: GTK lives there.
func runKiosk(cfg kiosk.Config, log *slog.Logger) error {
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	// No proxy: roomd is on loopback, and an inherited HTTP_PROXY must not
	// decide whether the TV shows the UI.
	transport := &http.Transport{Proxy: nil}
	defer transport.CloseIdleConnections()
	watcher := kiosk.NewWatcher(
		kiosk.NewHTTPStatus(cfg.Origin, &http.Client{Transport: transport, Timeout: statusTimeout}),
		log.With("component", "watcher"))

	win, err := newWindow(cfg, log.With("component", "window"),
		kiosk.NewNavigationGuard(cfg.Origin, log.With("component", "guard")), watcher.PageFailed)
	if err != nil {
		return fmt.Errorf("open window: %w", err)
	}
	log.Info("roomkiosk started", "url", cfg.URL, "origin", cfg.Origin, "fullscreen", cfg.Fullscreen)

	ctx, cancel := context.WithCancel(sigCtx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = watcher.Run(ctx, win) })
	wg.Go(func() {
		<-ctx.Done()
		win.Terminate()
	})

	win.Run()
	// Whoever ended the loop, stop the goroutines before the window goes:
	// they call into it.
	signalled := sigCtx.Err() != nil
	cancel()
	wg.Wait()
	win.Destroy()

	if !signalled {
		return errors.New("window closed")
	}
	log.Info("roomkiosk stopped", "reason", context.Cause(sigCtx))
	return nil
}
