// Command atrium-demo runs the "Demo meeting" that `make run` puts in the
// room's calendar: Debian's Janus on this machine, a simulated guest in its
// VideoRoom, and a sample calendar (DIR/calendar.ics) that invites the room.
// It runs until interrupted, then stops everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/atriumroom/atrium/internal/demo"
)

func main() {
	dir := flag.String("dir", ".run/demo", "directory for Janus's configuration and log and the calendar")
	ice := flag.String("ice-addr", "", "IPv4 address for media (default: the default route's interface address)")
	janus := flag.String("janus", "", "the janus program (default: janus from PATH)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("program", "atrium-demo")
	cfg := demo.Config{Dir: *dir, JanusBinary: *janus, Logger: logger}
	if *ice != "" {
		if cfg.ICEAddr = net.ParseIP(*ice).To4(); cfg.ICEAddr == nil {
			fmt.Fprintf(os.Stderr, "atrium-demo: -ice-addr %q is not an IPv4 address\n", *ice)
			os.Exit(2)
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "atrium-demo:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := demo.Run(ctx, cfg, func(info demo.Info) {
		logger.Info("demo meeting ready", "url", info.MeetingURL, "calendar", info.CalendarPath, "media", info.ICEAddr.String())
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "atrium-demo:", err)
		os.Exit(1)
	}
}
