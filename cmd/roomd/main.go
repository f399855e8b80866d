// Command roomd is Atrium's device daemon: it owns the room's devices, joins
// meetings, serves the kiosk UI and the local API. See docs/ARCHITECTURE.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/atriumroom/atrium/daemon"
	"github.com/atriumroom/atrium/daemon/config"
	"github.com/atriumroom/atrium/daemon/logging"
	"github.com/atriumroom/atrium/daemon/sdnotify"
	"github.com/atriumroom/atrium/ui"
)

// version is set at link time (-ldflags "-X main.version=..."); builds
// without it report the VCS revision.
var version = ""

// exitRestart is roomd's status when it ends to start afresh (after a
// factory reset); systemd's Restart=always starts it again.
const exitRestart = 75

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "roomd:", err)
		if errors.Is(err, daemon.ErrRestart) {
			os.Exit(exitRestart)
		}
		os.Exit(1)
	}
}

func run() error {
	configPath := flag.String("config", "", "configuration file (default "+config.DefaultPath+" when it exists, else built-in defaults)")
	printDefault := flag.Bool("print-default-config", false, "print the commented default configuration and exit")
	printVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	switch {
	case *printDefault:
		_, err := os.Stdout.Write(config.DefaultTOML())
		return err
	case *printVersion:
		fmt.Println(buildVersion())
		return nil
	}

	cfg, source, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	// The fleet's collect-logs command sends up to 8 MiB; keep about that.
	recent := logging.NewRecent(8 << 20)
	logger, err := logging.New(logging.Options{
		Level: cfg.Log.Level, Format: cfg.Log.Format, Stderr: os.Stderr,
		StderrIsJournal: logging.JournalStderr, Recent: recent,
	})
	if err != nil {
		return err
	}
	watchdog, err := sdnotify.WatchdogInterval()
	if err != nil {
		return err
	}
	logger.Info("starting roomd", "version", buildVersion(), "config", source, "room", cfg.Room.Name)

	sys, err := daemon.New(cfg, daemon.Deps{
		Logger:           logger,
		Notifier:         sdnotify.Systemd{},
		WatchdogInterval: watchdog,
		Version:          buildVersion(),
		UI:               ui.Handler(),
		Recent:           recent,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return sys.Run(ctx)
}

func loadConfig(path string) (*config.Config, string, error) {
	if path != "" {
		cfg, err := config.Load(path)
		return cfg, path, err
	}
	cfg, err := config.Load(config.DefaultPath)
	if errors.Is(err, fs.ErrNotExist) {
		return config.Default(), "built-in defaults", nil
	}
	return cfg, config.DefaultPath, err
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}
