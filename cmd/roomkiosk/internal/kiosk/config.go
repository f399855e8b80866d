package kiosk

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// DefaultURL is where roomd serves the kiosk UI on the appliance.
const DefaultURL = "http://127.0.0.1:8480/"

// Config is roomkiosk's command line.
type Config struct {
	URL        string     // the UI to show
	Origin     Origin     // URL's origin: the only one the web view may visit
	Fullscreen bool       // undecorated and full-screen, as on the TV
	Width      int        // window size when not full-screen (development)
	Height     int        //
	LogLevel   slog.Level //
	// Console copies the page's console messages to standard output, so
	// that a test or a developer can read what the page reports (the
	// video statistics of ui/web/call.js, errors) without an inspector.
	Console bool
	// GPU says whether WebKit may draw with OpenGL (see GPUMode).
	GPU GPUMode
}

// ParseFlags parses roomkiosk's arguments (without the program name).
// Usage and errors are written to output. It returns flag.ErrHelp for -h.
func ParseFlags(args []string, output io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("roomkiosk", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.URL, "url", DefaultURL, "`URL` of roomd's kiosk UI; navigation is confined to its origin")
	fs.BoolVar(&c.Fullscreen, "fullscreen", true, "undecorated window covering the monitor (set false for development)")
	fs.IntVar(&c.Width, "width", 1280, "window width in pixels when -fullscreen=false")
	fs.IntVar(&c.Height, "height", 720, "window height in pixels when -fullscreen=false")
	c.GPU = GPUAuto
	fs.Var(&c.GPU, "gpu", "`mode` of WebKit's OpenGL drawing: auto (off when OpenGL renders in software), on or off")
	fs.BoolVar(&c.Console, "console", false, "copy the page's console messages to standard output")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o, err := OriginOf(c.URL)
	if err != nil {
		return Config{}, fmt.Errorf("-url: %w", err)
	}
	c.Origin = o
	if c.Width <= 0 || c.Height <= 0 {
		return Config{}, fmt.Errorf("-width and -height must be positive, got %dx%d", c.Width, c.Height)
	}
	return c, nil
}
